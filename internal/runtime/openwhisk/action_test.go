package openwhisk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const apiKey = "action-test-key-000000000000"

type world struct {
	sim    *cmsim.Simulator
	src    string
	bk     string
	params map[string]any
	a      *Action
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	w := &world{sim: sim, src: sim.AddInstance("us-south"), bk: sim.AddInstance("eu-de")}
	sim.AddAPIKey(apiKey)
	sim.Grant(apiKey, w.src, cmsim.Writer)
	sim.Grant(apiKey, w.bk, cmsim.Manager)
	ep, _ := json.Marshal(map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south"), "eu-de": sim.RegionURL(srv.URL, "eu-de")})
	w.params = map[string]any{
		"apikey": apiKey, "source_instance_crn": w.src, "backup_instance_crns": w.bk,
		"iam_url": sim.IAMURL(srv.URL), "endpoints": string(ep), "mode": "notify",
	}
	w.a = New(Options{MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond})
	return w
}

func (w *world) with(kv ...any) map[string]any {
	p := map[string]any{}
	for k, v := range w.params {
		p[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		p[kv[i].(string)] = kv[i+1]
	}
	return p
}

func (w *world) token(t *testing.T, event string, certs ...string) string {
	t.Helper()
	var list []map[string]any
	for _, c := range certs {
		list = append(list, map[string]any{"cert_crn": c, "name": "n", "domains": "a.example.com", "expires_on": 1700000000000})
	}
	return w.sim.Sign(w.src, map[string]any{
		"instance_crn": w.src, "event_type": event, "version": 4, "latestVersion": 4,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x", "certificates": list,
	})
}

func (w *world) handle(params map[string]any) (int, map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := w.a.Handle(ctx, Meta{ActivationID: "a1", Deadline: time.Now().Add(60 * time.Second)}, params)
	status, _ := res["statusCode"].(int)
	body, _ := res["body"].(map[string]any)
	return status, body
}

func TestTokenLocations(t *testing.T) {
	w := newWorld(t)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	tok := w.token(t, "cert_issued", cert)
	raw, _ := json.Marshal(map[string]string{"data": tok})
	tests := []struct {
		name   string
		params map[string]any
		status int
	}{
		{name: "merged JSON body", params: w.with("data", tok), status: 200},
		{name: "__ow_body base64 JSON (raw web action)", params: w.with("__ow_body", base64.StdEncoding.EncodeToString(raw)), status: 200},
		{name: "__ow_body plain JSON text", params: w.with("__ow_body", string(raw)), status: 200},
		{name: "__ow_body JSON value", params: w.with("__ow_body", map[string]any{"data": tok}), status: 200},
		{name: "no data", params: w.with(), status: 400},
		{name: "data not a string", params: w.with("data", 42.0), status: 400},
		{name: "data empty", params: w.with("data", ""), status: 400},
		{name: "__ow_body not JSON", params: w.with("__ow_body", "hello"), status: 400},
		{name: "__ow_body a number", params: w.with("__ow_body", 3.0), status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := w.handle(tt.params)
			assert.Equal(t, tt.status, status, "%v", body)
		})
	}
}

func TestWarmContainerReusesTokenKeyAndConnections(t *testing.T) {
	w := newWorld(t)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	tok := w.token(t, "cert_issued", cert)
	for range 3 {
		status, body := w.handle(w.with("data", tok))
		require.Equal(t, 200, status, "%v", body)
	}
	assert.Equal(t, 1, w.sim.Count(cmsim.OpIAMToken, ""), "one IAM token for the container")
	assert.Equal(t, 1, w.sim.Count(cmsim.OpPublicKey, ""), "one public key fetch for the container")
	assert.Equal(t, 1, w.sim.Count(cmsim.OpImport, w.bk), "one copy")

	// A new configuration (another key) gets new clients.
	w.sim.AddAPIKey("second-key-0000000000000")
	w.sim.Grant("second-key-0000000000000", w.src, cmsim.Writer)
	w.sim.Grant("second-key-0000000000000", w.bk, cmsim.Manager)
	status, _ := w.handle(w.with("data", tok, "apikey", "second-key-0000000000000"))
	assert.Equal(t, 200, status)
	assert.Equal(t, 2, w.sim.Count(cmsim.OpIAMToken, ""))
}

func TestKeyUnavailableAnd503(t *testing.T) {
	w := newWorld(t)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpPublicKey, Status: 503})
	status, body := w.handle(w.with("data", w.token(t, "cert_issued", cert)))
	assert.Equal(t, 503, status)
	assert.Equal(t, "key_unavailable", body["error"])
	assert.Equal(t, 0, w.sim.Count(cmsim.OpDownload, ""))
}

func TestStaticKeyIsNeverFetched(t *testing.T) {
	w := newWorld(t)
	pub, err := w.sim.PublicKeyPEM(w.src)
	require.NoError(t, err)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	status, _ := w.handle(w.with("data", w.token(t, "cert_issued", cert), "source_public_key", pub))
	assert.Equal(t, 200, status)
	assert.Equal(t, 0, w.sim.Count(cmsim.OpPublicKey, ""))
	status, _ = w.handle(w.with("source_public_key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "data", "x.y.z"))
	assert.Equal(t, 500, status, "an unusable configured key is a configuration error")
}

func TestEventsThatCopyNothing(t *testing.T) {
	w := newWorld(t)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	for _, ev := range []string{"cert_about_to_expire_reimport_required", "cert_order_failed", "something_new"} {
		w.sim.ResetLog()
		status, body := w.handle(w.with("data", w.token(t, ev, cert)))
		assert.Equal(t, 200, status, ev)
		assert.Equal(t, "acknowledged", body["action"], ev)
		assert.Equal(t, 0, w.sim.Count(cmsim.OpDownload, ""), ev)
		assert.Equal(t, 0, w.sim.Writes(w.bk), ev)
	}
}

func TestReconcileAndVerifyModes(t *testing.T) {
	w := newWorld(t)
	w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	ctx := context.Background()
	res := w.a.Handle(ctx, Meta{}, w.with("mode", "verify"))
	require.Contains(t, res, "error", "backups do not match yet: an application error")
	res = w.a.Handle(ctx, Meta{}, w.with("mode", "reconcile"))
	require.NotContains(t, res, "error", "%v", res)
	assert.Equal(t, true, res["match"])
	res = w.a.Handle(ctx, Meta{}, w.with("mode", "verify"))
	assert.NotContains(t, res, "error")
	res = w.a.Handle(ctx, Meta{}, w.with("mode", "reconcile", "concurrency", "many"))
	require.Contains(t, res, "error")
	assert.Contains(t, res["error"].(map[string]any)["message"], "parameter concurrency")
}

func TestBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	ctx, cancel := budget(context.Background(), now.Add(60*time.Second), now, "notify")
	defer cancel()
	dl, ok := ctx.Deadline()
	require.True(t, ok)
	assert.Equal(t, now.Add(45*time.Second), dl, "web: 50 s cap minus a tenth")

	ctx2, cancel2 := budget(context.Background(), now.Add(300*time.Second), now, "reconcile")
	defer cancel2()
	dl, _ = ctx2.Deadline()
	assert.Equal(t, now.Add(270*time.Second), dl)

	ctx3, cancel3 := budget(context.Background(), now.Add(3*time.Second), now, "reconcile")
	defer cancel3()
	dl, _ = ctx3.Deadline()
	assert.Equal(t, now.Add(1500*time.Millisecond), dl, "never more than half of a short budget as margin")
}

// TestPanicIsNeverSuccess: a crash must not become an empty result (204 for a web
// action, which Certificate Manager would take for a delivered notification).
func TestPanicIsNeverSuccess(t *testing.T) {
	w := newWorld(t)
	// Plant the crash in the logger: the handler logs on every path.
	a := New(Options{Logger: slog.New(panicHandler{})})
	res := a.Handle(context.Background(), Meta{}, w.with("data", "x.y.z"))
	assert.EqualValues(t, 500, res["statusCode"], "%v", res)
	body, _ := res["body"].(map[string]any)
	assert.Equal(t, "internal", body["error"])
}

type panicHandler struct{}

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("boom") }
func (h panicHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h panicHandler) WithGroup(string) slog.Handler           { return h }

func TestLogsCarryActivationAndNoSecrets(t *testing.T) {
	w := newWorld(t)
	var buf safeBuffer
	w.a = New(Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), MinRetryInterval: 5 * time.Millisecond})
	issued := w.sim.CA().MustIssue("www.example.com")
	cert := w.sim.Seed(w.src, "web", "", issued)
	tok := w.token(t, "cert_issued", cert)
	status, _ := w.handle(w.with("data", tok))
	require.Equal(t, 200, status)
	logs := buf.String()
	var replicated int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "every log line is JSON: %s", line)
		assert.Equal(t, "a1", rec["activation_id"], line)
		if rec["msg"] == "replicated" {
			replicated++
			assert.Equal(t, "cert_issued", rec["event_type"])
			assert.Equal(t, cert, rec["source_crn"])
		}
	}
	assert.Equal(t, 1, replicated)
	for _, s := range []string{apiKey, tok, "PRIVATE KEY", issued.KeyPEM[40:80]} {
		assert.NotContains(t, logs, s)
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKeyRotation: the source instance's key changes; the warm container follows it
// (refetch on a bad signature, at most once a minute), and a forged flood does not
// make it fetch again and again.
func TestKeyRotation(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	w.a = New(Options{Now: clock, MinRetryInterval: 5 * time.Millisecond})
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))

	status, _ := w.handle(w.with("data", w.token(t, "cert_issued", cert)))
	require.Equal(t, 200, status)
	require.Equal(t, 1, w.sim.Count(cmsim.OpPublicKey, ""))

	require.NoError(t, w.sim.RotateKey(w.src))
	advance(2 * time.Minute)
	status, body := w.handle(w.with("data", w.token(t, "cert_reimported", cert)))
	assert.Equal(t, 200, status, "%v", body)
	assert.Equal(t, 2, w.sim.Count(cmsim.OpPublicKey, ""), "one refetch followed the rotation")

	for range 5 {
		status, _ = w.handle(w.with("data", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"))
		assert.Equal(t, 401, status)
	}
	assert.Equal(t, 2, w.sim.Count(cmsim.OpPublicKey, ""), "forged tokens within the minute fetch nothing")
}
