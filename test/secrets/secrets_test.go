package secrets

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// session drives a stack and keeps every answer, header and error of every activation.
type session struct {
	t   *testing.T
	s   *harness.Stack
	out []string
}

// post sends body to the web action as Certificate Manager would and records the whole
// HTTP answer.
func (c *session) post(body, contentType string) (int, map[string]any) {
	c.t.Helper()
	resp, err := http.Post(c.s.WebURL, contentType, strings.NewReader(body))
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	c.out = append(c.out, fmt.Sprintf("%s %v\n%s", resp.Status, resp.Header, raw))
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (c *session) notify(token string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]string{"data": token})
	return c.post(string(b), "application/json")
}

// run invokes the action directly with params over the bound ones and records its
// result and any error of the run.
func (c *session) run(params map[string]any) map[string]any {
	c.t.Helper()
	merged := maps.Clone(c.s.Params)
	maps.Copy(merged, params)
	status, body, err := c.s.Pool.Run(context.Background(), merged, owproxy.RunMeta{ActionName: "/guest/certbackup/reconcile", Timeout: 60 * time.Second})
	c.out = append(c.out, fmt.Sprintf("%d %v\n%s", status, err, body))
	require.NoError(c.t, err)
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(body, &m))
	return m
}

// TestNoSecretsInAnyOutput runs a representative session (lifecycle events, events
// that copy nothing, a forged and a malformed token, failing backups, reconciles that
// succeed and fail, configuration errors with bogus API keys) and looks for secrets in
// every log line, result and error: the stack's API key and the bogus ones, the key of
// every certificate involved (every version), every notification token sent and the
// forged one, and any PEM private key, JWT or bearer token.
func TestNoSecretsInAnyOutput(t *testing.T) {
	s := harness.NewStack(t, harness.Options{Backups: 2, NoChannel: true, Timeout: 20 * time.Second})
	c := &session{t: t, s: s}
	keyPEMs := map[string]bool{}
	keep := func(crn string) { // the key of the certificate's current version
		got, ok := s.Sim.Get(crn)
		require.True(t, ok)
		keyPEMs[got.Data.PrivKey] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	sink, err := s.Sim.AddChannel(s.Source, srv.URL, 4)
	require.NoError(t, err)
	last := func() string {
		ts := s.Sim.SentTokens()
		require.NotEmpty(t, ts)
		require.Equal(t, sink, ts[len(ts)-1].ChannelID)
		return ts[len(ts)-1].Token
	}
	expect := func(want int, status int, body map[string]any, what string) {
		t.Helper()
		assert.Equal(t, want, status, "%s: %v", what, body)
	}

	// Lifecycle events.
	shop, err := s.Sim.Order(s.Source, "shop", "shop.example.com", "www.shop.example.com")
	require.NoError(t, err)
	keep(shop)
	issuedToken := last()
	st, body := c.notify(issuedToken)
	expect(200, st, body, "cert_issued")
	require.NoError(t, s.Sim.Renew(shop))
	keep(shop)
	st, body = c.notify(last())
	expect(200, st, body, "cert_renewed")
	api := s.Sim.Seed(s.Source, "api", "imported by hand", s.Sim.CA().MustIssue("api.example.com"))
	keep(api)
	next := s.Sim.CA().MustIssue("api.example.com")
	require.NoError(t, s.Sim.Reimport(api, next.CertPEM, next.KeyPEM, next.Intermediate))
	keep(api)
	st, body = c.notify(last())
	expect(200, st, body, "cert_reimported")
	st, body = c.notify(issuedToken) // a replay
	expect(200, st, body, "replay")

	// Events that copy nothing.
	require.NoError(t, s.Sim.SendEvent(s.Source, cmsim.EventCertAboutToExpireReimportRequired, api))
	st, body = c.notify(last())
	expect(200, st, body, "about to expire")
	require.NoError(t, s.Sim.SendEvent(s.Source, cmsim.EventTestNotificationChannel))
	st, body = c.notify(last())
	expect(200, st, body, "test event")

	// A forged token (the real payload, signed with another key) and malformed ones.
	forged := resign(t, issuedToken)
	st, body = c.notify(forged)
	expect(401, st, body, "forged")
	assert.Equal(t, "bad_signature", body["error"])
	parts := strings.Split(issuedToken, ".")
	st, body = c.notify(parts[0] + "." + parts[1]) // signature cut off
	expect(400, st, body, "two segments")
	st, body = c.post(issuedToken, "text/plain") // the token as a raw body
	assert.Contains(t, []int{200, 400}, st, "raw body: %v", body)

	// Failing backups: a copy fails (503 on one, resets on the other).
	s.Sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: s.Backups[0], Status: 503})
	s.Sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: s.Backups[1], Drop: true})
	failing, err := s.Sim.Order(s.Source, "failing", "failing.example.com")
	require.NoError(t, err)
	keep(failing)
	st, body = c.notify(last())
	expect(502, st, body, "failing backups")
	s.Sim.ClearFaults()

	// Reconciles: one that completes the job, a verify, one that a backup fails.
	rep := c.run(map[string]any{"mode": "reconcile"})
	assert.Equal(t, true, rep["match"], "reconcile: %v", rep["error"])
	rep = c.run(map[string]any{"mode": "verify"})
	assert.Equal(t, true, rep["match"], "verify: %v", rep["error"])
	s.Sim.Inject(cmsim.Fault{Op: cmsim.OpList, Instance: s.Backups[1], Status: 500})
	rep = c.run(map[string]any{"mode": "reconcile"})
	assert.Contains(t, rep, "error", "a reconcile that cannot list a backup is an error")
	s.Sim.ClearFaults()

	// Configuration errors with bogus API keys: a well-formed key IAM does not know (the
	// run fails at IAM), as apikey and as backup_apikey, and values that are not keys at
	// all (refused by the configuration).
	bogus := "bogus-" + strings.Repeat("0123456789abcdef", 2)
	bogusBackup := "bogus-backup-" + strings.Repeat("fedcba9876543210", 2)
	malformed := `{"apikey": "Bearer abcdefghijklmnopqrstuvwxyz012345"}`
	spaced := "not a key but a sentence with the word secret in it"
	rep = c.run(map[string]any{"mode": "reconcile", "apikey": bogus})
	assert.Contains(t, rep, "error", "reconcile with an unknown API key")
	rep = c.run(map[string]any{"mode": "reconcile", "backup_apikey": bogusBackup})
	assert.Contains(t, rep, "error", "reconcile with an unknown backup API key")
	rep = c.run(map[string]any{"mode": "notify", "apikey": bogus, "data": issuedToken, "__ow_method": "post"})
	assert.EqualValues(t, 502, rep["statusCode"], "notify with an unknown API key: %v", rep)
	for _, bad := range []string{malformed, spaced} {
		rep = c.run(map[string]any{"mode": "reconcile", "apikey": bad})
		e, _ := json.Marshal(rep["error"])
		assert.Contains(t, string(e), "apikey", "the error names the parameter")
		rep = c.run(map[string]any{"mode": "notify", "backup_apikey": bad, "data": issuedToken, "__ow_method": "post"})
		assert.EqualValues(t, 500, rep["statusCode"], "%v", rep)
	}

	// Everything the action said, and every secret it must not have said.
	for _, inst := range append([]string{s.Source}, s.Backups...) {
		for _, cert := range s.Sim.Snapshot(inst) {
			keyPEMs[cert.Data.PrivKey] = true
		}
	}
	keyPEMs[next.KeyPEM] = true
	delete(keyPEMs, "")
	var tokens []string
	for _, st := range s.Sim.SentTokens() {
		tokens = append(tokens, st.Token)
	}
	tokens = append(tokens, forged)
	apiKeys := []string{s.APIKey, bogus, bogusBackup, malformed, spaced}
	pems := harness.SortedKeys(keyPEMs)
	harness.RegisterSecrets(apiKeys, pems, tokens)

	logs := s.AllLogs()
	all := strings.Join(append(c.out, logs), "\n")
	harness.Collect(c.out...)

	// The capture holds the session, and the secrets list would see a leak.
	for _, want := range []string{`"event_type":"cert_issued"`, "cert_renewed", "cert_reimported", "test_notification_channel",
		"bad_signature", "malformed", "at least one copy failed", `"match":true`, "parameter apikey", "authenticate", "activation_id"} {
		assert.Contains(t, all, want, "the capture holds the session")
	}
	require.Len(t, pems, 5, "the keys of every certificate version involved: shop (2), api (2), failing")
	for _, p := range pems {
		require.NotEmpty(t, harness.FindSecrets(p, nil, pems, nil), "a leaked key would be found")
	}
	require.NotEmpty(t, harness.FindSecrets(tokens[0][:len(tokens[0])-1]+"x", nil, nil, nil), "a leaked token would be found")
	for _, k := range apiKeys {
		require.NotEmpty(t, harness.FindSecrets("..."+k+"...", apiKeys, nil, nil), "a leaked API key would be found")
	}

	leaks := harness.FindSecrets(all, apiKeys, pems, tokens)
	for _, l := range leaks {
		t.Errorf("secret in the action's output: %s %s", l.Kind, l.Excerpt)
	}
	t.Logf("scanned %d bytes (%d results and errors, %d bytes of logs) for %d API keys, %d private keys and %d tokens: %d leaks",
		len(all), len(c.out), len(logs), len(apiKeys), len(pems), len(tokens), len(leaks))
}

// resign returns token's header and payload signed with a fresh RSA key.
func resign(t *testing.T, token string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	signing := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	require.NoError(t, err)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}
