package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	apiKey  = "app-test-key-0123456789abcdef0123"
	webhook = "webhook-secret-0123456789abcdef0123456789"
)

var ca = testpki.MustNewCA("app test CA")

// smWorld is a Secrets Manager source and backup on the simulator, and the App over them.
type smWorld struct {
	srv      *smsim.Server
	src, bk  string
	app      *app.App
	srcIDs   []string
	envelope func(event string, ids ...string) []byte
}

func newSMWorld(t *testing.T, n int) *smWorld {
	t.Helper()
	srv, err := smsim.Start(smsim.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	w := &smWorld{srv: srv, src: srv.AddInstance("us-south"), bk: srv.AddInstance("eu-de")}
	srv.AddAPIKey(apiKey)
	srv.Grant(apiKey, w.src, smsim.SecretsReader)
	srv.Grant(apiKey, w.bk, smsim.Manager)
	for i := range n {
		is := ca.MustIssue(fmt.Sprintf("site-%02d.example.com", i))
		id, err := srv.Seed(w.src, smsim.Seed{Name: fmt.Sprintf("site-%02d", i), Certificate: is.CertPEM, PrivateKey: is.KeyPEM, Intermediate: is.Intermediate})
		require.NoError(t, err)
		w.srcIDs = append(w.srcIDs, id)
	}
	ep, err := json.Marshal(srv.Endpoints())
	require.NoError(t, err)
	cfg, err := config.Parse(map[string]any{
		"apikey": apiKey, "source_instance_crn": w.src, "backup_instance_crns": w.bk,
		"iam_url": srv.IAMURL(), "endpoints": string(ep), "webhook_secret": webhook, "mode": "reconcile",
	})
	require.NoError(t, err)
	w.app, err = app.New(cfg, app.Deps{MaxRetries: 1, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	w.envelope = func(event string, ids ...string) []byte {
		var secrets []map[string]any
		for _, id := range ids {
			secrets = append(secrets, map[string]any{"secret_id": id, "secret_name": "x", "secret_group_id": "default"})
		}
		b, _ := json.Marshal(map[string]any{
			"id": "e1", "source": w.src, "specversion": "1.0", "type": "com.ibm.cloud.secrets-manager." + event,
			"datacontenttype": "application/json",
			"data":            map[string]any{"event_type": event, "secret_type": "imported_cert", "secrets": secrets, "source_instance_crn": w.src},
		})
		return b
	}
	return w
}

func (w *smWorld) post(t *testing.T, bearer string, body []byte) app.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return w.app.Handle(ctx, app.Request{Method: http.MethodPost, Path: app.PathEvents, Headers: h, Body: body, ID: "t"})
}

// TestEventsCopySecrets: an Event Notifications batch with duplicates copies each
// secret once; a replay writes nothing; forged requests read nothing.
func TestEventsCopySecrets(t *testing.T) {
	w := newSMWorld(t, 3)
	body := w.envelope("secret_rotated", w.srcIDs[0], w.srcIDs[1], w.srcIDs[0], w.srcIDs[2])
	r := w.post(t, webhook, body)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	assert.Equal(t, map[string]int{"imported": 3}, r.Body["summary"])
	copies, err := w.srv.List(w.bk)
	require.NoError(t, err)
	assert.Len(t, copies, 3, "each distinct secret once")

	before := w.srv.Writes(w.bk)
	r = w.post(t, webhook, body)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, map[string]int{"unchanged": 3}, r.Body["summary"])
	assert.Equal(t, before, w.srv.Writes(w.bk), "a replay writes nothing")

	forged := []struct {
		name   string
		bearer string
		body   []byte
		status int
	}{
		{"no bearer", "", body, http.StatusUnauthorized},
		{"wrong bearer", strings.Repeat("x", 40), body, http.StatusUnauthorized},
		{"foreign source", webhook, []byte(strings.ReplaceAll(string(body), w.src, w.bk)), http.StatusForbidden},
		{"malformed", webhook, []byte(`{"id":`), http.StatusBadRequest},
	}
	for _, f := range forged {
		n := len(w.srv.Requests())
		r := w.post(t, f.bearer, f.body)
		assert.Equal(t, f.status, r.Status, f.name)
		assert.Equal(t, n, len(w.srv.Requests()), "%s: nothing read", f.name)
		b, _ := json.Marshal(r.Body)
		assert.NotContains(t, string(b), webhook, f.name)
	}
	r = w.post(t, webhook, w.envelope("test_event"))
	assert.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
}

// TestReconcileSecretsManager: a reconcile from Secrets Manager to Secrets Manager
// copies everything, then costs listings only.
func TestReconcileSecretsManager(t *testing.T) {
	w := newSMWorld(t, 5)
	ctx := context.Background()
	rep := w.app.Reconcile(ctx, config.ModeReconcile, reconcile.Options{})
	require.True(t, rep.OK(), "%+v", rep)
	assert.Equal(t, 5, rep.Counts["imported"])
	w.srv.ResetLog()
	rep = w.app.Reconcile(ctx, config.ModeVerify, reconcile.Options{})
	require.True(t, rep.Match, "%+v", rep.Failures)
	assert.Zero(t, w.srv.Writes(""), "verify writes nothing")
	for _, q := range w.srv.Requests() {
		assert.NotEqual(t, smsim.OpGetSecret, q.Op, "verify reads no payload")
	}
}

// TestMissingGroupStopsBeforeAnyWrite: a secret group that does not exist is reported
// for that backup, naming it, and nothing is written there.
func TestMissingGroupStopsBeforeAnyWrite(t *testing.T) {
	w := newSMWorld(t, 2)
	ep, _ := json.Marshal(w.srv.Endpoints())
	cfg, err := config.Parse(map[string]any{
		"apikey": apiKey, "source_instance_crn": w.src, "backup_instance_crns": w.bk,
		"iam_url": w.srv.IAMURL(), "endpoints": string(ep), "secret_group": "no-such-group", "mode": "reconcile",
	})
	require.NoError(t, err)
	a, err := app.New(cfg, app.Deps{MaxRetries: 1})
	require.NoError(t, err)
	rep := a.Reconcile(context.Background(), config.ModeReconcile, reconcile.Options{})
	assert.False(t, rep.OK())
	require.Len(t, rep.Backups, 1)
	assert.Contains(t, rep.Backups[0].Error, "no-such-group", "the backup's error names the group")
	assert.Zero(t, w.srv.Writes(""))
}
