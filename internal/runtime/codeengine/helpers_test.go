package codeengine

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/require"
)

const (
	testAPIKey        = "codeengine-test-apikey-0000000000000"
	testWebhookSecret = "codeengine-test-webhook-secret-0123456789abcdef"
)

// world is a Certificate Manager simulator with a source and a backup instance, served
// by httptest, and the environment that configures serve against it.
type world struct {
	sim *cmsim.Simulator
	srv *httptest.Server
	src string
	bk  string
	env map[string]string
}

// newWorld starts the simulator behind wrap (nil: none), so that a test can watch the
// requests the application makes.
func newWorld(t testing.TB, wrap func(http.Handler) http.Handler) *world {
	t.Helper()
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(t, err)
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	w := &world{sim: sim, srv: srv, src: sim.AddInstance("us-south"), bk: sim.AddInstance("eu-de")}
	sim.AddAPIKey(testAPIKey)
	sim.Grant(testAPIKey, w.src, cmsim.Writer)
	sim.Grant(testAPIKey, w.bk, cmsim.Manager)
	ep, err := json.Marshal(map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south"), "eu-de": sim.RegionURL(srv.URL, "eu-de")})
	require.NoError(t, err)
	w.env = map[string]string{
		"APIKEY":               testAPIKey,
		"SOURCE_INSTANCE_CRN":  w.src,
		"BACKUP_INSTANCE_CRNS": w.bk,
		"IAM_URL":              sim.IAMURL(srv.URL),
		"ENDPOINTS":            string(ep),
		"WEBHOOK_SECRET":       testWebhookSecret,
	}
	return w
}

// getenv is w.env with changes ("" removes a variable).
func (w *world) getenv(changes map[string]string) func(string) string {
	env := map[string]string{}
	for k, v := range w.env {
		env[k] = v
	}
	for k, v := range changes {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// token is a genuine notification of event about certs, signed by the source.
func (w *world) token(event string, certs ...string) string {
	var list []map[string]any
	for _, c := range certs {
		list = append(list, map[string]any{"cert_crn": c, "name": "n", "domains": "a.example.com", "expires_on": 1700000000000})
	}
	return w.sim.Sign(w.src, map[string]any{
		"instance_crn": w.src, "event_type": event, "version": 4, "latestVersion": 4,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x", "certificates": list,
	})
}

// notifyBody is the Callback URL body carrying a token.
func notifyBody(token string) *strings.Reader {
	b, _ := json.Marshal(map[string]string{"data": token})
	return strings.NewReader(string(b))
}

// secretsIn lists which of the world's secrets appear in out.
func secretsIn(out string, extra ...string) []string {
	var found []string
	for _, s := range append([]string{testAPIKey, testWebhookSecret}, extra...) {
		if s != "" && strings.Contains(out, s) {
			found = append(found, s)
		}
	}
	return found
}
