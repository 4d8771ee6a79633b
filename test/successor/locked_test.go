package successor

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// requestsTo counts the logged requests of op about one secret.
func requestsTo(reqs []smsim.Request, op, secretCRN string) (n, locked int) {
	for _, q := range reqs {
		if q.Op == op && q.Instance == instanceOf(secretCRN) && q.SecretID == secretID(secretCRN) {
			n++
			if q.Status == http.StatusPreconditionFailed {
				locked++
			}
		}
	}
	return n, locked
}

// TestLockedCopy: a copy locked in one backup (412 on a new version while its previous
// version is locked, and on any metadata change) is reported per certificate with the
// class `locked`, is tried once and not again, and nothing else is affected: the other
// certificates in that backup and the same certificate in the other backup are
// copied. Through a reconcile of the command (exit 1: an operator must unlock it) and
// through a notification of the source.
func TestLockedCopy(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		t.Run(pairName(kind), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, kind, 2, harness.CloudOptions{})
			locked := w.add(t, "locked", imported)
			renamed := w.add(t, "renamed", imported)
			free := w.add(t, "free", imported)
			w.reconcile(t)
			w.rotate(t, locked)
			w.reconcile(t) // the copy now has a previous version, which the lock covers
			b := w.backups[0]
			lockedCopy, renamedCopy := w.copies(t, b, locked)[0].CRN, w.copies(t, b, renamed)[0].CRN
			require.NoError(t, w.cloud.SM.LockSecret(b, secretID(lockedCopy), "app-in-use"))
			require.NoError(t, w.cloud.SM.LockSecret(b, secretID(renamedCopy), "app-in-use"))

			w.rotate(t, locked)
			w.rename(t, renamed, "renamed-again")
			w.rotate(t, free)
			w.resetLogs()
			code, rep, _ := command(t, w.env(nil), "reconcile")
			assert.Equal(t, cli.ExitFail, code, "a locked copy needs an operator")
			require.Len(t, rep.Failures, 2, "one failure per locked pair: %+v", rep.Failures)
			for _, f := range rep.Failures {
				assert.Equal(t, b, f.Backup)
				assert.Equal(t, engine.ClassLocked, f.ErrorClass, "reported as locked: %+v", f)
				assert.Contains(t, []string{locked, renamed}, f.SourceCRN)
			}
			assert.Empty(t, rep.Deferred, "a lock is not left for a retry: %+v", rep.Deferred)
			n, l := requestsTo(w.cloud.SM.Requests(), smsim.OpCreateVersion, lockedCopy)
			assert.Equal(t, 1, n, "the new version is tried once, not retried")
			assert.Equal(t, 1, l)
			n, l = requestsTo(w.cloud.SM.Requests(), smsim.OpUpdateMetadata, renamedCopy)
			assert.Equal(t, 1, n, "the rename is tried once, not retried")
			assert.Equal(t, 1, l)
			// Nothing else is affected.
			for _, bk := range w.backups {
				for _, id := range []string{locked, renamed, free} {
					if bk == b && id != free {
						continue
					}
					cs := w.copies(t, bk, id)
					if assert.Len(t, cs, 1) {
						m := w.sourceMaterial(t, id)
						assert.Equal(t, m.key, cs[0].Current().PrivateKey, "%s is up to date in %s", id, bk)
					}
				}
			}

			// A notification of the locked certificate: the same, per pair.
			c := w.core(t, config.ModeNotify, nil, fastDeps(0))
			w.resetLogs()
			a := w.trigger(t, c, locked)
			assert.NotEqual(t, http.StatusOK, a.Status, "a copy failed: %v", a.Body)
			for _, r := range a.results() {
				if r["backup_instance_crn"] == b {
					assert.Equal(t, string(replicate.Failed), r["outcome"], "%v", r)
					assert.Equal(t, engine.ClassLocked, r["error_class"], "%v", r)
				} else {
					assert.Contains(t, []any{"unchanged"}, r["outcome"], "the other backup is up to date: %v", r)
				}
			}
			n, _ = requestsTo(w.cloud.SM.Requests(), smsim.OpCreateVersion, lockedCopy)
			assert.Equal(t, 1, n, "tried once, not retried")

			// Unlocked, the next run completes.
			require.NoError(t, w.cloud.SM.Unlock(b, secretID(lockedCopy), "app-in-use"))
			require.NoError(t, w.cloud.SM.Unlock(b, secretID(renamedCopy), "app-in-use"))
			w.reconcile(t)
			w.requireMirror(t)
		})
	}
}

// TestLockedAnswerInjected: a 412 the service answers (whatever its cause) on one
// backup's new version is `locked`, tried once, and stops neither the other backup
// nor the other certificates of the notification.
func TestLockedAnswerInjected(t *testing.T) {
	t.Parallel()
	w := newWorld(t, fromSM, 2, harness.CloudOptions{})
	ids := []string{w.add(t, "aa", imported), w.add(t, "bb", private), w.add(t, "cc", publicBundled)}
	w.reconcile(t)
	for _, id := range ids {
		w.rotate(t, id)
	}
	w.cloud.SM.Inject(smsim.Fault{Op: smsim.OpCreateVersion, Instance: w.backups[1], Status: http.StatusPreconditionFailed, Times: 1})
	c := w.core(t, config.ModeNotify, nil, fastDeps(0))
	w.resetLogs()
	a := c.events(t, envelope(w.source, "secret_rotated", "", ids...))
	assert.Equal(t, http.StatusBadGateway, a.Status, "%v", a.Body)
	summary, _ := a.Body["summary"].(map[string]any)
	assert.EqualValues(t, 1, summary["failed"], "%v", summary)
	assert.EqualValues(t, 5, summary["reimported"], "%v", summary)
	for _, r := range a.results() {
		if r["outcome"] == "failed" {
			assert.Equal(t, engine.ClassLocked, r["error_class"], "%v", r)
		}
	}
	assert.Equal(t, 3, w.cloud.SM.Count(smsim.OpCreateVersion, w.backups[1]), "each copy in that backup got one attempt")
	w.reconcile(t)
	w.requireMirror(t)
}
