package successor

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/test/harness"
)

// held is one certificate as an instance holds it, whatever its service.
type held struct {
	id, name string
	leaf     []byte
}

// logical is one certificate as its owner thinks of it, wherever it is held: known by
// its domain, unique per logical certificate.
type logical struct {
	domain string
	orig   string // its CRN in the first source
	newest []byte // the leaf every instance must end up holding
}

// holders lists the certificates of instance for domain.
func (w *world) holders(t testing.TB, instance, domain string) []held {
	t.Helper()
	var out []held
	if strings.Contains(instance, ":cloudcerts:") {
		for _, c := range w.cloud.CM.Snapshot(instance) {
			if slices.Contains(c.Domains, domain) {
				out = append(out, held{id: c.ID, name: c.Name, leaf: certBlocks(t, c.Data.Content)[0]})
			}
		}
		return out
	}
	all, err := w.cloud.SM.List(instance)
	require.NoError(t, err)
	for _, s := range all {
		if cur := s.Current(); cur != nil && cur.CommonName == domain {
			out = append(out, held{id: s.CRN, name: s.Name, leaf: certBlocks(t, cur.Certificate)[0]})
		}
	}
	return out
}

// instanceSize is the number of certificates instance holds.
func (w *world) instanceSize(t testing.TB, instance string) int {
	t.Helper()
	if strings.Contains(instance, ":cloudcerts:") {
		return len(w.cloud.CM.Snapshot(instance))
	}
	all, err := w.cloud.SM.List(instance)
	require.NoError(t, err)
	return len(all)
}

// renewIn gives l's certificate in instance a new certificate for the same domain, as
// its owner renews it there (a reimport, or a new version of an imported_cert).
func (w *world) renewIn(t testing.TB, instance string, l *logical) {
	t.Helper()
	hs := w.holders(t, instance, l.domain)
	require.Len(t, hs, 1)
	w.rotate(t, hs[0].id)
	l.newest = w.holders(t, instance, l.domain)[0].leaf
}

// drEnv is the operator's environment with these roles.
func (w *world) drEnv(all []string, source string, backups ...string) map[string]string {
	return map[string]string{
		"APIKEY": w.key, "SOURCE_INSTANCE_CRN": source, "BACKUP_INSTANCE_CRNS": strings.Join(backups, ","),
		"IAM_URL": w.cloud.IAMURL(), "ENDPOINTS": w.cloud.Endpoints(all...),
	}
}

// drStep is one step of the runbook: `reconcile --dry-run`, `reconcile`, `verify`. Each
// must succeed with no conflict and nothing deleted, and afterwards every instance of
// the step holds exactly one certificate per logical certificate, with its newest
// material, and nothing else.
func (w *world) drStep(t *testing.T, what string, all []string, certs []*logical, source string, backups ...string) *reconcile.Report {
	t.Helper()
	env := w.drEnv(all, source, backups...)
	code, plan, stderr := command(t, env, "reconcile", "--dry-run")
	require.Equal(t, cli.ExitOK, code, "%s: dry run: %s %+v", what, stderr, plan.Failures)
	assert.Empty(t, plan.Conflicts, "%s: the plan has no conflict", what)
	for _, s := range plan.Plan.Steps {
		assert.NotEqual(t, reconcile.ActionDeleteOrphan, s.Action, "%s: %+v", what, s)
		assert.Empty(t, s.Duplicates, "%s: the plan finds no duplicate: %+v", what, s)
	}
	code, rep, stderr := command(t, env, "reconcile")
	require.Equal(t, cli.ExitOK, code, "%s: reconcile: %s failures %+v deferred %+v", what, stderr, rep.Failures, rep.Deferred)
	assert.Empty(t, rep.Conflicts, "%s: no conflict", what)
	assert.Zero(t, rep.Counts[reconcile.Deleted]+rep.Counts[reconcile.Deduplicated], "%s: nothing deleted", what)
	code, v, _ := command(t, env, "verify")
	assert.Equal(t, cli.ExitOK, code, "%s: verify: %+v", what, v.Plan)
	for _, inst := range append([]string{source}, backups...) {
		assert.Equal(t, len(certs), w.instanceSize(t, inst), "%s: %s holds one certificate per logical certificate and nothing else", what, inst)
		for _, l := range certs {
			hs := w.holders(t, inst, l.domain)
			if assert.Len(t, hs, 1, "%s: %s holds exactly one certificate for %s", what, inst, l.domain) {
				assert.True(t, bytes.Equal(l.newest, hs[0].leaf), "%s: %s holds the newest certificate of %s", what, inst, l.domain)
			}
		}
	}
	t.Logf("%s: planned %v, done %v", what, plan.Plan.Counts, rep.Counts)
	return rep
}

// TestFailoverAndFailback is the ownership issue's cycle for both pairs: S -> B in
// normal times (a renewal and a rename in S), an outage of S's region (every call
// about S fails), B restored into a new primary N, N as the source with B as its
// backup, renewals in N during the outage, then the failback into S (the originals
// updated in place, never imported beside) and S as the source again with both
// backups. With a Certificate Manager S, the failback is a Secrets Manager source
// copied into Certificate Manager.
func TestFailoverAndFailback(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		t.Run(pairName(kind), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, kind, 2, harness.CloudOptions{})
			S, B, N := w.source, w.backups[0], w.backups[1]
			all := []string{S, B, N}
			kinds := []string{imported, imported, publicBundled, private}
			if kind == fromCM {
				kinds = []string{imported, imported, ordered, imported}
			}
			var certs []*logical
			for i, k := range kinds {
				id := w.add(t, fmt.Sprintf("cert%d", i), k)
				m := w.sourceMaterial(t, id)
				l := &logical{orig: id, newest: m.leaf}
				l.domain = w.holdersDomain(t, id)
				certs = append(certs, l)
			}

			// (a) normal times.
			w.drStep(t, "(a) first copy", all, certs, S, B)
			w.renewIn(t, S, certs[0])
			w.rename(t, certs[1].orig, "portal")
			w.drStep(t, "(a) renewal and rename in S", all, certs, S, B)

			// The outage: the old deployment fails and writes nothing.
			var outage int
			if kind == fromCM {
				outage = w.cloud.CM.Inject(cmsim.Fault{Instance: S, Status: 503})
			} else {
				outage = w.cloud.SM.Inject(smsim.Fault{Instance: S, Status: 503})
			}
			w.resetLogs()
			code, rep, _ := command(t, w.drEnv(all, S, B), "reconcile", "--timeout", "3s")
			assert.Equal(t, cli.ExitFail, code, "the old deployment cannot reach S: %s", rep.Error)
			assert.Zero(t, w.cloud.SM.Writes(""), "and writes nothing")

			// (b) restore B into N; (c) N is the source, with renewals in N.
			w.drStep(t, "(b) restore B into N", all, certs, B, N)
			w.drStep(t, "(c) N is the source", all, certs, N, B)
			// Only certificates that are imported in S: see
			// TestFailbackOfRenewedManagedCertificate for the others.
			w.renewIn(t, N, certs[0])
			w.renewIn(t, N, certs[1])
			w.drStep(t, "(c) renewals in N", all, certs, N, B)

			// (d) the region is back: failback into S, then S is the source again.
			if kind == fromCM {
				w.cloud.CM.RemoveFault(outage)
			} else {
				w.cloud.SM.RemoveFault(outage)
			}
			rep = w.drStep(t, "(d) failback into S", all, certs, N, S)
			assert.Zero(t, rep.Counts["imported"]+rep.Counts["conflict"], "failback imports nothing into S: the originals are there: %v", rep.Counts)
			for _, l := range certs {
				hs := w.holders(t, S, l.domain)
				if assert.Len(t, hs, 1) {
					assert.Equal(t, l.orig, hs[0].id, "S holds its original of %s, updated in place", l.domain)
				}
			}
			w.drStep(t, "(d) S is the source again", all, certs, S, B)
			w.drStep(t, "(e) S with both backups", all, certs, S, B, N)
			code, plan, _ := command(t, w.drEnv(all, S, B, N), "reconcile", "--dry-run", "--prune")
			require.Equal(t, cli.ExitOK, code)
			assert.Zero(t, plan.Plan.Work(), "nothing left to do, nothing to prune: %+v", plan.Plan.Steps)
		})
	}
}

// holdersDomain is the domain of a source certificate (its common name).
func (w *world) holdersDomain(t testing.TB, id string) string {
	t.Helper()
	if strings.Contains(id, ":cloudcerts:") {
		c, ok := w.cloud.CM.Get(id)
		require.True(t, ok)
		return c.Domains[0]
	}
	s, err := w.cloud.SM.Get(instanceOf(id), secretID(id))
	require.NoError(t, err)
	return s.Current().CommonName
}

// TestFailbackOfRenewedManagedCertificate: a certificate that Secrets Manager manages
// in S (a public_cert it orders, a private_cert it issues) is renewed in the promoted
// region during the outage, where its copy is an imported_cert. On failback no import
// can make the renewal win in S: Secrets Manager takes new versions through the API for
// imported_cert secrets only. As for test/dr's ordered Certificate Manager original,
// the failback must neither fail for good nor import a second certificate beside the
// original: it leaves the original as it is, says why, and succeeds; an imported
// certificate renewed in the same outage fails back.
func TestFailbackOfRenewedManagedCertificate(t *testing.T) {
	t.Parallel()
	for _, k := range []string{publicBundled, private} {
		t.Run(k, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, fromSM, 2, harness.CloudOptions{})
			S, B, N := w.source, w.backups[0], w.backups[1]
			all := []string{S, B, N}
			managed := w.add(t, "managed", k)
			plain := w.add(t, "plain", imported)
			var certs []*logical
			for _, id := range []string{managed, plain} {
				certs = append(certs, &logical{orig: id, newest: w.sourceMaterial(t, id).leaf, domain: w.holdersDomain(t, id)})
			}
			w.drStep(t, "(a) first copy", all, certs, S, B)
			before, err := w.cloud.SM.Get(S, secretID(managed))
			require.NoError(t, err)
			outage := w.cloud.SM.Inject(smsim.Fault{Instance: S, Status: 503})
			w.drStep(t, "(b) restore B into N", all, certs, B, N)
			w.drStep(t, "(c) N is the source", all, certs, N, B)
			w.renewIn(t, N, certs[0])
			w.renewIn(t, N, certs[1])
			w.drStep(t, "(c) renewals in N", all, certs, N, B)
			w.cloud.SM.RemoveFault(outage)

			code, rep, stderr := command(t, w.drEnv(all, N, S), "reconcile")
			assert.Equal(t, cli.ExitOK, code, "the failback succeeds: %s %+v", stderr, rep.Failures)
			said := false
			for _, r := range rep.Results {
				if r.CopyCRN == managed {
					said = r.Outcome == "skipped" && r.Reason != ""
					t.Logf("the managed original: %s, %q", r.Outcome, r.Reason)
				}
			}
			assert.True(t, said, "the report says why the managed original is left as it is: %+v", rep.Results)
			after, err := w.cloud.SM.Get(S, secretID(managed))
			require.NoError(t, err)
			assert.Equal(t, before.VersionsTotal, after.VersionsTotal, "the managed original is not written")
			assert.Equal(t, before.Current().SerialNumber, after.Current().SerialNumber)
			assert.Equal(t, 2, w.instanceSize(t, S), "nothing imported beside the originals")
			hs := w.holders(t, S, certs[1].domain)
			if assert.Len(t, hs, 1) {
				assert.True(t, bytes.Equal(certs[1].newest, hs[0].leaf), "the imported certificate's renewal wins")
			}
		})
	}
}
