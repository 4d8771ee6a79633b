// Package deploy_test runs deploy.sh against stand-ins for ibmcloud, wskdeploy, wsk,
// curl, go and the certbackup CLI (package deploytest), in copies of the parts of the
// repository that deploy.sh uses, and checks what it builds, calls and prints. The
// stand-ins make these tests independent of the rest of the module: they compile only
// the build tooling and the stand-ins.
package deploy_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
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
	"github.com/certbackup/certbackup/test/deploy/deploytest"
)

const (
	fakeFunctionPkg = deploytest.FakeFunctionPkg
	cmSecret        = "cm-SECRET-apikey-0123456789abcdef"
	backupSecret    = "backup-SECRET-apikey-fedcba9876543210"
	sourceCRN       = "crn:v1:bluemix:public:cloudcerts:us-south:a/0123456789abcdef:11111111-2222-3333-4444-555555555555::"
	backupCRNs      = "crn:v1:bluemix:public:cloudcerts:eu-de:a/0123456789abcdef:66666666-7777-8888-9999-000000000000::"
	defaultURL      = "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/certbackup/notify.http"
	checkOpenWhisk  = "go run -trimpath -buildvcs=false " + fakeFunctionPkg + " check-config --platform openwhisk --cron 0 * * * *"
)

// fixture is shared by all tests and set up once in TestMain.
var fixture struct {
	*deploytest.Fixture
	root  string            // the real repository
	repo  string            // the shared repository copy (deploy tests run here, one at a time)
	build deploytest.Result // the one `./deploy.sh build` of the shared copy
	zip   []byte            // build/action.zip of that build
}

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/deploy setup:", err)
		code = 1
	} else {
		code = m.Run()
	}
	if fixture.Fixture != nil {
		fixture.Close()
	}
	os.Exit(code)
}

func setup() (int, error) {
	f, err := deploytest.Setup()
	if err != nil {
		return 0, err
	}
	fixture.Fixture = f
	fixture.root = f.Root
	if fixture.repo, err = f.CopyRepo(filepath.Join(f.Tmp, "repo")); err != nil {
		return 0, err
	}
	// The one shared build: every other test that needs the archive reads this
	// one; deploy runs rebuild it in place from the Go build cache.
	if fixture.build, err = f.Run(fixture.repo, deploytest.Opts{}, "build"); err != nil {
		return 0, err
	}
	if fixture.build.Code != 0 {
		return 0, fmt.Errorf("./deploy.sh build exited %d:\n%s", fixture.build.Code, fixture.build.Output())
	}
	if fixture.zip, err = os.ReadFile(filepath.Join(fixture.repo, "build/action.zip")); err != nil {
		return 0, err
	}
	return 0, nil
}

// newRepo gives a test its own repository copy.
func newRepo(t *testing.T) string {
	t.Helper()
	dir, err := fixture.CopyRepo(filepath.Join(t.TempDir(), "repo"))
	require.NoError(t, err)
	return dir
}

type runOpts = deploytest.Opts

func runScript(t *testing.T, repo string, o runOpts, args ...string) deploytest.Result {
	t.Helper()
	r, err := fixture.Run(repo, o, args...)
	require.NoError(t, err)
	return r
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

// deploy runs deploy.sh in the shared repository copy and checks what must hold for
// every run: no secret in its output or on any command line.
func deploy(t *testing.T, o runOpts, args ...string) deploytest.Result {
	t.Helper()
	r := runScript(t, fixture.repo, o, args...)
	assertNoSecrets(t, r, cmSecret, backupSecret)
	return r
}

// assertNoSecrets: no secret (nor its base64) in the output, on a command line, or left
// in a temporary file.
func assertNoSecrets(t *testing.T, r deploytest.Result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			assert.NotContains(t, r.Stdout, form, "a secret reached deploy.sh's stdout")
			assert.NotContains(t, r.Stderr, form, "a secret reached deploy.sh's stderr")
			for _, c := range r.Calls {
				assert.NotContains(t, c, form, "a secret is on a command line: %s", c)
			}
		}
	}
	left, err := os.ReadDir(r.TmpDir)
	require.NoError(t, err)
	assert.Empty(t, left, "deploy.sh left files in TMPDIR")
}

func cli(args string) string { return "certbackup-cli " + args }

// withoutGo drops the `go` calls (the build) from a call list.
func withoutGo(calls []string) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasPrefix(c, "go ") {
			out = append(out, c)
		}
	}
	return out
}

func TestDeployRunsExactCommandsInOrder(t *testing.T) {
	r := deploy(t, runOpts{Env: deployEnv()})
	require.Equal(t, 0, r.Code, r.Output())
	assert.Equal(t, append(append([]string{checkOpenWhisk}, fixture.build.Calls...),
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup/notify --url",
		cli("register-channel --url "+defaultURL),
		cli("test-channel --url "+defaultURL),
	), r.Calls, "the configuration is checked first, then built, deployed, registered and tested")

	assert.Contains(t, strings.Split(r.Stdout, "\n"), defaultURL, "the Callback URL is printed on a line of its own")
	assert.Contains(t, r.Stdout, "build/action.zip: ")
	assert.Contains(t, r.Stdout, " bytes")

	// The manifest's $VAR interpolation needs every variable exported, defaults included;
	// the checker and the CLI see the same values, under both names of a setting.
	for name, want := range map[string]string{
		"CM_APIKEY":            cmSecret,
		"APIKEY":               cmSecret,
		"BACKUP_APIKEY":        backupSecret,
		"SOURCE_INSTANCE_CRN":  sourceCRN,
		"BACKUP_INSTANCE_CRNS": backupCRNs,
		"PACKAGE_NAME":         "certbackup",
		"RECONCILE_CRON":       "0 * * * *",
		"SOURCE_PUBLIC_KEY":    "",
		"IAM_URL":              "",
		"CM_ENDPOINTS":         "",
		"ENDPOINTS":            "",
		"PRIVATE_ENDPOINTS":    "",
	} {
		for _, tool := range []string{"ibmcloud", "certbackup-cli"} {
			got, set := r.EnvOf(tool, name)
			assert.True(t, set, "%s must see %s exported", tool, name)
			assert.Equal(t, want, got, "%s saw %s", tool, name)
		}
	}
	for name, want := range map[string]string{
		"CM_APIKEY": cmSecret, "APIKEY": cmSecret, "SOURCE_INSTANCE_CRN": sourceCRN, "BACKUP_INSTANCE_CRNS": backupCRNs,
	} {
		got, _ := r.EnvOf("go", name) // the first go call is check-config
		assert.Equal(t, want, got, "check-config saw %s", name)
	}

	// Only observed facts: the test notification was requested, not confirmed.
	assert.Contains(t, r.Stdout, "NOT confirmed")
	assert.NotContains(t, r.Output(), "now reach")
	assert.NotContains(t, r.Output(), "succeeded")

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
	r := deploy(t, runOpts{Env: env})
	require.Equal(t, 0, r.Code, r.Output())
	url := "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/certbackup-staging/notify.http"
	assert.Equal(t, []string{
		"go run -trimpath -buildvcs=false " + fakeFunctionPkg + " check-config --platform openwhisk --cron */15 * * * *",
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup-staging/notify --url",
		cli("register-channel --url " + url),
		cli("test-channel --url " + url),
	}, append(r.Calls[:1:1], withoutGo(r.Calls)...))
	for _, name := range []string{"RECONCILE_CRON", "PACKAGE_NAME", "CM_ENDPOINTS", "IAM_URL", "PRIVATE_ENDPOINTS"} {
		got, _ := r.EnvOf("ibmcloud", name)
		assert.Equal(t, env[name], got, name)
	}
	got, _ := r.EnvOf("ibmcloud", "SOURCE_PUBLIC_KEY")
	assert.Equal(t, strings.ReplaceAll(env["SOURCE_PUBLIC_KEY"], "\n", `\n`), got)
	got, _ = r.EnvOf("go", "ENDPOINTS")
	assert.Equal(t, env["CM_ENDPOINTS"], got, "check-config sees CM_ENDPOINTS under its current name too")
}

func TestDeployAcceptsTheCurrentNames(t *testing.T) {
	env := deployEnv()
	delete(env, "CM_APIKEY")
	env["APIKEY"] = cmSecret
	env["ENDPOINTS"] = `{"us-south":"https://us-south.certificate-manager.cloud.ibm.com"}`
	r := deploy(t, runOpts{Env: env})
	require.Equal(t, 0, r.Code, r.Output())
	got, _ := r.EnvOf("ibmcloud", "CM_APIKEY")
	assert.Equal(t, cmSecret, got, "the manifest's $CM_APIKEY gets APIKEY")
	got, _ = r.EnvOf("ibmcloud", "CM_ENDPOINTS")
	assert.Equal(t, env["ENDPOINTS"], got, "the manifest's $CM_ENDPOINTS gets ENDPOINTS")

	// Two different values for one setting: refused, by name only.
	env["CM_APIKEY"] = backupSecret
	r = deploy(t, runOpts{Env: env})
	assert.Equal(t, 2, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "APIKEY and CM_APIKEY are both set and differ")
	assert.Empty(t, r.Calls, "nothing runs, not even the checker")
}

func TestDeployWithWskdeploy(t *testing.T) {
	env := deployEnv()
	env["DEPLOY_TOOL"] = "wskdeploy"
	env["PACKAGE_NAME"] = "cb2"
	r := deploy(t, runOpts{Env: env})
	require.Equal(t, 0, r.Code, r.Output())
	url := "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/cb2/notify.http"
	assert.Equal(t, []string{
		"wskdeploy --manifest manifest.yaml",
		"wsk action get cb2/notify --url",
		cli("register-channel --url " + url),
		cli("test-channel --url " + url),
	}, withoutGo(r.Calls))
	assert.Equal(t, checkOpenWhisk, r.Calls[0])
	got, _ := r.EnvOf("wskdeploy", "CM_APIKEY")
	assert.Equal(t, cmSecret, got)
	got, _ = r.EnvOf("wskdeploy", "PACKAGE_NAME")
	assert.Equal(t, "cb2", got)
	assert.Contains(t, r.Stdout, url)
}

// TestDeployChecksEveryVariableBeforeCallingAnything: the configuration is checked by
// the binary's check-config (the stand-in answers as told); when it finds a problem,
// its lines are shown and no ibmcloud command runs, nothing is built.
func TestDeployChecksEveryVariableBeforeCallingAnything(t *testing.T) {
	for name, bad := range map[string]map[string]string{
		"garbage CRNs":      {"SOURCE_INSTANCE_CRN": "garbage", "BACKUP_INSTANCE_CRNS": "garbage"},
		"key with spaces":   {"CM_APIKEY": "my key with spaces"},
		"cron out of range": {"RECONCILE_CRON": "99 99 * * *"},
		"missing key":       {"CM_APIKEY": ""},
	} {
		t.Run(name, func(t *testing.T) {
			env := deployEnv()
			for k, v := range bad {
				env[k] = v
			}
			env["STUB_CONFIG_ERRORS"] = "parameter source_instance_crn: is not a CRN\nparameter apikey: must not contain white space"
			r := deploy(t, runOpts{Env: env})
			assert.Equal(t, 2, r.Code, r.Output())
			require.Len(t, r.Calls, 1, "only the checker ran: %v", r.Calls)
			assert.Contains(t, r.Calls[0], " check-config --platform openwhisk --cron ")
			assert.Contains(t, r.Stderr, "parameter source_instance_crn: is not a CRN", "the checker's lines are shown")
			assert.Contains(t, r.Stderr, "the configuration is invalid", "go run's exit status 1 is read as the checker's 2")
			assert.NotContains(t, r.Stderr, "exit status 2", "go run's own line is not shown")
			assert.Contains(t, r.Stderr, "nothing was built or deployed")
			assert.NotContains(t, r.Stdout, "building")
			for k, v := range bad {
				got, _ := r.EnvOf("go", k)
				assert.Equal(t, v, got, "the checker saw %s as given", k)
				if k == "CM_APIKEY" && v != "" {
					assert.NotContains(t, r.Output(), v, "a key's value is never printed")
				}
			}
			if v, ok := bad["RECONCILE_CRON"]; ok {
				assert.True(t, strings.HasSuffix(r.Calls[0], "--cron "+v), "the cron goes to the checker as given: %s", r.Calls[0])
				assert.Contains(t, r.Stdout, "'"+v+"'", "and is shown as given, not shell-escaped")
			}
		})
	}

	t.Run("a checker that cannot run", func(t *testing.T) {
		// The real function package of this copy is a stand-in that knows no check-config:
		// deploy.sh must not take its exit status 0 for a valid configuration.
		r := deploy(t, runOpts{Env: deployEnv(), Path: strings.Join([]string{fixture.StubBin, filepath.Dir(fixture.RealGo), "/usr/bin", "/bin"}, ":")})
		assert.Equal(t, 2, r.Code, r.Output())
		assert.Contains(t, r.Stderr, `check-config exited 0 without "configuration valid"`)
		assert.Empty(t, r.CallsOf("ibmcloud"))

		// A package that does not build: go run fails (exit 1, no "exit status" line).
		env := deployEnv()
		env["CERTBACKUP_FUNCTION_PKG"] = "./no-such-function"
		r = deploy(t, runOpts{Env: env, Path: strings.Join([]string{fixture.StubBin, filepath.Dir(fixture.RealGo), "/usr/bin", "/bin"}, ":")})
		assert.Equal(t, 2, r.Code, r.Output())
		assert.Contains(t, r.Stderr, `check-config exited 1 without "configuration valid"`)
		assert.Empty(t, r.CallsOf("ibmcloud"))
	})
}

func TestDeployRejectsInvalidDeployVariablesBeforeCallingAnything(t *testing.T) {
	for name, c := range map[string]struct{ value, shown string }{
		"DEPLOY_TOOL":  {"terraform", "DEPLOY_TOOL 'terraform'"},
		"PACKAGE_NAME": {"cert/backup", "PACKAGE_NAME 'cert/backup'"},
	} {
		t.Run(name, func(t *testing.T) {
			env := deployEnv()
			env[name] = c.value
			r := deploy(t, runOpts{Env: env})
			assert.Equal(t, 2, r.Code, r.Output())
			assert.Contains(t, r.Stderr, c.shown, "the value as given, not shell-escaped")
			assert.Empty(t, r.Calls)
		})
	}
	t.Run("default package", func(t *testing.T) {
		env := deployEnv()
		env["PACKAGE_NAME"] = "default"
		r := deploy(t, runOpts{Env: env})
		assert.Equal(t, 2, r.Code, r.Output())
		assert.Contains(t, r.Stderr, "PACKAGE_NAME")
		assert.Empty(t, r.Calls)
	})
}

func TestDeployWithoutDeployToolOnPath(t *testing.T) {
	// PATH with the system tools and go, but no stand-ins.
	path := strings.Join([]string{filepath.Dir(fixture.RealGo), "/usr/bin", "/bin"}, string(os.PathListSeparator))
	for tool, env := range map[string]map[string]string{"ibmcloud": deployEnv(), "wskdeploy": deployEnv()} {
		if _, err := exec.LookPath(filepath.Join("/usr/bin", tool)); err == nil {
			t.Skipf("a real %s is installed in /usr/bin", tool)
		}
		env["DEPLOY_TOOL"] = tool
		r := deploy(t, runOpts{Env: env, Path: path})
		assert.Equal(t, 2, r.Code, r.Output())
		assert.Contains(t, r.Stderr, tool+" not found")
		assert.Empty(t, r.Calls)
	}
}

// TestDeployFailureAfterDeploymentExitsNonZero: a failed step after the deployment is a
// failure (exit 1) that says what to do, never "succeeded" and exit 0.
func TestDeployFailureAfterDeploymentExitsNonZero(t *testing.T) {
	env := deployEnv()
	env["STUB_FAIL"] = "register-channel"
	r := deploy(t, runOpts{Env: env})
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Equal(t, []string{
		"ibmcloud fn deploy --manifest manifest.yaml",
		"ibmcloud fn action get certbackup/notify --url",
		cli("register-channel --url " + defaultURL),
	}, withoutGo(r.Calls))
	assert.Contains(t, r.Stderr, "registering its Callback URL channel failed")
	assert.Contains(t, r.Stderr, "run ./deploy.sh deploy again")
	assert.NotContains(t, r.Output(), "succeeded")
	assert.NotContains(t, r.Output(), "done:")
	for _, step := range []string{"Certificate Manager instance", "Notifications", "Add Notification Channel",
		"Callback URL", defaultURL, "Save", "Test Connection"} {
		assert.Contains(t, r.Stdout, step)
	}
	// The steps come in the console's order.
	assert.Less(t, strings.Index(r.Stdout, "Add Notification Channel"), strings.Index(r.Stdout, "Paste the URL"))
	assert.Less(t, strings.Index(r.Stdout, "Paste the URL"), strings.Index(r.Stdout, "Save"))
	assert.Less(t, strings.Index(r.Stdout, "Save"), strings.Index(r.Stdout, "Test Connection"))
}

// TestDeployReportsOnlyWhatTheChannelTestObserved: test-channel exits 0 only when the
// service confirmed the delivery, 3 when it accepted the request without saying, and
// anything else when the request failed.
func TestDeployReportsOnlyWhatTheChannelTestObserved(t *testing.T) {
	for _, c := range []struct {
		stub       string
		code       int
		want, not  string
		stderrWant string
	}{
		{"unconfirmed", 0, "delivery is NOT confirmed", "confirmed the delivery", ""},
		{"confirmed", 0, "Certificate Manager confirmed the delivery of a test notification to " + defaultURL, "NOT confirmed", ""},
		{"fail", 1, "Test Connection", "done:", "the request for a test notification failed"},
	} {
		t.Run(c.stub, func(t *testing.T) {
			env := deployEnv()
			env["STUB_TEST_CHANNEL"] = c.stub
			r := deploy(t, runOpts{Env: env})
			assert.Equal(t, c.code, r.Code, r.Output())
			assert.Len(t, withoutGo(r.Calls), 4)
			assert.Contains(t, r.Stdout, c.want)
			assert.NotContains(t, r.Output(), c.not)
			assert.NotContains(t, r.Output(), "now reach")
			if c.stderrWant != "" {
				assert.Contains(t, r.Stderr, c.stderrWant)
			}
		})
	}
}

func TestDeployToolFailureStops(t *testing.T) {
	env := deployEnv()
	env["STUB_FAIL"] = "fn deploy"
	r := deploy(t, runOpts{Env: env})
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Equal(t, []string{"ibmcloud fn deploy --manifest manifest.yaml"}, withoutGo(r.Calls))
	assert.Contains(t, r.Stderr, "ibmcloud fn deploy failed")
}

func TestDeployWebActionURL(t *testing.T) {
	t.Run("json extension becomes http", func(t *testing.T) {
		env := deployEnv()
		env["STUB_URL"] = "https://eu-de.functions.appdomain.cloud/api/v1/web/guid/certbackup/notify.json\r"
		r := deploy(t, runOpts{Env: env})
		require.Equal(t, 0, r.Code, r.Output())
		want := "https://eu-de.functions.appdomain.cloud/api/v1/web/guid/certbackup/notify.http"
		assert.Equal(t, cli("register-channel --url "+want), withoutGo(r.Calls)[2])
	})
	t.Run("no https line", func(t *testing.T) {
		env := deployEnv()
		env["STUB_URL"] = ""
		r := deploy(t, runOpts{Env: env})
		assert.Equal(t, 1, r.Code, r.Output())
		assert.Len(t, withoutGo(r.Calls), 2, "no registration without a URL")
		assert.Contains(t, r.Stderr, "certbackup/notify --url")
	})
}

func TestUndeploy(t *testing.T) {
	for _, args := range [][]string{{"undeploy"}, {"undeploy", "openwhisk"}} {
		r := deploy(t, runOpts{}, args...)
		require.Equal(t, 0, r.Code, r.Output())
		assert.Equal(t, []string{"ibmcloud fn undeploy --manifest manifest.yaml"}, r.Calls)
		got, set := r.EnvOf("ibmcloud", "PACKAGE_NAME")
		assert.True(t, set)
		assert.Equal(t, "certbackup", got, "undeploy interpolates the same package name")
		assert.Contains(t, r.Stdout, "delete the Callback URL channel")
		assert.Contains(t, r.Stdout, "/certbackup/notify.http")
	}

	r := deploy(t, runOpts{Env: map[string]string{"DEPLOY_TOOL": "wskdeploy", "PACKAGE_NAME": "cb2"}}, "undeploy")
	require.Equal(t, 0, r.Code, r.Output())
	assert.Equal(t, []string{"wskdeploy undeploy --manifest manifest.yaml"}, r.Calls)
	assert.Contains(t, r.Stdout, "/cb2/notify.http")

	r = deploy(t, runOpts{Env: map[string]string{"STUB_FAIL": "undeploy"}}, "undeploy")
	assert.Equal(t, 1, r.Code, r.Output())

	r = deploy(t, runOpts{}, "undeploy", "kubernetes")
	assert.Equal(t, 2, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "not 'kubernetes'")
	assert.Empty(t, r.Calls)
}

func TestUndeployBuildsMissingArchiveFirst(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	r := runScript(t, repo, runOpts{}, "undeploy")
	require.Equal(t, 0, r.Code, r.Output())
	assert.Equal(t, []string{"ibmcloud fn undeploy --manifest manifest.yaml"}, withoutGo(r.Calls))
	assert.FileExists(t, filepath.Join(repo, "build/action.zip"), "wskdeploy reads the function file even to undeploy")
}

func TestLocalBuildsThenRunsTheDemo(t *testing.T) {
	const run = "go run -trimpath -buildvcs=false ./internal/devtools/cmd/localdemo --zip build/action.zip --exec build/exec"
	for _, c := range []struct {
		args []string
		demo string // what the stand-in says it ran
	}{
		{nil, "openwhisk --zip=build/action.zip --exec=build/exec"},
		{[]string{"--serve"}, "openwhisk --zip=build/action.zip --exec=build/exec --serve"},
		{[]string{"--serve", "--verbose"}, "openwhisk --zip=build/action.zip --exec=build/exec --serve --verbose"},
		{[]string{"sm"}, "sm --zip=build/action.zip --exec=build/exec"},
		{[]string{"sm", "--verbose"}, "sm --zip=build/action.zip --exec=build/exec --verbose"},
		{[]string{"codeengine"}, "codeengine --zip=build/action.zip --exec=build/exec"},
		{[]string{"codeengine", "--verbose"}, "codeengine --zip=build/action.zip --exec=build/exec --verbose"},
	} {
		r := deploy(t, runOpts{}, append([]string{"local"}, c.args...)...)
		require.Equal(t, 0, r.Code, r.Output())
		require.NotEmpty(t, r.Calls)
		assert.Equal(t, strings.TrimSpace(run+" "+strings.Join(c.args, " ")), r.Calls[len(r.Calls)-1])
		assert.Equal(t, fixture.build.Calls, r.Calls[:len(r.Calls)-1], "local runs the same build first")
		assert.Contains(t, r.Stdout, "local demo stand-in: "+c.demo+"\n", "%v", c.args)
	}
}

func TestLocalRefusesAnUnknownDemo(t *testing.T) {
	r := deploy(t, runOpts{}, "local", "kubernetes")
	assert.Equal(t, 2, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "local takes sm or codeengine (or nothing, for the OpenWhisk demo), not 'kubernetes'")
	assert.Empty(t, r.Calls, "nothing is built for a demo that does not exist")

	// What only the demo command can refuse fails as go run reports it.
	for _, demo := range []string{"sm", "codeengine"} {
		r = deploy(t, runOpts{}, "local", demo, "--serve")
		assert.Equal(t, 1, r.Code, r.Output())
		assert.Contains(t, r.Stderr, "--serve is for the OpenWhisk demo, not "+demo)
	}
}

func TestHelpAndUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := deploy(t, runOpts{Env: deployEnv()}, args...)
		assert.Equal(t, 0, r.Code, "%v: help is not an error", args)
		assert.Empty(t, r.Stderr, "%v", args)
		assert.Empty(t, r.Calls, "%v", args)
		assert.Contains(t, r.Stdout, "usage: ./deploy.sh")
		for _, sub := range []string{"deploy", "build", "codeengine", "undeploy", "local [--serve] [--verbose]", "local sm [--verbose]", "local codeengine [--verbose]", "help",
			"CE_PROJECT", "CE_REGION", "CE_APP", "EN_INSTANCE_CRN", "WEBHOOK_SECRET", "public endpoints"} {
			assert.Contains(t, r.Stdout, sub)
		}
	}
	for _, args := range [][]string{{"frobnicate"}, {"deploy", "extra"}, {"codeengine", "extra"}} {
		r := deploy(t, runOpts{Env: deployEnv()}, args...)
		assert.Equal(t, 2, r.Code, "%v", args)
		assert.Empty(t, r.Stdout, "%v: errors go to stderr", args)
		assert.Empty(t, r.Calls, "%v", args)
	}
	r := deploy(t, runOpts{}, "frobnicate")
	assert.Contains(t, r.Stderr, "unknown subcommand 'frobnicate'")
	assert.Contains(t, r.Stderr, "usage: ./deploy.sh")
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
	}, r.Calls)
	for v, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"} {
		got, set := r.EnvOf("go", v)
		assert.True(t, set && got == want, "go build must run with %s=%s, saw %q", v, want, got)
	}
	assert.Regexp(t, `(?m)^build/action\.zip: [1-9][0-9]* bytes \(runtime go:1\.21, exec\.env openwhisk/action-golang-v1\.21\)$`, r.Stdout)

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
	r := runScript(t, repo, runOpts{}, "build")
	require.Equal(t, 0, r.Code, r.Output())
	second, err := os.ReadFile(filepath.Join(repo, "build/action.zip"))
	require.NoError(t, err)
	assert.Equal(t, fixture.zip, second, "two builds of the same inputs must be byte-identical")
}

func TestBuildTakesRuntimeFromManifest(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	manifest := filepath.Join(repo, "manifest.yaml")
	orig, err := os.ReadFile(manifest)
	require.NoError(t, err)
	require.Equal(t, 2, bytes.Count(orig, []byte("runtime: go:1.21")), "both actions name go:1.21")

	require.NoError(t, os.WriteFile(manifest, bytes.ReplaceAll(orig, []byte("runtime: go:1.21"), []byte("runtime: go:1.24")), 0o644))
	r := runScript(t, repo, runOpts{}, "build")
	require.Equal(t, 0, r.Code, r.Output())
	data, err := os.ReadFile(filepath.Join(repo, "build/action.zip"))
	require.NoError(t, err)
	assert.Equal(t, "openwhisk/action-golang-v1.24", string(zipEntries(t, data)["exec.env"]))
	assert.Contains(t, r.Stdout, "exec.env openwhisk/action-golang-v1.24")

	// notify and reconcile share the archive: their runtimes must agree.
	require.NoError(t, os.WriteFile(manifest, bytes.Replace(orig, []byte("runtime: go:1.21"), []byte("runtime: go:1.24"), 1), 0o644))
	r = runScript(t, repo, runOpts{}, "build")
	assert.NotEqual(t, 0, r.Code)
	assert.Contains(t, r.Stderr, "different runtimes")

	// Not a Go kind.
	require.NoError(t, os.WriteFile(manifest, bytes.ReplaceAll(orig, []byte("runtime: go:1.21"), []byte("runtime: nodejs:20")), 0o644))
	r = runScript(t, repo, runOpts{}, "build")
	assert.NotEqual(t, 0, r.Code)
	assert.Contains(t, r.Stderr, "nodejs:20")
}

func TestBuildWithoutFunctionPackage(t *testing.T) {
	r := deploy(t, runOpts{Env: map[string]string{"CERTBACKUP_FUNCTION_PKG": "./no-such-function"}}, "build")
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "./no-such-function does not exist")
}
