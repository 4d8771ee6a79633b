package successor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// seedSources puts one certificate of every kind the pair's source has into it.
func seedSources(t *testing.T, w *world) []string {
	t.Helper()
	kinds := []string{imported, publicPlain, publicBundled, private}
	if w.kind == fromCM {
		kinds = []string{imported, ordered, imported}
	}
	var ids []string
	for i, k := range kinds {
		ids = append(ids, w.add(t, []string{"shop", "api", "mail", "intranet"}[i], k))
	}
	return ids
}

// TestPairLifecycle: for each pair, the terminal command's dry run, reconcile, verify,
// an incremental reconcile of an unchanged source, a rotation and a rename, and a
// deletion with and without prune. After every step each backup mirrors the source.
func TestPairLifecycle(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		t.Run(pairName(kind), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, kind, 2, harness.CloudOptions{})
			ids := seedSources(t, w)
			env := w.env(nil)

			// Dry run: plans an import per pair, writes and downloads nothing.
			w.resetLogs()
			code, plan, stderr := command(t, env, "reconcile", "--dry-run")
			require.Equal(t, cli.ExitOK, code, "dry run: %s %+v", stderr, plan.Failures)
			require.NotNil(t, plan.Plan)
			assert.Equal(t, len(ids)*len(w.backups), plan.Plan.Counts[reconcile.ActionImport], "one import planned per pair")
			assert.Zero(t, w.cloud.SM.Writes(""), "a dry run writes nothing")
			assert.Zero(t, w.sourceDownloads(), "a dry run downloads nothing")

			// Reconcile: every certificate into every backup, verified.
			code, rep, stderr := command(t, env, "reconcile")
			require.Equal(t, cli.ExitOK, code, "reconcile: %s failures %+v deferred %+v", stderr, rep.Failures, rep.Deferred)
			assert.Equal(t, len(ids)*len(w.backups), rep.Counts[replicate.Imported], "%v", rep.Counts)
			assert.True(t, rep.Match)
			w.requireMirror(t)

			// Verify: matches, and costs listings only.
			w.resetLogs()
			code, v, _ := command(t, env, "verify")
			assert.Equal(t, cli.ExitOK, code, "verify: %+v", v.Plan)
			assert.True(t, v.Match)
			w.listingsOnly(t, "verify")

			// An unchanged source: a reconcile costs listings only.
			w.resetLogs()
			code, rep, _ = command(t, env, "reconcile")
			require.Equal(t, cli.ExitOK, code)
			assert.Equal(t, len(ids)*len(w.backups), rep.Counts[replicate.Unchanged], "%v", rep.Counts)
			w.listingsOnly(t, "reconcile of an unchanged source")

			// A rotation and a rename: one download, a new version of the copy (the
			// previous version kept), a renamed copy, nothing else written.
			w.rotate(t, ids[0])
			w.rename(t, ids[1], "renamed")
			w.resetLogs()
			code, rep, stderr = command(t, env, "reconcile")
			require.Equal(t, cli.ExitOK, code, "%s %+v", stderr, rep.Failures)
			assert.Equal(t, 1, w.sourceDownloads(), "only the rotated certificate is downloaded")
			assert.Equal(t, len(w.backups), rep.Counts[replicate.Reimported], "%v", rep.Counts)
			assert.Equal(t, len(w.backups), rep.Counts[replicate.Updated], "%v", rep.Counts)
			for _, b := range w.backups {
				cs := w.copies(t, b, ids[0])
				require.Len(t, cs, 1)
				assert.Equal(t, 2, cs[0].VersionsTotal, "the rotated copy has a new version and keeps the previous one")
				assert.True(t, cs[0].Versions[0].PayloadAvailable, "the previous version keeps its data")
				ops := opsOn(w.cloud.SM.Requests(), b)
				assert.Equal(t, 1, ops[smsim.OpCreateVersion], "one new version in %s", b)
				assert.Zero(t, ops[smsim.OpCreateSecret], "nothing imported in %s", b)
			}
			w.requireMirror(t)

			// A deletion: the copy is kept without prune (and verify still matches);
			// the dry run of a prune plans its deletion and deletes nothing; the prune
			// deletes it and nothing else.
			gone := ids[2]
			goneCopies := map[string]string{}
			for _, b := range w.backups {
				cs := w.copies(t, b, gone)
				require.Len(t, cs, 1)
				goneCopies[b] = cs[0].CRN
			}
			w.remove(t, gone)
			code, rep, _ = command(t, env, "reconcile")
			require.Equal(t, cli.ExitOK, code, "%+v", rep.Failures)
			assert.Equal(t, len(w.backups), rep.Counts[reconcile.OrphanKept], "%v", rep.Counts)
			code, v, _ = command(t, env, "verify")
			assert.Equal(t, cli.ExitOK, code, "orphans kept without prune do not count against verify")
			w.resetLogs()
			code, plan, _ = command(t, env, "reconcile", "--prune", "--dry-run")
			require.Equal(t, cli.ExitOK, code)
			assert.Equal(t, len(w.backups), plan.Plan.Counts[reconcile.ActionDeleteOrphan])
			assert.Zero(t, w.cloud.SM.Writes(""), "the dry run of a prune deletes nothing")
			code, rep, _ = command(t, env, "reconcile", "--prune")
			require.Equal(t, cli.ExitOK, code, "%+v", rep.Failures)
			assert.Equal(t, len(w.backups), rep.Counts[reconcile.Deleted], "%v", rep.Counts)
			for b, c := range goneCopies {
				_, err := w.cloud.SM.Get(b, secretID(c))
				assert.ErrorIs(t, err, smsim.ErrNotFound, "the orphan %s is deleted", c)
			}
			w.requireMirror(t)
			code, _, _ = command(t, env, "verify")
			assert.Equal(t, cli.ExitOK, code)
		})
	}
}
