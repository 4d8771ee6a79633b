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
