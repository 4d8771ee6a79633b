package faults

import (
	"context"
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
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/require"
)

// reconcileTimeout is the reconcile action's time limit in manifest.yaml (300 s). The
// notification tests give their stack a short activation Timeout (8 s) to make the
// deadline bite, and Stack.Run would run the reconcile under that same limit; the
// reconcile is its own action with its own limit, so it is run here through the same
// pool of exec processes with the limit it is deployed with.
const reconcileTimeout = 300 * time.Second

// newStack is harness.NewStack whose secrets (API key, every certificate key it ends up
// holding, every token it signed) are registered for TestMain's scan.
func newStack(t *testing.T, o harness.Options) *harness.Stack {
	t.Helper()
	s := harness.NewStack(t, o)
	// Cleanups run last-in first-out: this one runs before the harness tears down.
	t.Cleanup(func() { harness.RegisterStack(s) })
	return s
}

// addSink registers a notification channel on the source that answers 200 and does
// nothing, so that Order, Renew and Reimport sign their tokens (Sim.SentTokens)
// without reaching the action: the test delivers them itself, when and as often as it
// wants, and measures each activation.
func addSink(t *testing.T, s *harness.Stack) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	id, err := s.Sim.AddChannel(s.Source, srv.URL, 4)
	require.NoError(t, err)
	return id
}

// sinkTokens returns the tokens signed for channel, in order.
func sinkTokens(s *harness.Stack, channel string) []cmsim.SentToken {
	var out []cmsim.SentToken
	for _, st := range s.Sim.SentTokens() {
		if st.ChannelID == channel {
			out = append(out, st)
		}
	}
	return out
}

// lastToken is the newest token of event for channel.
func lastToken(t *testing.T, s *harness.Stack, channel, event string) string {
	t.Helper()
	ts := sinkTokens(s, channel)
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].EventType == event {
			return ts[i].Token
		}
	}
	t.Fatalf("no %s token", event)
	return ""
}

// tokenCerts decodes the certificate CRNs a (trusted, test-made) token names.
func tokenCerts(t testing.TB, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var p struct {
		Certificates []struct {
			CertCRN string `json:"cert_crn"`
		} `json:"certificates"`
	}
	require.NoError(t, json.Unmarshal(raw, &p))
	var out []string
	for _, c := range p.Certificates {
		out = append(out, c.CertCRN)
	}
	return out
}

// notifyResult is one web activation as Certificate Manager sees it.
type notifyResult struct {
	Status  int
	Body    map[string]any
	Elapsed time.Duration
	Err     error
}

// notify posts {"data": token} to the web action, as the service delivers it, and
// measures the answer. Safe to call from any goroutine (it never calls t.Fatal).
func notify(s *harness.Stack, token string) notifyResult {
	b, _ := json.Marshal(map[string]string{"data": token})
	start := time.Now()
	resp, err := http.Post(s.WebURL, "application/json", strings.NewReader(string(b)))
	if err != nil {
		return notifyResult{Err: err, Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := notifyResult{Status: resp.StatusCode, Elapsed: time.Since(start), Err: err}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// pairs returns the per-backup results of a notification's answer, by backup CRN.
func pairs(body map[string]any) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	rs, _ := body["results"].([]any)
	for _, r := range rs {
		m, _ := r.(map[string]any)
		b, _ := m["backup_instance_crn"].(string)
		out[b] = append(out[b], m)
	}
	return out
}

// runReconcile runs mode reconcile through the stack's exec processes, with extra
// parameters over the bound ones, and returns the report. The report must be a
// success: the backups match the source.
func runReconcile(t testing.TB, s *harness.Stack, extra map[string]any) map[string]any {
	t.Helper()
	params := maps.Clone(s.Params)
	params["mode"] = "reconcile"
	maps.Copy(params, extra)
	status, body, err := s.Pool.Run(context.Background(), params, owproxy.RunMeta{ActionName: "/guest/certbackup/reconcile", Timeout: reconcileTimeout})
	harness.Collect(string(body))
	require.NoError(t, err, "the reconcile activation ended without a result")
	require.Equal(t, 200, status)
	var rep map[string]any
	require.NoError(t, json.Unmarshal(body, &rep))
	if e, failed := rep["error"]; failed {
		// The report holds CRNs, outcomes and messages only.
		b, _ := json.Marshal(e)
		t.Fatalf("the reconcile failed or left work: %.4000s", b)
	}
	require.Equal(t, true, rep["match"], "the reconcile says the backups match")
	return rep
}

// copiesOf returns the copies of source certificate src in backup.
func copiesOf(s *harness.Stack, backup, src string) []cmsim.StoredCertificate {
	var out []cmsim.StoredCertificate
	for _, c := range s.Sim.Snapshot(backup) {
		if got, ok := cms.SourceOf(c.Description); ok && got == src {
			out = append(out, c)
		}
	}
	return out
}

// assertMirror checks that every backup equals the source exactly: every source
// certificate has exactly one copy, which holds the source's current material byte for
// byte, its name and the description the matching rule gives it; a backup holds no
// other copy. (Certificates without a marker are someone else's: a copy without one
// would show up as a missing copy.) It returns the number of problems found.
func assertMirror(t testing.TB, s *harness.Stack) int {
	t.Helper()
	src := s.Sim.Snapshot(s.Source)
	bySource := map[string]cmsim.StoredCertificate{}
	for _, c := range src {
		bySource[c.ID] = c
	}
	problems := 0
	fail := func(format string, args ...any) {
		problems++
		if problems <= 20 { // a broken run must not print thousands of lines
			t.Errorf(format, args...)
		}
	}
	for _, b := range s.Backups {
		copies := map[string][]cmsim.StoredCertificate{}
		for _, c := range s.Sim.Snapshot(b) {
			id, ok := cms.SourceOf(c.Description)
			if !ok {
				continue
			}
			if _, ok := bySource[id]; !ok {
				fail("%s holds %s, a copy of %s, which is not in the source", b, c.ID, id)
				continue
			}
			copies[id] = append(copies[id], c)
		}
		for id, sc := range bySource {
			cs := copies[id]
			if len(cs) != 1 {
				fail("%s holds %d copies of %s, want exactly one", b, len(cs), id)
				continue
			}
			c := cs[0]
			if c.Data != sc.Data {
				fail("the copy %s of %s in %s does not hold the source's current material byte for byte (copy serial %s, source serial %s)",
					c.ID, id, b, c.SerialNumber, sc.SerialNumber)
			}
			if c.Name != sc.Name {
				fail("the copy %s of %s is named %q, the source %q", c.ID, id, c.Name, sc.Name)
			}
			if want := s.CopyDescription(b, c.ID, sc); c.Description != want {
				fail("the copy %s of %s has description %q, want %q", c.ID, id, c.Description, want)
			}
		}
	}
	return problems
}

// requireMirror is assertMirror that stops the test.
func requireMirror(t testing.TB, s *harness.Stack) {
	t.Helper()
	if n := assertMirror(t, s); n > 0 {
		t.FailNow()
	}
}

// fmtDur prints a duration in milliseconds for the measurement logs.
func fmtDur(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
