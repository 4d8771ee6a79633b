package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChannelCommands(t *testing.T) {
	sim, err := cmsim.New(cmsim.Options{AllowHTTPChannels: true})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	w := &cliWorld{sim: sim, source: sim.AddInstance("us-south"), backup: sim.AddInstance("eu-de")}
	sim.Grant(apiKey, w.source, cmsim.Manager)
	sim.Grant(apiKey, w.backup, cmsim.Manager)
	ep, _ := json.Marshal(map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south"), "eu-de": sim.RegionURL(srv.URL, "eu-de")})
	w.env = map[string]string{"CM_APIKEY": apiKey, "SOURCE_INSTANCE_CRN": w.source, "BACKUP_INSTANCE_CRNS": w.backup, "IAM_URL": sim.IAMURL(srv.URL), "CM_ENDPOINTS": string(ep)}

	var received atomic.Int32
	var lastBody atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lastBody.Store(string(b))
		received.Add(1)
	}))
	t.Cleanup(hook.Close)
	url := hook.URL + "/api/v1/web/ns/certbackup/notify.http"

	o := w.run(t, w.env, "test-channel", "--url", url)
	assert.Equal(t, ExitFail, o.code, "nothing to test before registration")
	assert.Contains(t, o.stderr, "run register-channel first")

	o = w.run(t, w.env, "register-channel", "--url", url)
	require.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "Registered Callback URL channel")
	chans := sim.Channels(w.source)
	require.Len(t, chans, 1)
	assert.Equal(t, url, chans[0].Endpoint)
	assert.True(t, chans[0].IsActive)

	o = w.run(t, w.env, "register-channel", "--url", url)
	require.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "already registered")
	assert.Len(t, sim.Channels(w.source), 1, "a redeploy registers nothing twice")

	// Certificate Manager delivers the test notification, but its answer to the test
	// request does not say so: test-channel reports what it observed, and no more.
	o = w.run(t, w.env, "test-channel", "--url", url)
	require.Equal(t, ExitUnconfirmed, o.code, o.stderr)
	assert.EqualValues(t, 1, received.Load(), "Certificate Manager posted the test notification")
	assert.Contains(t, lastBody.Load(), `"data":"eyJ`)
	assert.Contains(t, o.stdout, "accepted the request to send test_notification_channel")
	assert.Contains(t, o.stdout, "Delivery not confirmed")
	assert.NotContains(t, o.stdout, " sent ")

	// Nothing listens on the endpoint: the answer is the same, and so is the report; it
	// never claims a delivery (it used to say "sent" and exit 0).
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/api/v1/web/ns/certbackup/notify.http"
	dead.Close()
	o = w.run(t, w.env, "register-channel", "--url", deadURL)
	require.Equal(t, ExitOK, o.code, o.stderr)
	o = w.run(t, w.env, "test-channel", "--url", deadURL)
	assert.Equal(t, ExitUnconfirmed, o.code, o.stderr)
	assert.Contains(t, o.stdout, "Delivery not confirmed")
	assert.NotContains(t, o.stdout, " sent ")
	assert.NotContains(t, o.stdout, "confirmed that")

	for _, bad := range []string{"", "ftp://x/y", "http://example.com/notify.http", "https://u:p@example.com/x"} {
		o = w.run(t, w.env, "register-channel", "--url", bad)
		assert.Equal(t, ExitUsage, o.code, bad)
	}
}
