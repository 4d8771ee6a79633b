package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeployRegistersTheChannelWithTheRealCommand runs ./deploy.sh with the real
// terminal command (not a stand-in) against the Certificate Manager simulator: the web
// action's URL becomes a Callback URL channel of the source, Certificate Manager is asked
// to test it, and a second deploy registers nothing twice.
func TestDeployRegistersTheChannelWithTheRealCommand(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "certbackup")
	build := exec.Command("go", "build", "-o", bin, "./function")
	build.Dir = root
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

	r := deploy(t, runOpts{env: env})
	require.Equal(t, 0, r.code, r.output())
	assert.Contains(t, r.stdout, "Registered Callback URL channel")
	assert.Contains(t, r.stdout, "sent test_notification_channel")
	chans := sim.Channels(src)
	require.Len(t, chans, 1)
	assert.Equal(t, defaultURL, chans[0].Endpoint)
	assert.True(t, chans[0].IsActive)
	var tested bool
	for _, d := range sim.Deliveries() {
		tested = tested || (d.EventType == "test_notification_channel" && d.Endpoint == defaultURL)
	}
	assert.True(t, tested, "Certificate Manager was asked to test the channel")

	r = deploy(t, runOpts{env: env})
	require.Equal(t, 0, r.code, r.output())
	assert.Contains(t, r.stdout, "already registered")
	assert.Len(t, sim.Channels(src), 1, "a redeploy registers nothing twice")

	// A key with Writer only cannot create the channel: the deploy still succeeds and
	// prints the console steps.
	sim.Revoke(cmSecret, src)
	sim.Grant(cmSecret, src, cmsim.Writer)
	env["CM_ENDPOINTS"] = string(endpoints)
	other := sim.AddInstance("us-south")
	sim.Grant(cmSecret, other, cmsim.Writer)
	env["SOURCE_INSTANCE_CRN"] = other
	r = deploy(t, runOpts{env: env})
	require.Equal(t, 0, r.code, r.output())
	assert.Contains(t, r.output(), "Add Notification Channel")
	assert.Empty(t, sim.Channels(other))
}
