// Package realcommand_test runs what test/deploy replaces with stand-ins: the real
// terminal command against the Certificate Manager simulator, and a real build of
// ./function from the Docker build context. Unlike test/deploy it needs the whole module
// to compile.
package realcommand_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/build/buildzip"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/test/deploy/deploytest"
)

const (
	cmSecret   = "cm-SECRET-apikey-0123456789abcdef"
	defaultURL = "https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/certbackup/notify.http"
)

func setup(t *testing.T) (*deploytest.Fixture, string) {
	t.Helper()
	f, err := deploytest.Setup()
	require.NoError(t, err)
	t.Cleanup(f.Close)
	repo, err := f.CopyRepo(filepath.Join(t.TempDir(), "repo"))
	require.NoError(t, err)
	return f, repo
}

// TestDeployRegistersTheChannelWithTheRealCommand runs ./deploy.sh with the real
// terminal command (not a stand-in) against the Certificate Manager simulator: the web
// action's URL becomes a Callback URL channel of the source, Certificate Manager is asked
// to test it (and deploy.sh says the delivery is not confirmed, since the service does
// not report it), and a second deploy registers nothing twice.
func TestDeployRegistersTheChannelWithTheRealCommand(t *testing.T) {
	f, repo := setup(t)
	bin := filepath.Join(t.TempDir(), "certbackup")
	build := exec.Command("go", "build", "-o", bin, "./function")
	build.Dir = f.Root
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	// Deliveries go nowhere: the callback URL is a public host and this machine must not
	// call it. The simulator still records the attempt.
	noNetwork := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no network in tests")
	}}}
	sim, err := cmsim.New(cmsim.Options{HTTPClient: noNetwork})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	src := sim.AddInstance("us-south")
	bk := sim.AddInstance("eu-de")
	sim.AddAPIKey(cmSecret)
	sim.Grant(cmSecret, src, cmsim.Manager)
	sim.Grant(cmSecret, bk, cmsim.Manager)
	endpoints, _ := json.Marshal(map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south"), "eu-de": sim.RegionURL(srv.URL, "eu-de")})
	env := map[string]string{
		"CM_APIKEY": cmSecret, "SOURCE_INSTANCE_CRN": src, "BACKUP_INSTANCE_CRNS": bk,
		"IAM_URL": sim.IAMURL(srv.URL), "CM_ENDPOINTS": string(endpoints),
		"CERTBACKUP_CLI": bin,
	}
	deploy := func() deploytest.Result {
		t.Helper()
		r, err := f.Run(repo, deploytest.Opts{Env: env})
		require.NoError(t, err)
		assert.NotContains(t, r.Output(), cmSecret)
		return r
	}

	r := deploy()
	require.Equal(t, 0, r.Code, r.Output())
	assert.Contains(t, r.Stdout, "Registered Callback URL channel")
	assert.Contains(t, r.Stdout, "accepted the request to send test_notification_channel")
	assert.Contains(t, r.Stdout, "NOT confirmed")
	assert.NotContains(t, r.Output(), "now reach")
	chans := sim.Channels(src)
	require.Len(t, chans, 1)
	assert.Equal(t, defaultURL, chans[0].Endpoint)
	assert.True(t, chans[0].IsActive)
	var tested bool
	for _, d := range sim.Deliveries() {
		tested = tested || (d.EventType == "test_notification_channel" && d.Endpoint == defaultURL)
	}
	assert.True(t, tested, "Certificate Manager was asked to test the channel")

	r = deploy()
	require.Equal(t, 0, r.Code, r.Output())
	assert.Contains(t, r.Stdout, "already registered")
	assert.Len(t, sim.Channels(src), 1, "a redeploy registers nothing twice")

	// A key with Writer only cannot create the channel: the package is deployed, and
	// deploy.sh says the registration is left to do (console steps) and exits 1.
	other := sim.AddInstance("us-south")
	sim.Grant(cmSecret, other, cmsim.Writer)
	env["SOURCE_INSTANCE_CRN"] = other
	r = deploy()
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Contains(t, r.Output(), "Add Notification Channel")
	assert.Contains(t, r.Stderr, "registering its Callback URL channel failed")
	assert.Empty(t, sim.Channels(other))
}

// TestDockerBuildContextBuilds builds ./function the way the Dockerfile does, from
// exactly the files .dockerignore lets into the build context, with the Dockerfile's
// environment and go build line: what the image needs is in the context.
func TestDockerBuildContextBuilds(t *testing.T) {
	f, _ := setup(t)
	text, err := os.ReadFile(filepath.Join(f.Root, "Dockerfile"))
	require.NoError(t, err)
	d, err := deploytest.ParseDockerfile(string(text))
	require.NoError(t, err)
	ignoreText, err := os.ReadFile(filepath.Join(f.Root, ".dockerignore"))
	require.NoError(t, err)
	ignore := deploytest.ParseDockerignore(string(ignoreText))

	ctxDir := filepath.Join(t.TempDir(), "context")
	err = filepath.WalkDir(f.Root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.Root, path)
		if ignore.Excluded(filepath.ToSlash(rel)) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(ctxDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	require.NoError(t, err)

	words, stage, ok := d.GoBuild()
	require.True(t, ok, "the Dockerfile has a go build")
	out := filepath.Join(t.TempDir(), "exec")
	for i := range words {
		if i > 0 && words[i-1] == "-o" {
			words[i] = out
		}
	}
	cmd := exec.Command(f.RealGo, words[1:]...)
	cmd.Dir = ctxDir
	cmd.Env = os.Environ()
	for k, v := range stage.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The module cache of this machine stands in for the Dockerfile's `go mod download`.
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s in the build context:\n%s", strings.Join(words[1:], " "), output)
	bin, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.NoError(t, buildzip.CheckExec(bin), "a linux/amd64 executable")
}

// copyTree copies the directory rel of the repository into repo.
func copyTree(t *testing.T, root, repo, rel string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, rel), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, path)
		dst := filepath.Join(repo, r)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	require.NoError(t, err)
}

// TestDeployWithTheRealCheckConfig runs deploy.sh with the binary's own check-config
// (the real go, the real ./function) on the inputs of the "operator experience" issue:
// each is refused before any ibmcloud command runs, and a valid configuration passes.
func TestDeployWithTheRealCheckConfig(t *testing.T) {
	f, repo := setup(t)
	copyTree(t, f.Root, repo, "function")
	copyTree(t, f.Root, repo, "internal")
	path := strings.Join([]string{f.StubBin, filepath.Dir(f.RealGo), "/usr/bin", "/bin"}, string(os.PathListSeparator))
	valid := map[string]string{
		"CM_APIKEY":               cmSecret,
		"SOURCE_INSTANCE_CRN":     "crn:v1:bluemix:public:cloudcerts:us-south:a/0123456789abcdef:11111111-2222-3333-4444-555555555555::",
		"BACKUP_INSTANCE_CRNS":    "crn:v1:bluemix:public:cloudcerts:eu-de:a/0123456789abcdef:66666666-7777-8888-9999-000000000000::",
		"CERTBACKUP_FUNCTION_PKG": "./function",
	}
	run := func(t *testing.T, env map[string]string, args ...string) deploytest.Result {
		t.Helper()
		r, err := f.Run(repo, deploytest.Opts{Env: env, Path: path}, args...)
		require.NoError(t, err)
		if strings.Contains(r.Stderr, `unknown command "check-config"`) {
			t.Skip("./function has no check-config yet")
		}
		return r
	}
	with := func(changes map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range valid {
			env[k] = v
		}
		for k, v := range changes {
			env[k] = v
		}
		return env
	}

	for name, c := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"garbage source":    {with(map[string]string{"SOURCE_INSTANCE_CRN": "garbage"}), nil, "source"},
		"garbage backups":   {with(map[string]string{"BACKUP_INSTANCE_CRNS": "garbage"}), nil, "backup"},
		"key with spaces":   {with(map[string]string{"CM_APIKEY": "my key with spaces"}), nil, "apikey"},
		"cron out of range": {with(map[string]string{"RECONCILE_CRON": "99 99 * * *"}), nil, "cron"},
		"no webhook secret": {with(map[string]string{
			"SOURCE_INSTANCE_CRN": "crn:v1:bluemix:public:secrets-manager:us-south:a/0123456789abcdef:aaaaaaaa-1111-4222-8333-444444444444::",
			"EN_INSTANCE_CRN":     "crn:v1:bluemix:public:event-notifications:us-south:a/0123456789abcdef:cccccccc-1111-4222-8333-444444444444::",
		}), []string{"codeengine"}, "webhook_secret"},
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, c.env, c.args...)
			assert.Equal(t, 2, r.Code, r.Output())
			assert.Contains(t, strings.ToLower(r.Stderr), c.want)
			assert.Empty(t, r.Calls, "no stand-in ran: no ibmcloud command, no build")
			assert.NotContains(t, r.Output(), "my key with spaces")
			assert.NotContains(t, r.Output(), cmSecret)
		})
	}

	t.Run("valid", func(t *testing.T) {
		r := run(t, valid)
		require.Equal(t, 0, r.Code, r.Output())
		assert.Contains(t, r.Stdout, "configuration valid")
		require.NotEmpty(t, r.Calls)
		assert.Equal(t, "ibmcloud fn deploy --manifest manifest.yaml", r.Calls[0])
	})
}
