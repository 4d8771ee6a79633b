// Package e2e drives the real action binary, built and zipped as ./deploy.sh build
// does, over ActionLoop through the Certificate Manager simulator.
package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lastDelivery is the newest delivery of event to the web action.
func lastDelivery(t *testing.T, sim *cmsim.Simulator, event string) cmsim.Delivery {
	t.Helper()
	ds := sim.Deliveries()
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].EventType == event {
			return ds[i]
		}
	}
	t.Fatalf("no %s delivery", event)
	return cmsim.Delivery{}
}

func assertCopies(t *testing.T, s *harness.Stack, source string) {
	t.Helper()
	src, ok := s.Sim.Get(source)
	require.True(t, ok)
	for _, b := range s.Backups {
		var copies []cmsim.StoredCertificate
		for _, c := range s.Sim.Snapshot(b) {
			if cms.IsCopyDescription(c.Description, source) {
				copies = append(copies, c)
			}
		}
		require.Len(t, copies, 1, "one copy in %s", b)
		assert.Equal(t, src.Data, copies[0].Data, "byte for byte in %s", b)
		assert.Equal(t, src.Name, copies[0].Name)
	}
}

func TestLifecycleArrivesInEveryBackup(t *testing.T) {
	s := harness.NewStack(t, harness.Options{Backups: 2})

	cert, err := s.Sim.Order(s.Source, "shop", "shop.example.com", "www.shop.example.com")
	require.NoError(t, err)
	d := lastDelivery(t, s.Sim, "cert_issued")
	require.Equal(t, 200, d.Status, "cert_issued answered %d", d.Status)
	assertCopies(t, s, cert)

	require.NoError(t, s.Sim.Renew(cert))
	assert.Equal(t, 200, lastDelivery(t, s.Sim, "cert_renewed").Status)
	assertCopies(t, s, cert)
	for _, b := range s.Backups {
		for _, c := range s.Sim.Snapshot(b) {
			assert.True(t, c.HasPrevious, "the renewal was reimported in place")
		}
	}

	issued := s.Sim.CA().MustIssue("api.example.com")
	imp := s.Sim.Seed(s.Source, "api", "imported by hand", issued)
	next := s.Sim.CA().MustIssue("api.example.com")
	require.NoError(t, s.Sim.Reimport(imp, next.CertPEM, next.KeyPEM, next.Intermediate))
	assert.Equal(t, 200, lastDelivery(t, s.Sim, "cert_reimported").Status)
	assertCopies(t, s, imp)

	logs := s.AllLogs()
	assert.Contains(t, logs, `"event_type":"cert_issued"`, "structured JSON logs name the event")
	assert.Contains(t, logs, `"activation_id"`)
	for _, leak := range harness.FindSecrets(logs, []string{s.APIKey}, []string{issued.KeyPEM, next.KeyPEM}, nil) {
		t.Errorf("secret in the action's logs: %s %s", leak.Kind, leak.Excerpt)
	}
}

func TestForgedNotificationWritesNothing(t *testing.T) {
	s := harness.NewStack(t, harness.Options{Backups: 2, NoChannel: true})
	cert := s.Sim.Seed(s.Source, "web", "", s.Sim.CA().MustIssue("www.example.com"))
	payload := map[string]any{
		"instance_crn": s.Source, "event_type": "cert_issued", "version": 4, "latestVersion": 4,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x",
		"certificates":            []map[string]any{{"cert_crn": cert, "name": "web", "domains": "www.example.com", "expires_on": 1700000000000}},
	}
	forged := signWithRandomKey(t, payload)
	s.Sim.ResetLog()
	status, body := s.Notify(forged)
	assert.Equal(t, 401, status)
	assert.Equal(t, "bad_signature", body["error"])
	for _, b := range s.Backups {
		assert.Equal(t, 0, s.Sim.Writes(b))
	}
	assert.Equal(t, 0, s.Sim.Count(cmsim.OpDownload, ""), "nothing downloaded")

	// The same payload signed by the source instance is accepted.
	status, body = s.Notify(s.Sim.Sign(s.Source, payload))
	assert.Equal(t, 200, status, "%v", body)
	assertCopies(t, s, cert)
}

func TestTestEventAndMissingParameter(t *testing.T) {
	s := harness.NewStack(t, harness.Options{Backups: 1, NoChannel: true})
	ch, err := s.Sim.AddChannel(s.Source, s.WebURL, 4)
	require.NoError(t, err)
	_ = ch
	s.Sim.ResetLog()
	require.NoError(t, s.Sim.SendEvent(s.Source, "test_notification_channel"))
	d := lastDelivery(t, s.Sim, "test_notification_channel")
	assert.Equal(t, 200, d.Status)
	assert.Equal(t, 0, s.Sim.Count(cmsim.OpDownload, ""), "the dummy certificate is never downloaded")
	assert.Equal(t, 0, s.Sim.Count(cmsim.OpList, ""))

	// A deployment that forgot apikey: no API call, and an anonymous caller learns only
	// that the action is misconfigured (the parameter is named in the action's logs).
	s.Sim.ResetLog()
	status, body := s.Run(map[string]any{"apikey": "", "data": "x"})
	assert.Equal(t, 200, status, "the proxy answers; the web result carries the status")
	assert.EqualValues(t, 500, body["statusCode"])
	resp, _ := json.Marshal(body["body"])
	assert.Contains(t, string(resp), "misconfigured")
	assert.NotContains(t, string(resp), "apikey")
	assert.Empty(t, s.Sim.Requests(), "no API call with an invalid configuration")
}

func signWithRandomKey(t *testing.T, payload any) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return SignRS256(t, key, payload)
}

// SignRS256 builds a token with the exact header Certificate Manager uses.
func SignRS256(t *testing.T, key *rsa.PrivateKey, payload any) string {
	t.Helper()
	body, err := json.Marshal(payload)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString(body)
	sig, err := rsaSign(key, signing)
	require.NoError(t, err)
	return signing + "." + enc.EncodeToString(sig)
}
