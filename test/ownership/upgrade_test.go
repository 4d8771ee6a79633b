package ownership

import (
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// legacyCopies seeds in every backup what the release before proofs left: a copy of
// each source certificate holding its exact material, with the marker without proof.
func (e *env) legacyCopies(t *testing.T, sources ...string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, b := range e.s.Backups {
		out[b] = map[string]string{}
		for _, s := range sources {
			c := e.get(t, s)
			out[b][s] = e.s.Sim.Seed(b, c.Name, legacy(c.Description, s), issuedOf(c))
		}
	}
	return out
}

// TestUpgradeAdoptsLegacyCopies: after an upgrade, the copies the previous release
// made (old marker, the source's exact material) are adopted in place, by the
// notification path and by the reconcile: no import, no delete, the same CRNs, now
// proven. A certificate with the old marker and other material is someone else's: left
// alone, reported, and the backup gets its own copy beside it.
func TestUpgradeAdoptsLegacyCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ordered := e.order(t, "shop")
	described := e.imported(t, "api", "the public API\nsecond line")
	imported := e.imported(t, "mail", "")
	d := e.domain("claimed")
	claimed := e.imported(t, "claimed", "", d)
	old := e.legacyCopies(t, ordered, described, imported)
	// Another team's certificate for the same domains, with the old marker naming
	// claimed: a Writer can type that marker, so only the material could make it ours.
	foreign := e.foreign(t, e.s.Backups[0], "claimed", legacy("", claimed), d)
	before := e.snapshot([]string{foreign})
	e.s.Sim.ResetLog()

	n := e.notify(t, e.event(t, "cert_issued", ordered))
	require.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
	for _, b := range e.s.Backups {
		p := n.pair(t, ordered, b)
		assert.Equal(t, old[b][ordered], p.CopyCRN, "the legacy copy is the copy")
		assert.Equal(t, replicate.Updated, p.Outcome, "adopted: its marker is rewritten with a proof")
		assert.Equal(t, old[b][ordered], e.assertOneCopy(t, b, ordered).ID)
	}
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpImport, ""), "the notification imported nothing")

	rep := e.reconcileNow(t, "--prune")
	e.assertUntouched(t, before, "after the upgrade's reconcile")
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpDelete, ""), "nothing deleted")
	assert.Equal(t, len(e.s.Backups), e.s.Sim.Carried(cmsim.OpImport, ""), "one import per backup, for claimed only: %+v", rep.Results)
	for _, b := range e.s.Backups {
		for _, s := range []string{ordered, described, imported} {
			assert.Equal(t, old[b][s], e.assertOneCopy(t, b, s).ID, "the legacy copy of %s in %s is adopted in place", s, b)
		}
		e.assertOneCopy(t, b, claimed)
	}
	assert.Equal(t, "the public API\nsecond line", engineDescription(e.assertOneCopy(t, e.s.Backups[1], described)))
	var reported bool
	for _, r := range rep.Conflicts {
		reported = reported || r.SourceCRN == claimed && r.Backup == e.s.Backups[0] && len(r.Conflicts) == 1 && r.Conflicts[0] == foreign
	}
	assert.True(t, reported, "the legacy-marked foreign certificate is reported: %+v", rep.Conflicts)

	// Upgraded: the next runs write nothing.
	e.s.Sim.ResetLog()
	rep = e.reconcileNow(t)
	assert.Zero(t, e.s.Sim.Writes(""), "a second run writes nothing: %+v", rep.Results)
	code, _ := run(t, e.cliEnv(e.s.APIKey), "verify")
	assert.Equal(t, cli.ExitOK, code)
}

// TestUpgradeThenRenewal: when the first event after an upgrade is a renewal (the
// source renewed before any run of this release), the legacy copy holds the source's
// previous certificate. Its marker proves nothing (the release before proofs wrote
// none), and it does not hold the source's material: nothing tells it from another
// team's certificate of the same domains on which a Writer wrote the same marker (the
// attack of TestAttacks). Security wins, as README "How a copy is recognised" says:
// it is left alone and reported with the reason, and the backup gets a proven copy.
// The README's upgrade step (run a reconcile right after upgrading, when every legacy
// copy is up to date) avoids the case; TestUpgradeAdoptsLegacyCopies proves that.
func TestUpgradeThenRenewal(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"notification", "reconcile"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			b := e.s.Backups[0]
			src := e.order(t, "renewed-after-upgrade")
			e.legacyCopies(t, src)
			legacy := e.s.Sim.Snapshot(b)
			require.Len(t, legacy, 1)
			tok := e.renew(t, src)
			switch path {
			case "notification":
				n := e.notify(t, tok)
				require.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
				p := n.pair(t, src, b)
				assert.Equal(t, "conflict", string(p.Outcome))
				assert.Contains(t, p.Conflicts, legacy[0].ID)
			case "reconcile":
				rep := e.reconcileNow(t)
				var reported bool
				for _, r := range rep.Conflicts {
					reported = reported || slices.Contains(r.Conflicts, legacy[0].ID)
				}
				assert.True(t, reported, "the stale legacy copy is reported as a conflict")
			}
			e.assertOneCopy(t, b, src)
			got, ok := e.s.Sim.Get(legacy[0].ID)
			require.True(t, ok, "the legacy copy is never deleted")
			assert.Equal(t, legacy[0].Data, got.Data, "nor reimported")
			assert.Equal(t, legacy[0].Description, got.Description, "nor relabelled")
		})
	}
}

// TestAPIKeyRotation: an operator rotates the API key (a new key with the same roles,
// the old one deleted) and sets no ownership_key. Proofs made with the old key no longer
// verify, but every copy holds the source's material and is adopted in place: no
// import, no delete, the same CRNs, through the notification path (the real zip with
// the new key) and the reconcile; then nothing more is written.
func TestAPIKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	a := e.order(t, "alpha")
	bb := e.imported(t, "beta", "kept")
	c := e.imported(t, "gamma", "")
	e.reconcileNow(t)
	ids := map[string]string{}
	for _, b := range e.s.Backups {
		for _, s := range []string{a, bb, c} {
			ids[b+s] = e.assertOneCopy(t, b, s).ID
		}
	}
	rotated := e.rotate(t)
	e.s.Sim.ResetLog()

	web := e.s.WebAction(map[string]any{"apikey": rotated.key})
	status, raw := e.s.PostTo(web, tokenBody(e.event(t, "cert_issued", a)))
	require.Equal(t, http.StatusOK, status, "%s", raw)
	code, rep := run(t, e.cliEnv(rotated.key), "reconcile", "--prune")
	require.Equal(t, cli.ExitOK, code, "%+v %+v", rep.Failures, rep.Deferred)
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpImport, ""), "no copy imported after the rotation: %+v", rep.Results)
	assert.Zero(t, e.s.Sim.Carried(cmsim.OpDelete, ""), "nothing deleted")
	assert.Empty(t, rep.Conflicts, "no copy became a conflict")
	for _, b := range e.s.Backups {
		for _, s := range []string{a, bb, c} {
			cs := rotated.copies(e, b, s)
			if assert.Len(t, cs, 1, "one copy of %s in %s, proven with the new key", s, b) {
				assert.Equal(t, ids[b+s], cs[0].ID, "adopted in place")
			}
		}
		assert.Len(t, e.s.Sim.Snapshot(b), 3, "no duplicate in %s", b)
	}

	e.s.Sim.ResetLog()
	code, rep = run(t, e.cliEnv(rotated.key), "reconcile")
	require.Equal(t, cli.ExitOK, code)
	assert.Zero(t, e.s.Sim.Writes(""), "after the adoption nothing is written: %+v", rep.Results)
	code, _ = run(t, e.cliEnv(rotated.key), "verify")
	assert.Equal(t, cli.ExitOK, code)
}

// TestAPIKeyRotationThenRenewal: the rotation is followed by a renewal before any
// reconcile ran with the new key (as likely as not). Following the README's rotation
// step (the old API key goes into ownership_key, which keeps its proofs valid), the
// copy made under the old key is still certbackup's: it is reimported in place and
// re-proved with the current key; one certificate per source in the backup.
//
// Without that step a copy that holds an older certificate than the source cannot be
// told from a stranger's certificate (TestUpgradeThenRenewal): see README "How a copy is
// recognised".
func TestAPIKeyRotationThenRenewal(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"notification", "reconcile"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			b := e.s.Backups[0]
			src := e.order(t, "renewed-after-rotation")
			e.reconcileNow(t)
			old := e.s.APIKey
			before := e.s.Sim.Snapshot(b)
			rotated := e.rotate(t)
			tok := e.renew(t, src)
			switch path {
			case "notification":
				web := e.s.WebAction(map[string]any{"apikey": rotated.key, "ownership_key": old})
				status, raw := e.s.PostTo(web, tokenBody(tok))
				require.Equal(t, http.StatusOK, status, "%s", raw)
				harness.Collect(string(raw))
			case "reconcile":
				vars := e.cliEnv(rotated.key)
				vars["OWNERSHIP_KEY"] = old
				code, rep := run(t, vars, "reconcile")
				require.Equal(t, cli.ExitOK, code)
				for _, r := range results(rep, src, b) {
					t.Logf("reconcile: action %s, outcome %s, conflicts %v", r.Action, r.Outcome, r.Conflicts)
				}
			}
			after := e.s.Sim.Snapshot(b)
			require.Len(t, after, 1, "one certificate in the backup for one source certificate, not the old copy beside a new one")
			assert.Equal(t, before[0].ID, after[0].ID, "the copy made under the old key, reimported in place")
			assert.Equal(t, e.get(t, src).Data, after[0].Data, "it holds the renewal")
			assert.Len(t, harness.ProvenCopies(e.s.Sim, ownerOf(old), b, src), 1, "proven with the key ownership_key names")
		})
	}
}

// TestOwnershipKeyRotation: with ownership_key set, rotating the API key changes no
// proof: verify matches at once, a reconcile and a replayed notification write nothing,
// and a renewal costs exactly its reimport.
func TestOwnershipKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	const ownership = "ownership-key-0123456789abcdef0123456789"
	e.owner = ownerOf(ownership)
	vars := e.cliEnv(e.s.APIKey)
	vars["OWNERSHIP_KEY"] = ownership
	a := e.order(t, "alpha")
	bb := e.imported(t, "beta", "")
	code, rep := run(t, vars, "reconcile")
	require.Equal(t, cli.ExitOK, code, "%+v", rep.Failures)
	for _, b := range e.s.Backups {
		e.assertOneCopy(t, b, a)
		e.assertOneCopy(t, b, bb)
	}

	rotated := e.rotate(t)
	vars = e.cliEnv(rotated.key)
	vars["OWNERSHIP_KEY"] = ownership
	e.s.Sim.ResetLog()
	code, rep = run(t, vars, "verify")
	assert.Equal(t, cli.ExitOK, code, "the copies still match with the new API key: %s", harness.PlanSummary(rep.Plan))
	code, rep = run(t, vars, "reconcile", "--prune")
	require.Equal(t, cli.ExitOK, code)
	web := e.s.WebAction(map[string]any{"apikey": rotated.key, "ownership_key": ownership})
	status, raw := e.s.PostTo(web, tokenBody(e.event(t, "cert_issued", a, bb)))
	require.Equal(t, http.StatusOK, status, "%s", raw)
	assert.Zero(t, e.s.Sim.Writes(""), "a rotation with ownership_key writes nothing: %+v", rep.Results)
	assert.Zero(t, rep.Counts[replicate.Updated]+rep.Counts[reconcile.Planned])

	e.s.Sim.ResetLog()
	status, raw = e.s.PostTo(web, tokenBody(e.renew(t, a)))
	require.Equal(t, http.StatusOK, status, "%s", raw)
	assert.Equal(t, len(e.s.Backups), e.s.Sim.Writes(""), "a renewal costs its reimports and nothing else")
	assert.Equal(t, len(e.s.Backups), e.s.Sim.Carried(cmsim.OpReimport, ""))
	for _, b := range e.s.Backups {
		e.assertOneCopy(t, b, a)
		assert.Len(t, e.s.Sim.Snapshot(b), 2)
	}
}

// TestSameCertificateImportedByAnotherTeamIsNotTakenOver: another team, with its own
// Manager rights, imported the very certificate and key the source holds (a shared
// wildcard, say) under its own name. A Writer appends the source's marker to it. The
// requirement: whatever a principal without Manager writes into names and descriptions,
// certbackup does not rename, rewrite or delete a certificate it did not create.
//
// KNOWN FAILURE (at e037aff), and a conflict between two requirements: the
// adoption rule (replicate/copy.go checkAdoption, reconcile/plan.go
// ActionAdopt) takes any claim holding the source's material as certbackup's copy,
// which is what lets the upgrade adopt the previous release's copies; it cannot tell
// this certificate from such a copy. certbackup then renames it to the source's name,
// replaces its description, and `reconcile --prune` deletes it once the source
// certificate is deleted.
func TestSameCertificateImportedByAnotherTeamIsNotTakenOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	b := e.s.Backups[0]
	src := e.imported(t, "wildcard", "")
	theirs := e.s.Sim.Seed(b, "team-x-lb", "used by team X's load balancer", issuedOf(e.get(t, src)))
	e.appendMarker(t, theirs, claim(src))
	e.reconcileNow(t)
	c := e.get(t, theirs)
	assert.Equal(t, "team-x-lb", c.Name, "another team's certificate renamed by certbackup")
	assert.Contains(t, c.Description, "used by team X's load balancer", "another team's description replaced by certbackup")

	require.NoError(t, e.s.Sim.Delete(src))
	e.reconcileNow(t, "--prune")
	_, ok := e.s.Sim.Get(theirs)
	assert.True(t, ok, "another team's certificate deleted by reconcile --prune")
}
