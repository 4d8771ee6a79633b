package ownership

import (
	"net/http"
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

// TestUpgradeThenRenewal: the first event after an upgrade is often a renewal (a
// certificate's renewal does not wait for a reconcile). The legacy copy then holds the
// source's previous certificate; it is still the previous release's copy, and the
// backup must end with one certificate for the source, not the legacy copy plus a new
// one.
//
// KNOWN FAILURE (at e037aff): a legacy copy is adopted only if it
// holds the source's *current* material (replicate/copy.go checkAdoption, and
// reconcile/plan.go stepFor's f.Adopt case); after a renewal it does not, so it is
// treated as foreign and a second copy is imported beside it, for good.
func TestUpgradeThenRenewal(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"notification", "reconcile"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			b := e.s.Backups[0]
			src := e.order(t, "renewed-after-upgrade")
			e.legacyCopies(t, src)
			tok := e.renew(t, src)
			switch path {
			case "notification":
				n := e.notify(t, tok)
				require.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
				p := n.pair(t, src, b)
				t.Logf("notification: outcome %s, copy %s, conflicts %v", p.Outcome, p.CopyCRN, p.Conflicts)
			case "reconcile":
				rep := e.reconcileNow(t)
				for _, r := range results(rep, src, b) {
					t.Logf("reconcile: action %s, outcome %s, conflicts %v", r.Action, r.Outcome, r.Conflicts)
				}
			}
			e.assertOneCopy(t, b, src)
			assert.Len(t, e.s.Sim.Snapshot(b), 1, "one certificate in the backup for one source certificate (the legacy copy, reimported), not two")
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
// reconcile ran with the new key (as likely as not). The copy made under the old key
// holds the previous certificate, and must still be reimported in place: one
// certificate per source in the backup.
//
// KNOWN FAILURE (at e037aff; README "How a copy is recognised" now documents it
// as a limitation, which the requirement does not allow): without ownership_key
// the proof key is the API key (app.OwnerOf), match.Owner knows only the current one,
// and a copy whose proof no longer verifies is adopted only if it holds the source's
// current material (replicate/copy.go checkAdoption; reconcile/plan.go stepFor). After
// a renewal it does not: the old copy becomes a "conflict" and a duplicate is imported.
func TestAPIKeyRotationThenRenewal(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"notification", "reconcile"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			b := e.s.Backups[0]
			src := e.order(t, "renewed-after-rotation")
			e.reconcileNow(t)
			rotated := e.rotate(t)
			tok := e.renew(t, src)
			switch path {
			case "notification":
				web := e.s.WebAction(map[string]any{"apikey": rotated.key})
				status, raw := e.s.PostTo(web, tokenBody(tok))
				require.Equal(t, http.StatusOK, status, "%s", raw)
				harness.Collect(string(raw))
			case "reconcile":
				code, rep := run(t, e.cliEnv(rotated.key), "reconcile")
				require.Equal(t, cli.ExitOK, code)
				for _, r := range results(rep, src, b) {
					t.Logf("reconcile: action %s, outcome %s, conflicts %v", r.Action, r.Outcome, r.Conflicts)
				}
			}
			assert.Len(t, rotated.copies(e, b, src), 1, "one proven copy with the new key")
			assert.Len(t, e.s.Sim.Snapshot(b), 1, "one certificate in the backup for one source certificate, not the old copy beside a new one")
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
	assert.Equal(t, cli.ExitOK, code, "the copies still match with the new API key: %s", planSummary(rep.Plan))
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
