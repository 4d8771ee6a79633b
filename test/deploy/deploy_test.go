// Package deploy_test runs deploy.sh against stand-ins for ibmcloud, wskdeploy,
// wsk and the certbackup CLI, in copies of the parts of the repository that
// deploy.sh uses, and checks what it builds, calls and prints.
package deploy_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/build/buildzip"
)

const (
	fakeFunctionPkg = "./test/deploy/testdata/fakefunction"
	cmSecret        = "cm-SECRET-apikey-0123456789abcdef"
	backupSecret    = "backup-SECRET-apikey-fedcba9876543210"
	sourceCRN       = "crn:v1:bluemix:public:cloudcerts:us-south:a/0123456789abcdef:11111111-2222-3333-4444-555555555555::"
	backupCRNs      = "crn:v1:bluemix:public:cloudcerts:eu-de:a/0123456789abcdef:66666666-7777-8888-9999-000000000000::"
	defaultURL      = "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/certbackup/notify.http"
)

// deployVars are the variables deploy.sh reads; they are removed from the
// inherited environment so that a developer's shell cannot change a result.
var deployVars = []string{
	"CM_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS", "BACKUP_APIKEY", "SOURCE_PUBLIC_KEY",
	"IAM_URL", "CM_ENDPOINTS", "PRIVATE_ENDPOINTS", "RECONCILE_CRON", "PACKAGE_NAME", "DEPLOY_TOOL",
	"CERTBACKUP_FUNCTION_PKG", "CERTBACKUP_CLI", "STUB_LOG", "STUB_ENV_LOG", "STUB_FAIL", "STUB_URL", "REAL_GO",
}

// fixture is shared by all tests and set up once in TestMain.
var fixture struct {
	root    string   // the real repository
	tmp     string   // everything the tests write
	stubBin string   // ibmcloud, wskdeploy, wsk, certbackup-cli stand-ins
	goBin   string   // a `go` stand-in that logs and delegates to realGo
	realGo  string   // the real go command
	repo    string   // the shared repository copy (deploy tests run here, one at a time)
	build   result   // the one `./deploy.sh build` of the shared copy, through the go stand-in
	zip     []byte   // build/action.zip of that build
	order   []string // names installed as stand-ins
}

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/deploy setup:", err)
		code = 1
	} else {
		code = m.Run()
	}
	if fixture.tmp != "" {
		os.RemoveAll(fixture.tmp)
	}
	os.Exit(code)
}

func setup() (int, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return 0, err
	}
	fixture.root = root
	if fixture.realGo, err = exec.LookPath("go"); err != nil {
		return 0, err
	}
	if fixture.tmp, err = os.MkdirTemp("", "certbackup-deploy-test-"); err != nil {
		return 0, err
	}
	stub, err := os.ReadFile(filepath.Join(root, "test/deploy/testdata/bin/stub"))
	if err != nil {
		return 0, err
	}
	fixture.stubBin = filepath.Join(fixture.tmp, "bin")
	fixture.goBin = filepath.Join(fixture.tmp, "gobin")
	fixture.order = []string{"ibmcloud", "wskdeploy", "wsk", "certbackup-cli"}
	for _, d := range []string{fixture.stubBin, fixture.goBin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
	}
	for _, name := range fixture.order {
		if err := os.WriteFile(filepath.Join(fixture.stubBin, name), stub, 0o755); err != nil {
			return 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(fixture.goBin, "go"), stub, 0o755); err != nil {
		return 0, err
	}

	if fixture.repo, err = copyRepo(filepath.Join(fixture.tmp, "repo")); err != nil {
		return 0, err
	}
	// The one shared build: every other test that needs the archive reads this
	// one; deploy runs rebuild it in place from the Go build cache.
	fixture.build = runScript(fixture.repo, runOpts{goStub: true}, "build")
	if fixture.build.code != 0 {
		return 0, fmt.Errorf("./deploy.sh build exited %d:\n%s%s", fixture.build.code, fixture.build.stdout, fixture.build.stderr)
	}
	if fixture.zip, err = os.ReadFile(filepath.Join(fixture.repo, "build/action.zip")); err != nil {
		return 0, err
	}
	return 0, nil
}

// copyRepo copies what deploy.sh needs into dst: the script, the manifest, the
// module files, the buildzip packages and the stand-in function.
func copyRepo(dst string) (string, error) {
	files := []string{"deploy.sh", "manifest.yaml", "go.mod", "go.sum"}
	for _, dir := range []string{"internal/build/buildzip", "internal/build/manifest", "internal/build/cmd/buildzip", "test/deploy/testdata/fakefunction"} {
		matches, err := filepath.Glob(filepath.Join(fixture.root, dir, "*.go"))
		if err != nil {
			return "", err
		}
		if len(matches) == 0 {
			return "", fmt.Errorf("no Go files in %s", dir)
		}
		for _, m := range matches {
			if !strings.HasSuffix(m, "_test.go") {
				rel, _ := filepath.Rel(fixture.root, m)
				files = append(files, rel)
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(fixture.root, f))
		if errors.Is(err, os.ErrNotExist) && f == "go.sum" {
			continue
		}
		if err != nil {
			return "", err
		}
		mode := os.FileMode(0o644)
		if f == "deploy.sh" {
			mode = 0o755
		}
		target := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, data, mode); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// newRepo gives a test its own repository copy.
func newRepo(t *testing.T) string {
	t.Helper()
	dir, err := copyRepo(filepath.Join(t.TempDir(), "repo"))
	require.NoError(t, err)
	return dir
}

type runOpts struct {
	env    map[string]string // added to the environment; "" values are set empty
	unset  []string          // not set at all
	goStub bool              // put the logging `go` stand-in first on PATH
	path   string            // replaces PATH entirely when set
}

type result struct {
	code           int
	stdout, stderr string
	calls          []string // one per stand-in invocation, in order
	envLog         []string
}

func (r result) output() string { return r.stdout + r.stderr }

// envOf returns what the stand-in name saw for variable v at its first call,
// and whether it was set.
func (r result) envOf(name, v string) (string, bool) {
	for _, l := range r.envLog {
		if l == name+" "+v+"<unset>" {
			return "", false
		}
		if val, ok := strings.CutPrefix(l, name+" "+v+"="); ok {
			return val, true
		}
	}
	return "", false
}

func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := k == "PATH"
		for _, v := range deployVars {
			drop = drop || k == v
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

func runScript(repo string, o runOpts, args ...string) result {
	logDir, err := os.MkdirTemp(fixture.tmp, "run-")
	if err != nil {
		panic(err)
	}
	vars := map[string]string{
		"STUB_LOG":                filepath.Join(logDir, "calls.log"),
		"STUB_ENV_LOG":            filepath.Join(logDir, "env.log"),
		"REAL_GO":                 fixture.realGo,
		"CERTBACKUP_FUNCTION_PKG": fakeFunctionPkg,
		"CERTBACKUP_CLI":          filepath.Join(fixture.stubBin, "certbackup-cli"),
	}
	for k, v := range o.env {
		vars[k] = v
	}
	for _, k := range o.unset {
		delete(vars, k)
	}
	path := fixture.stubBin + string(os.PathListSeparator) + os.Getenv("PATH")
	if o.goStub {
		path = fixture.goBin + string(os.PathListSeparator) + path
	}
	if o.path != "" {
		path = o.path
	}
	env := append(baseEnv(), "PATH="+path)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}

	cmd := exec.Command(filepath.Join(repo, "deploy.sh"), args...)
	cmd.Dir = repo
	cmd.Env = env
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		panic(err)
	}
	r.calls = readLines(vars["STUB_LOG"])
	r.envLog = readLines(vars["STUB_ENV_LOG"])
	return r
}

func readLines(path string) []string {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		panic(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// deployEnv is a complete, valid set of deploy inputs.
func deployEnv() map[string]string {
	return map[string]string{
		"CM_APIKEY":            cmSecret,
		"BACKUP_APIKEY":        backupSecret,
		"SOURCE_INSTANCE_CRN":  sourceCRN,
		"BACKUP_INSTANCE_CRNS": backupCRNs,
	}
}

// deploy runs deploy.sh in the shared repository copy and checks what must
// hold for every run: no secret in its output.
func deploy(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	r := runScript(fixture.repo, o, args...)
	assertNoSecrets(t, r)
	return r
}

func assertNoSecrets(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{cmSecret, backupSecret} {
		assert.NotContains(t, r.stdout, s, "a secret reached deploy.sh's stdout")
		assert.NotContains(t, r.stderr, s, "a secret reached deploy.sh's stderr")
	}
}

func cli(args string) string { return "certbackup-cli " + args }

func TestDeployRunsExactCommandsInOrder(t *testing.T) {
	r := deploy(t, runOpts{env: deployEnv()})
	require.Equal(t, 0, r.code, r.output())
	assert.Equal(t, []string{
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup/notify --url",
		cli("register-channel --url " + defaultURL),
		cli("test-channel --url " + defaultURL),
	}, r.calls)

	assert.Contains(t, strings.Split(r.stdout, "\n"), defaultURL, "the Callback URL is printed on a line of its own")
	assert.Contains(t, r.stdout, "build/action.zip: ")
	assert.Contains(t, r.stdout, " bytes")

	// The manifest's $VAR interpolation needs every variable exported, defaults included.
	for name, want := range map[string]string{
		"CM_APIKEY":            cmSecret,
		"BACKUP_APIKEY":        backupSecret,
		"SOURCE_INSTANCE_CRN":  sourceCRN,
		"BACKUP_INSTANCE_CRNS": backupCRNs,
		"PACKAGE_NAME":         "certbackup",
		"RECONCILE_CRON":       "0 * * * *",
		"SOURCE_PUBLIC_KEY":    "",
		"IAM_URL":              "",
		"CM_ENDPOINTS":         "",
		"PRIVATE_ENDPOINTS":    "",
	} {
		for _, tool := range []string{"ibmcloud", "certbackup-cli"} {
			got, set := r.envOf(tool, name)
			assert.True(t, set, "%s must see %s exported", tool, name)
			assert.Equal(t, want, got, "%s saw %s", tool, name)
		}
	}

	// The deploy rebuilt the archive in place: same inputs, same bytes.
	zipAfter, err := os.ReadFile(filepath.Join(fixture.repo, "build/action.zip"))
	require.NoError(t, err)
	assert.Equal(t, fixture.zip, zipAfter)
}

func TestDeployPassesOptionalVariables(t *testing.T) {
	env := deployEnv()
	env["RECONCILE_CRON"] = "*/15 * * * *"
	env["PACKAGE_NAME"] = "certbackup-staging"
	env["CM_ENDPOINTS"] = `{"us-south":"https://us-south.certificate-manager.cloud.ibm.com"}`
	env["IAM_URL"] = "https://iam.test.cloud.ibm.com"
	env["PRIVATE_ENDPOINTS"] = "true"
	env["SOURCE_PUBLIC_KEY"] = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
	r := deploy(t, runOpts{env: env})
	require.Equal(t, 0, r.code, r.output())
	url := "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/certbackup-staging/notify.http"
	assert.Equal(t, []string{
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup-staging/notify --url",
		cli("register-channel --url " + url),
		cli("test-channel --url " + url),
	}, r.calls)
	for _, name := range []string{"RECONCILE_CRON", "PACKAGE_NAME", "CM_ENDPOINTS", "IAM_URL", "PRIVATE_ENDPOINTS"} {
		got, _ := r.envOf("ibmcloud", name)
		assert.Equal(t, env[name], got, name)
	}
	got, _ := r.envOf("ibmcloud", "SOURCE_PUBLIC_KEY")
	assert.Equal(t, strings.ReplaceAll(env["SOURCE_PUBLIC_KEY"], "\n", `\n`), got)
}

func TestDeployWithWskdeploy(t *testing.T) {
	env := deployEnv()
	env["DEPLOY_TOOL"] = "wskdeploy"
	env["PACKAGE_NAME"] = "cb2"
	r := deploy(t, runOpts{env: env})
	require.Equal(t, 0, r.code, r.output())
	url := "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/cb2/notify.http"
	assert.Equal(t, []string{
		"wskdeploy --manifest manifest.yaml",
		"wsk action get cb2/notify --url",
		cli("register-channel --url " + url),
		cli("test-channel --url " + url),
	}, r.calls)
	got, _ := r.envOf("wskdeploy", "CM_APIKEY")
	assert.Equal(t, cmSecret, got)
	got, _ = r.envOf("wskdeploy", "PACKAGE_NAME")
	assert.Equal(t, "cb2", got)
	assert.Contains(t, r.stdout, url)
}

func TestDeployMissingRequiredVariable(t *testing.T) {
	for _, name := range []string{"CM_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS"} {
		for _, how := range []string{"unset", "empty"} {
			t.Run(name+"/"+how, func(t *testing.T) {
				env := deployEnv()
				o := runOpts{env: env}
				if how == "unset" {
					delete(env, name)
				} else {
					env[name] = ""
				}
				r := deploy(t, o)
				assert.Equal(t, 2, r.code, r.output())
				assert.Contains(t, r.stderr, name)
				assert.Empty(t, r.calls, "nothing may be called when an input is missing")
				assert.NotContains(t, r.stdout, "building", "nothing may be built when an input is missing")
				for _, other := range []string{"CM_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS"} {
					if other != name {
						assert.NotContains(t, r.stderr, "variable "+other, "only the missing variable is named")
					}
				}
			})
		}
	}
	t.Run("all", func(t *testing.T) {
		r := deploy(t, runOpts{})
		assert.Equal(t, 2, r.code)
		for _, name := range []string{"CM_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS"} {
			assert.Contains(t, r.stderr, "variable "+name, "each missing variable is named")
		}
		assert.Empty(t, r.calls)
	})
}

func TestDeployRejectsInvalidInputsBeforeCallingAnything(t *testing.T) {
	for name, bad := range map[string]string{
		"DEPLOY_TOOL":    "terraform",
		"RECONCILE_CRON": "0 * * *",
		"PACKAGE_NAME":   "cert/backup",
		"CM_ENDPOINTS":   "https://us-south.certificate-manager.cloud.ibm.com",
	} {
		t.Run(name, func(t *testing.T) {
			env := deployEnv()
			env[name] = bad
			r := deploy(t, runOpts{env: env})
			assert.Equal(t, 2, r.code, r.output())
			assert.Contains(t, r.stderr, name)
			assert.Empty(t, r.calls)
		})
	}
	t.Run("default package", func(t *testing.T) {
		env := deployEnv()
		env["PACKAGE_NAME"] = "default"
		r := deploy(t, runOpts{env: env})
		assert.Equal(t, 2, r.code, r.output())
		assert.Contains(t, r.stderr, "PACKAGE_NAME")
		assert.Empty(t, r.calls)
	})
}

func TestDeployWithoutDeployToolOnPath(t *testing.T) {
	// PATH with the system tools and go, but no stand-ins.
	path := strings.Join([]string{filepath.Dir(fixture.realGo), "/usr/bin", "/bin"}, string(os.PathListSeparator))
	for tool, env := range map[string]map[string]string{"ibmcloud": deployEnv(), "wskdeploy": deployEnv()} {
		if _, err := exec.LookPath(filepath.Join("/usr/bin", tool)); err == nil {
			t.Skipf("a real %s is installed in /usr/bin", tool)
		}
		env["DEPLOY_TOOL"] = tool
		r := deploy(t, runOpts{env: env, path: path})
		assert.Equal(t, 2, r.code, r.output())
		assert.Contains(t, r.stderr, tool+" not found")
		assert.Empty(t, r.calls)
	}
}

func TestDeployRegistrationFailurePrintsManualSteps(t *testing.T) {
	env := deployEnv()
	env["STUB_FAIL"] = "register-channel"
	r := deploy(t, runOpts{env: env})
	assert.Equal(t, 0, r.code, "the deployment itself succeeded:\n"+r.output())
	assert.Equal(t, []string{
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup/notify --url",
		cli("register-channel --url " + defaultURL),
	}, r.calls)
	assert.Contains(t, r.stderr, "WARNING")
	for _, step := range []string{"Certificate Manager instance", "Notifications", "Add Notification Channel",
		"Callback URL", defaultURL, "Save", "Test Connection"} {
		assert.Contains(t, r.stdout, step)
	}
	// The steps come in the console's order.
	assert.Less(t, strings.Index(r.stdout, "Add Notification Channel"), strings.Index(r.stdout, "Paste the URL"))
	assert.Less(t, strings.Index(r.stdout, "Paste the URL"), strings.Index(r.stdout, "Save"))
	assert.Less(t, strings.Index(r.stdout, "Save"), strings.Index(r.stdout, "Test Connection"))
}

func TestDeployChannelTestFailureWarns(t *testing.T) {
	env := deployEnv()
	env["STUB_FAIL"] = "test-channel"
	r := deploy(t, runOpts{env: env})
	assert.Equal(t, 0, r.code, r.output())
	assert.Len(t, r.calls, 4)
	assert.Contains(t, r.stderr, "WARNING")
	assert.Contains(t, r.stdout, "Test Connection")
}

func TestDeployToolFailureStops(t *testing.T) {
	env := deployEnv()
	env["STUB_FAIL"] = "fn deploy"
	r := deploy(t, runOpts{env: env})
	assert.Equal(t, 1, r.code, r.output())
	assert.Equal(t, []string{"ibmcloud fn deploy --manifest manifest.yaml"}, r.calls)
	assert.Contains(t, r.stderr, "ibmcloud fn deploy failed")
}

func TestDeployWebActionURL(t *testing.T) {
	t.Run("json extension becomes http", func(t *testing.T) {
		env := deployEnv()
		env["STUB_URL"] = "https://eu-de.functions.appdomain.cloud/api/v1/web/guid/certbackup/notify.json\r"
		r := deploy(t, runOpts{env: env})
		require.Equal(t, 0, r.code, r.output())
		want := "https://eu-de.functions.appdomain.cloud/api/v1/web/guid/certbackup/notify.http"
		assert.Equal(t, cli("register-channel --url "+want), r.calls[2])
	})
	t.Run("no https line", func(t *testing.T) {
		env := deployEnv()
		env["STUB_URL"] = ""
		r := deploy(t, runOpts{env: env})
		assert.Equal(t, 1, r.code, r.output())
		assert.Len(t, r.calls, 2, "no registration without a URL")
		assert.Contains(t, r.stderr, "certbackup/notify --url")
	})
}

func TestUndeploy(t *testing.T) {
	r := deploy(t, runOpts{}, "undeploy")
	require.Equal(t, 0, r.code, r.output())
	assert.Equal(t, []string{"ibmcloud fn undeploy --manifest manifest.yaml"}, r.calls[:1])
	assert.Len(t, r.calls, 1)
	got, set := r.envOf("ibmcloud", "PACKAGE_NAME")
	assert.True(t, set)
	assert.Equal(t, "certbackup", got, "undeploy interpolates the same package name")
	assert.Contains(t, r.stdout, "delete the Callback URL channel")
	assert.Contains(t, r.stdout, "/certbackup/notify.http")

	r = deploy(t, runOpts{env: map[string]string{"DEPLOY_TOOL": "wskdeploy", "PACKAGE_NAME": "cb2"}}, "undeploy")
	require.Equal(t, 0, r.code, r.output())
	assert.Equal(t, []string{"wskdeploy undeploy --manifest manifest.yaml"}, r.calls)
	assert.Contains(t, r.stdout, "/cb2/notify.http")

	env := map[string]string{"STUB_FAIL": "undeploy"}
	r = deploy(t, runOpts{env: env}, "undeploy")
	assert.Equal(t, 1, r.code, r.output())
}

func TestUndeployBuildsMissingArchiveFirst(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	r := runScript(repo, runOpts{}, "undeploy")
	require.Equal(t, 0, r.code, r.output())
	assert.Equal(t, []string{"ibmcloud fn undeploy --manifest manifest.yaml"}, r.calls)
	assert.FileExists(t, filepath.Join(repo, "build/action.zip"), "wskdeploy reads the function file even to undeploy")
}

func TestLocalBuildsThenRunsTheDemo(t *testing.T) {
	r := deploy(t, runOpts{goStub: true}, "local", "--serve")
	require.Equal(t, 0, r.code, r.output())
	require.NotEmpty(t, r.calls)
	assert.Equal(t, "go run -trimpath -buildvcs=false ./internal/devtools/cmd/localdemo --zip build/action.zip --serve", r.calls[len(r.calls)-1])
	assert.Equal(t, fixture.build.calls, r.calls[:len(r.calls)-1], "local runs the same build first")
	assert.Contains(t, r.stdout, "local demo stand-in")
}

func TestHelpAndUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"frobnicate"}, {"deploy", "extra"}} {
		r := deploy(t, runOpts{env: deployEnv()}, args...)
		assert.Equal(t, 2, r.code, "%v", args)
		assert.Empty(t, r.stdout, "%v: usage goes to stderr", args)
		assert.Empty(t, r.calls, "%v", args)
		if args[0] != "deploy" {
			assert.Contains(t, r.stderr, "usage: ./deploy.sh")
			for _, sub := range []string{"deploy", "build", "undeploy", "local [--serve]", "help"} {
				assert.Contains(t, r.stderr, sub)
			}
		}
	}
	r := deploy(t, runOpts{}, "frobnicate")
	assert.Contains(t, r.stderr, "unknown subcommand")
}

// --- build ---

func zipEntries(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var names []string
	out := map[string][]byte{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		out[f.Name] = b
		switch f.Name {
		case "exec":
			assert.Equal(t, os.FileMode(0o755), f.Mode())
		case "exec.env":
			assert.Equal(t, os.FileMode(0o644), f.Mode())
		}
		assert.Equal(t, zip.Deflate, f.Method)
		assert.True(t, f.Modified.Equal(buildzip.ModTime), "%s: %v", f.Name, f.Modified)
	}
	require.Equal(t, []string{"exec", "exec.env"}, names, "exactly two root entries, in this order")
	return out
}

func TestBuildZipLayout(t *testing.T) {
	r := fixture.build
	assert.Equal(t, []string{
		"go build -trimpath -buildvcs=false -ldflags -s -w -buildid= -o build/exec " + fakeFunctionPkg,
		"go run -trimpath -buildvcs=false ./internal/build/cmd/buildzip -exec build/exec -out build/action.zip -manifest manifest.yaml -action notify,reconcile",
	}, r.calls)
	for v, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"} {
		got, set := r.envOf("go", v)
		assert.True(t, set && got == want, "go build must run with %s=%s, saw %q", v, want, got)
	}
	assert.Regexp(t, `(?m)^build/action\.zip: [1-9][0-9]* bytes \(runtime go:1\.21, exec\.env openwhisk/action-golang-v1\.21\)$`, r.stdout)

	entries := zipEntries(t, fixture.zip)
	assert.Equal(t, "openwhisk/action-golang-v1.21", string(entries["exec.env"]), "exact content, no newline")
	assert.NoError(t, buildzip.CheckExec(entries["exec"]), "exec must be a linux/amd64 ELF")
	built, err := os.ReadFile(filepath.Join(fixture.repo, "build/exec"))
	require.NoError(t, err)
	assert.Equal(t, built, entries["exec"])
}

func TestBuildIsReproducible(t *testing.T) {
	t.Parallel()
	// A second build in another directory must give the same bytes.
	repo := newRepo(t)
	r := runScript(repo, runOpts{}, "build")
	require.Equal(t, 0, r.code, r.output())
	second, err := os.ReadFile(filepath.Join(repo, "build/action.zip"))
	require.NoError(t, err)
	assert.Equal(t, fixture.zip, second, "two builds of the same inputs must be byte-identical")
	assert.Empty(t, r.calls)
}

func TestBuildTakesRuntimeFromManifest(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	manifest := filepath.Join(repo, "manifest.yaml")
	orig, err := os.ReadFile(manifest)
	require.NoError(t, err)
	require.Equal(t, 2, bytes.Count(orig, []byte("runtime: go:1.21")), "both actions name go:1.21")

	require.NoError(t, os.WriteFile(manifest, bytes.ReplaceAll(orig, []byte("runtime: go:1.21"), []byte("runtime: go:1.24")), 0o644))
	r := runScript(repo, runOpts{}, "build")
	require.Equal(t, 0, r.code, r.output())
	data, err := os.ReadFile(filepath.Join(repo, "build/action.zip"))
	require.NoError(t, err)
	assert.Equal(t, "openwhisk/action-golang-v1.24", string(zipEntries(t, data)["exec.env"]))
	assert.Contains(t, r.stdout, "exec.env openwhisk/action-golang-v1.24")

	// notify and reconcile share the archive: their runtimes must agree.
	require.NoError(t, os.WriteFile(manifest, bytes.Replace(orig, []byte("runtime: go:1.21"), []byte("runtime: go:1.24"), 1), 0o644))
	r = runScript(repo, runOpts{}, "build")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "different runtimes")

	// Not a Go kind.
	require.NoError(t, os.WriteFile(manifest, bytes.ReplaceAll(orig, []byte("runtime: go:1.21"), []byte("runtime: nodejs:20")), 0o644))
	r = runScript(repo, runOpts{}, "build")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "nodejs:20")
}

func TestBuildWithoutFunctionPackage(t *testing.T) {
	r := deploy(t, runOpts{env: map[string]string{"CERTBACKUP_FUNCTION_PKG": "./no-such-function"}}, "build")
	assert.Equal(t, 1, r.code, r.output())
	assert.Contains(t, r.stderr, "./no-such-function does not exist")
}
