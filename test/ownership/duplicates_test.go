package ownership

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/test/harness"
)

// racingCopy seeds in backup what a racing activation's import of source, made while
// the source held old, leaves: a copy holding old with the proof an import carries
// (bound to the certificate it holds), with a CRN above than so that it is never the
// copy the engine keeps.
func (e *env) racingCopy(t *testing.T, backup, than string, old cmsim.StoredCertificate) string {
	t.Helper()
	desc := e.s.CopyDescription(backup, "", old)
	id := e.s.Sim.SeedAbove(backup, than, old.Name, desc, issuedOf(old))
	require.Greater(t, id, than)
	return id
}

// TestRacingDuplicateWithOtherMaterialIsKept: a further proven copy of the same source
// that holds another certificate (a racing import of the version before a renewal) is
// not deleted by the notification nor by the reconcile: deleting it would lose that
// certificate. The control: a further copy holding the same certificate as the kept
// copy is removed (nothing is lost), so the rule is not vacuous.
func TestRacingDuplicateWithOtherMaterialIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	b := e.s.Backups[0]
	src := e.imported(t, "raced", "")
	e.reconcileNow(t)
	old := e.get(t, src)
	kept := e.assertOneCopy(t, b, src)
	tok := e.reimport(t, src)

	stale := e.racingCopy(t, b, kept.ID, old)
	require.Len(t, e.copies(b, src), 2, "the racing copy is proven: it is certbackup's")
	e.s.Sim.ResetLog()

	n := e.notify(t, tok)
	require.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
	p := n.pair(t, src, b)
	assert.Equal(t, kept.ID, p.CopyCRN, "the copy with the smallest CRN is kept")
	assert.NotContains(t, p.RemovedDuplicates, stale)
	got, ok := e.s.Sim.Get(stale)
	require.True(t, ok, "the copy holding the other certificate was deleted by the notification")
	assert.Equal(t, old.Data, got.Data, "and still holds it")
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpDelete, b), "nothing deleted")

	rep := e.reconcileNow(t, "--prune")
	_, ok = e.s.Sim.Get(stale)
	assert.True(t, ok, "the copy holding the other certificate was deleted by reconcile --prune: %+v", rep.Results)
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpDelete, b), "nothing deleted")

	// Control: a racing copy that holds the current certificate loses nothing.
	same := e.racingCopy(t, b, kept.ID, e.get(t, src))
	e.s.Sim.ResetLog()
	rep = e.reconcileNow(t)
	_, ok = e.s.Sim.Get(same)
	assert.False(t, ok, "a further copy holding the same certificate is removed")
	assert.Equal(t, 1, rep.Counts[reconcile.Deduplicated], "%+v", rep.Results)
	_, ok = e.s.Sim.Get(stale)
	assert.True(t, ok, "the other one is still kept")
	assert.Equal(t, e.get(t, src).Data, e.get(t, kept.ID).Data)
	harness.Collect(string(n.Raw))
}
