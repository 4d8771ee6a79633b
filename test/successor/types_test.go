package successor

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// inactive seeds the source certificates that must be skipped, by the state
// description the reason must name.
func inactive(t *testing.T, w *world) map[string]string {
	t.Helper()
	out := map[string]string{}
	pending, err := w.cloud.SM.Seed(w.source, smsim.Seed{Type: smsim.PublicCert, Name: "ordered-not-issued"})
	require.NoError(t, err)
	out[secretCRN(w.source, pending)] = "pre_activation"
	for _, st := range []smsim.State{smsim.Suspended, smsim.Deactivated, smsim.Destroyed} {
		id := w.add(t, "state-"+st.Description(), imported)
		require.NoError(t, w.cloud.SM.SetState(w.source, secretID(id), st))
		out[id] = st.Description()
	}
	return out
}

// TestSourceTypes: from a Secrets Manager source, imported_cert, public_cert (its chain
// in intermediate, or bundled with the leaf) and private_cert (issuing_ca and
// ca_chain) in state Active are copied, each as an imported_cert holding the leaf, the
// key and the chain, each certificate once; Pre-activation, Suspended, Deactivated and
// Destroyed ones are skipped with a reason that names their state, read never, and do
// not count against verify. Payloads are read only for what is copied, and a later run
// reads only the one that changed.
func TestSourceTypes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, fromSM, 2, harness.CloudOptions{})
	active := map[string]string{}
	for _, k := range []string{imported, publicPlain, publicBundled, private} {
		active[w.add(t, "type-"+k, k)] = k
	}
	skipped := inactive(t, w)
	env := w.env(nil)

	w.resetLogs()
	code, rep, stderr := command(t, env, "reconcile")
	require.Equal(t, cli.ExitOK, code, "%s %+v", stderr, rep.Failures)
	assert.Equal(t, len(active)*len(w.backups), rep.Counts[replicate.Imported], "%v", rep.Counts)
	assert.Equal(t, len(skipped)*len(w.backups), rep.Counts[replicate.Skipped], "%v", rep.Counts)
	w.requireMirror(t)
	for _, b := range w.backups {
		for id := range skipped {
			assert.Empty(t, w.copies(t, b, id), "%s is not copied", id)
		}
	}
	for _, r := range rep.Results {
		if state, ok := skipped[r.SourceCRN]; ok {
			assert.Equal(t, reconcile.ActionSkip, r.Action)
			assert.Contains(t, r.Reason, state, "the reason names the state: %+v", r)
		}
	}
	gets := map[string]int{}
	for _, q := range w.cloud.SM.Requests() {
		if q.Instance == w.source && q.Op == smsim.OpGetSecret {
			gets[q.SecretID]++
		}
	}
	for id, k := range active {
		assert.Equal(t, 1, gets[secretID(id)], "the %s is read once for both backups", k)
	}
	for id := range skipped {
		assert.Zero(t, gets[secretID(id)], "%s is never read", id)
	}

	code, v, _ := command(t, env, "verify")
	assert.Equal(t, cli.ExitOK, code, "skipped certificates do not count against verify: %+v", v.Plan)

	// One changed certificate: its payload alone is read.
	var bundled string
	for id, k := range active {
		if k == publicBundled {
			bundled = id
		}
	}
	w.rotate(t, bundled)
	w.resetLogs()
	code, rep, _ = command(t, env, "reconcile")
	require.Equal(t, cli.ExitOK, code, "%+v", rep.Failures)
	assert.Equal(t, 1, w.cloud.SM.Count(smsim.OpGetSecret, w.source), "only the renewed certificate's payload is read")
	assert.Equal(t, len(w.backups), rep.Counts[replicate.Reimported], "%v", rep.Counts)
	w.requireMirror(t)
}

// TestEventsForEachType: an Event Notifications secret_rotated (or secret_created)
// for each active type copies it, reading its payload once for every backup; one for a
// secret that is not active is skipped with a reason, and the notification is answered
// 200 (a 5xx would only make Event Notifications retry what can never be copied); a
// secret_created of a secret type that is not a certificate is acknowledged and reads
// nothing.
func TestEventsForEachType(t *testing.T) {
	t.Parallel()
	w := newWorld(t, fromSM, 2, harness.CloudOptions{})
	c := w.core(t, config.ModeNotify, nil, fastDeps(0))
	for _, k := range []string{imported, publicPlain, publicBundled, private} {
		id := w.add(t, "event-"+k, k)
		w.resetLogs()
		a := c.events(t, envelope(w.source, "secret_created", typeOf(k), id))
		assert.Equal(t, http.StatusOK, a.Status, "%s: %v", k, a.Body)
		assert.Equal(t, 1, w.cloud.SM.Count(smsim.OpGetSecret, w.source), "%s: the payload is read once", k)
		for _, r := range a.results() {
			assert.Equal(t, "imported", r["outcome"], "%s: %v", k, r)
			assert.Equal(t, true, r["verified"])
		}
	}
	w.requireMirror(t)

	for id, state := range inactive(t, w) {
		w.resetLogs()
		a := c.events(t, envelope(w.source, "secret_rotated", "", id))
		assert.Equal(t, http.StatusOK, a.Status, "a %s secret: %v", state, a.Body)
		for _, r := range a.results() {
			assert.Equal(t, "skipped", r["outcome"], "a %s secret is skipped: %v", state, r)
			reason, _ := r["reason"].(string)
			assert.Contains(t, reason, state, "with a reason that names its state: %v", r)
		}
		assert.Zero(t, w.cloud.SM.Writes(""), "nothing written for a %s secret", state)
		for _, b := range w.backups {
			assert.Empty(t, w.copies(t, b, id))
		}
	}

	w.resetLogs()
	a := c.events(t, envelope(w.source, "secret_created", "arbitrary", secretCRN(w.source, "0b6ea2d2-1c55-4c4f-a5bb-5a2a3f0d7e11")))
	assert.Equal(t, http.StatusOK, a.Status, "%v", a.Body)
	assert.Empty(t, w.cloud.SM.Requests(), "a secret that is not a certificate is not read")
}

func typeOf(kind string) string {
	switch {
	case strings.HasPrefix(kind, "public"):
		return "public_cert"
	case kind == private:
		return "private_cert"
	default:
		return "imported_cert"
	}
}
