package codeengine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

// hostile is one request a stranger (or a broken sender) makes to the application.
type hostile struct {
	name    string
	method  string
	path    string
	headers map[string]string
	body    []byte
	chunked bool // sent without Content-Length
	status  int
	errWord string // the answer's "error", when it must have one
}

func bearer(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }

// hostiles is the corpus, against a world whose source holds secrets ids.
func hostiles(w *world, ids []string) []hostile {
	good := w.envelope("secret_rotated", "imported_cert", ids...)
	other := w.backups[0] // another Secrets Manager instance of the account
	otherAccount := strings.Replace(w.source, ":a/", ":a/0000", 1)
	foreignSecret := secretCRN(other, secretID(ids[0]))
	wrongLen := strings.Repeat("x", len(webhookSecret))
	nearMiss := webhookSecret[:len(webhookSecret)-1] + "Z"
	var hundredOne []string
	for i := range 101 {
		hundredOne = append(hundredOne, ids[i%len(ids)])
	}
	big := bytes.Repeat([]byte(" "), 1<<20+5<<10)
	copy(big, good)
	withTrailer := append(append([]byte{}, good...), []byte(` {"id":"2"}`)...)
	typ := func(mutate func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		mutate(m)
		b, _ := json.Marshal(m)
		return b
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	return []hostile{
		{name: "no bearer", body: good, status: http.StatusUnauthorized, errWord: "unauthorized"},
		{name: "a wrong bearer of the same length", headers: bearer(wrongLen), body: good, status: http.StatusUnauthorized, errWord: "unauthorized"},
		{name: "a bearer one character off", headers: bearer(nearMiss), body: good, status: http.StatusUnauthorized, errWord: "unauthorized"},
		{name: "the secret as a prefix of the bearer", headers: bearer(webhookSecret + "x"), body: good, status: http.StatusUnauthorized},
		{name: "the secret in Basic credentials", headers: map[string]string{"Authorization": "Basic " + webhookSecret}, body: good, status: http.StatusUnauthorized},
		{name: "the secret in another header", headers: map[string]string{"X-Webhook-Secret": webhookSecret}, body: good, status: http.StatusUnauthorized},
		{name: "the secret in the query string", path: "/events?token=" + webhookSecret, body: good, status: http.StatusUnauthorized},
		{name: "an empty bearer", headers: map[string]string{"Authorization": "Bearer "}, body: good, status: http.StatusUnauthorized},
		{name: "an envelope from another instance", headers: bearer(webhookSecret), body: envelopeFrom(other, "secret_rotated", "imported_cert", secretCRN(other, secretID(ids[0]))), status: http.StatusForbidden, errWord: "forbidden"},
		{name: "an envelope from another account", headers: bearer(webhookSecret), body: envelopeFrom(otherAccount, "secret_rotated", "imported_cert", ids[0]), status: http.StatusForbidden},
		{name: "data.source_instance_crn of another instance", headers: bearer(webhookSecret), body: typ(func(m map[string]any) { data(m)["source_instance_crn"] = other }), status: http.StatusForbidden},
		{name: "a foreign secret among ours", headers: bearer(webhookSecret), body: w.envelope("secret_rotated", "imported_cert", ids[0], foreignSecret, ids[1]), status: http.StatusForbidden, errWord: "forbidden"},
		{name: "a secret of a Certificate Manager instance", headers: bearer(webhookSecret), body: w.envelope("secret_rotated", "imported_cert", "crn:v1:bluemix:public:cloudcerts:us-south:a/abc:def:certificate:0123456789abcdef"), status: http.StatusForbidden},
		{name: "a body over the limit", headers: bearer(webhookSecret), body: big, status: http.StatusRequestEntityTooLarge},
		{name: "a body over the limit, without Content-Length", headers: bearer(webhookSecret), body: big, chunked: true, status: http.StatusRequestEntityTooLarge},
		{name: "101 secrets", headers: bearer(webhookSecret), body: w.envelope("secret_rotated", "imported_cert", hundredOne...), status: http.StatusRequestEntityTooLarge},
		{name: "malformed JSON", headers: bearer(webhookSecret), body: good[:len(good)/2], status: http.StatusBadRequest, errWord: "malformed"},
		{name: "an empty body", headers: bearer(webhookSecret), body: nil, status: http.StatusBadRequest},
		{name: "a JSON array", headers: bearer(webhookSecret), body: []byte(`[1,2,3]`), status: http.StatusBadRequest},
		{name: "trailing data", headers: bearer(webhookSecret), body: withTrailer, status: http.StatusBadRequest},
		{name: "a duplicate key", headers: bearer(webhookSecret), body: []byte(`{"source":"` + w.source + `","Source":"x","data":{}}`), status: http.StatusBadRequest},
		{name: "secrets as an object", headers: bearer(webhookSecret), body: typ(func(m map[string]any) { data(m)["secrets"] = map[string]any{"secret_id": ids[0]} }), status: http.StatusBadRequest},
		{name: "a secret_id that is a number", headers: bearer(webhookSecret), body: typ(func(m map[string]any) { data(m)["secrets"] = []any{map[string]any{"secret_id": 42}} }), status: http.StatusBadRequest},
		{name: "a secret_id that is neither CRN nor UUID", headers: bearer(webhookSecret), body: w.envelope("secret_rotated", "imported_cert", "../../secrets"), status: http.StatusBadRequest},
		{name: "source that is a number", headers: bearer(webhookSecret), body: typ(func(m map[string]any) { m["source"] = 7 }), status: http.StatusBadRequest},
		{name: "types that disagree", headers: bearer(webhookSecret), body: typ(func(m map[string]any) { data(m)["event_type"] = "secret_deleted" }), status: http.StatusBadRequest},
		{name: "a copy event without secrets", headers: bearer(webhookSecret), body: w.envelope("secret_rotated", "imported_cert"), status: http.StatusBadRequest},
		{name: "an unknown event", headers: bearer(webhookSecret), body: w.envelope("secret_teleported", "imported_cert", ids...), status: http.StatusOK},
		{name: "a deletion", headers: bearer(webhookSecret), body: w.envelope("secret_deleted", "imported_cert", ids...), status: http.StatusOK},
		{name: "an expiry warning", headers: bearer(webhookSecret), body: w.envelope("secret_about_to_expire", "imported_cert", ids...), status: http.StatusOK},
		{name: "the test event", headers: bearer(webhookSecret), body: w.envelope("test_event", ""), status: http.StatusOK},
		{name: "a secret that is not a certificate", headers: bearer(webhookSecret), body: w.envelope("secret_created", "arbitrary", ids[0]), status: http.StatusOK},
		{name: "GET /events", method: http.MethodGet, headers: bearer(webhookSecret), status: http.StatusMethodNotAllowed},
		{name: "an unknown path", path: "/events/../admin", headers: bearer(webhookSecret), body: good, status: http.StatusNotFound},
		{name: "/notify from a Secrets Manager source", path: "/notify", body: []byte(`{"data":"x.y.z"}`), status: http.StatusNotFound},
	}
}

// TestHostileRequestsReadNothing: every request of the corpus gets its status from
// the real binary, reads nothing from any instance (no IAM token is even asked for),
// and its answer and the log lines it causes hold no secret; a genuine notification
// afterwards still works, on the same process.
func TestHostileRequestsReadNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 3)
	p := serve(t, w.env)
	for _, h := range hostiles(w, ids) {
		before := w.requests()
		method := h.method
		if method == "" {
			method = http.MethodPost
		}
		path := h.path
		if path == "" {
			path = "/events"
		}
		var body io.Reader = bytes.NewReader(h.body)
		if h.chunked {
			body = io.MultiReader(bytes.NewReader(h.body)) // no length known: chunked
		}
		req, err := http.NewRequest(method, p.url+path, body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h.headers {
			req.Header.Set(k, v)
		}
		a := do(req)
		if !assert.NoError(t, a.err, h.name) {
			continue
		}
		assert.Equal(t, h.status, a.status, "%s: %.300s", h.name, a.raw)
		if h.errWord != "" {
			assert.Equal(t, h.errWord, a.body["error"], "%s: %.300s", h.name, a.raw)
		}
		if h.status == http.StatusOK {
			// Authenticated and bound to the source, but nothing to copy: the source is
			// not read and nothing is written (the backups may be checked).
			assert.Zero(t, w.cloud.SM.Count(smsim.OpGetSecret, w.source), "%s: the source is not read", h.name)
			assert.Zero(t, w.cloud.SM.Writes(""), "%s: nothing written", h.name)
		} else {
			assert.Equal(t, before, w.requests(), "%s: nothing read, no token asked for", h.name)
		}
		w.noSecrets(t, h.name, a.raw)
	}
	assert.Zero(t, w.cloud.SM.Writes(""))

	// The same process still copies a genuine notification.
	a := p.events(w.envelope("secret_rotated", "imported_cert", ids...))
	require.Equal(t, http.StatusOK, a.status, "%.500s", a.raw)
	for _, b := range w.backups {
		assert.Len(t, w.copies(t, b), len(ids))
	}
	lines := p.logLines(t)
	require.NotEmpty(t, lines)
	w.noSecrets(t, "the process's output", p.out.String())
}

// TestBatchOfHundredWithDuplicates: one notification lists 100 secrets, 60 distinct
// (as CRNs and as bare UUIDs, upper and lower case): each is read once and copied once
// into each backup; a replay reads each once more and writes nothing.
func TestBatchOfHundredWithDuplicates(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 60)
	var listed []string
	for i := range 100 {
		id := ids[i%len(ids)]
		switch i / len(ids) {
		case 1:
			id = secretID(id) // a bare UUID
			if i%2 == 0 {
				id = strings.ToUpper(id)
			}
		}
		listed = append(listed, id)
	}
	env := copyEnv(w.env)
	env["MAX_REQUESTS_PER_SECOND"] = "1000"
	p := serve(t, env)
	a := p.events(w.envelope("secret_created", "imported_cert", listed...))
	require.Equal(t, http.StatusOK, a.status, "%.800s", a.raw)
	assert.Less(t, a.took, 10*time.Second, "answered within Event Notifications' 10 s")
	summary, _ := a.body["summary"].(map[string]any)
	assert.EqualValues(t, len(ids)*len(w.backups), summary["imported"], "%v", summary)
	for _, b := range w.backups {
		assert.Equal(t, len(ids), w.cloud.SM.Count(smsim.OpCreateSecret, b), "one import per distinct secret in %s", b)
		got := w.copies(t, b)
		assert.Len(t, got, len(ids))
		for _, id := range ids {
			assert.Equal(t, 1, got[id], "%s once in %s", id, b)
		}
	}
	reads := map[string]int{}
	for _, q := range w.cloud.SM.Requests() {
		if q.Op == smsim.OpGetSecret && q.Instance == w.source {
			reads[q.SecretID]++
		}
	}
	for _, id := range ids {
		assert.Equal(t, 1, reads[secretID(id)], "%s read once", id)
	}

	w.cloud.SM.ResetLog()
	a = p.events(w.envelope("secret_rotated", "imported_cert", listed...))
	require.Equal(t, http.StatusOK, a.status, "%.800s", a.raw)
	assert.Zero(t, w.cloud.SM.Writes(""), "a replay writes nothing")
	assert.Equal(t, len(ids), w.cloud.SM.Count(smsim.OpGetSecret, w.source), "a replay reads each secret once")
	w.noSecrets(t, "the answers", a.raw)
	w.noSecrets(t, "the process's output", p.out.String())
}

// TestSlowClientsHoldNoSlot: forty clients that send their headers or their body a
// byte at a time, or never, hold connections and no slot: a genuine notification is
// copied at once meanwhile; the server cuts the slow ones off (ReadHeaderTimeout 5 s,
// ReadTimeout 10 s) and answers a body that never ends 408 or closes.
func TestSlowClientsHoldNoSlot(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 2)
	p := serve(t, w.env)
	type slow struct {
		conn   net.Conn
		header bool
	}
	var slows []slow
	for i := range 40 {
		c, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		if i%2 == 0 {
			_, err = io.WriteString(c, "POST /events HTTP/1.1\r\nHost: x\r\nAuthor")
		} else {
			_, err = fmt.Fprintf(c, "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"id\":", webhookSecret)
		}
		require.NoError(t, err)
		slows = append(slows, slow{conn: c, header: i%2 == 0})
	}
	start := time.Now()
	a := p.events(w.envelope("secret_rotated", "imported_cert", ids...))
	assert.Equal(t, http.StatusOK, a.status, "%.300s", a.raw)
	assert.Less(t, time.Since(start), 3*time.Second, "not held up by the slow clients")
	writes := w.cloud.SM.Writes("")

	// Each slow client is cut off within the server's limits.
	deadline := time.Now().Add(13 * time.Second)
	for _, s := range slows {
		_ = s.conn.SetReadDeadline(deadline)
		raw, _ := io.ReadAll(s.conn)
		assert.True(t, time.Now().Before(deadline), "the server cut the slow client off")
		if !s.header && len(raw) > 0 {
			assert.Contains(t, string(raw), "408", "a body that never ends: %.200q", raw)
		}
		w.noSecrets(t, "a slow client's answer", string(raw))
	}
	assert.Equal(t, writes, w.cloud.SM.Writes(""), "the slow requests wrote nothing")
}

func copyEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	return out
}
