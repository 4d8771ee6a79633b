package hostile

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// foreignCert seeds a certificate that another team imported into backup with its own
// Manager rights: certbackup did not create it.
func (f *fixture) foreignCert(t *testing.T, backup, name, description string, domains ...string) string {
	t.Helper()
	return f.s.Sim.Seed(backup, name, description, f.foreignIssue(domains))
}

// foreignIssue issues the foreign team's certificate (for domains, else a domain of its
// own) and remembers its key for the secrets scan.
func (f *fixture) foreignIssue(domains []string) *testpki.Issued {
	if len(domains) == 0 {
		f.seq++
		domains = []string{fmt.Sprintf("f%d.foreign.example", f.seq)}
	}
	issued := f.s.Sim.CA().MustIssue(domains...)
	f.keyPEMs = append(f.keyPEMs, issued.KeyPEM)
	return issued
}

// foreignBelow is foreignCert with a CRN smaller than than.
func (f *fixture) foreignBelow(t *testing.T, backup, than, name string, domains ...string) string {
	t.Helper()
	id := f.s.Sim.SeedBelow(backup, than, name, "", f.foreignIssue(domains))
	require.Less(t, id, than)
	return id
}

// edit is the Writer's edit through the public API, with its Writer-only key.
func (f *fixture) edit(t *testing.T, cert, name, description string) {
	t.Helper()
	require.Equal(t, http.StatusOK, harness.UpdateAs(t, f.s.SimURL, f.writer, cert, name, description))
}

func (f *fixture) stored(t *testing.T, cert string) cmsim.StoredCertificate {
	t.Helper()
	c, ok := f.s.Sim.Get(cert)
	require.True(t, ok)
	return c
}

// copied sends a genuine notification for c and requires it copied (the state before
// an attack on an existing copy); it returns c's copy in each backup.
func (f *fixture) copied(t *testing.T, c string) map[string]cmsim.StoredCertificate {
	t.Helper()
	first := f.send(t, notify(t, f.sign(f.issued(c))))
	require.Equal(t, http.StatusOK, first.status, "first delivery: %s", first.raw)
	out := map[string]cmsim.StoredCertificate{}
	for _, b := range f.s.Backups {
		cs := harness.ProvenCopies(f.s.Sim, ownerOf(f), b, c)
		require.Len(t, cs, 1)
		out[b] = cs[0]
	}
	return out
}

// reimported reimports a new certificate for c's domains into the source and returns
// the genuine cert_reimported notification for it.
func (f *fixture) reimported(t *testing.T, c string) request {
	t.Helper()
	src := f.stored(t, c)
	issued := f.s.Sim.CA().MustIssue(src.Domains...)
	f.keyPEMs = append(f.keyPEMs, issued.KeyPEM)
	require.NoError(t, f.s.Sim.Reimport(c, issued.CertPEM, issued.KeyPEM, issued.Intermediate))
	r := notify(t, f.sign(event(f.s.Source, "cert_reimported", c)))
	r.copyOf = c
	return r
}

// attacked completes a marker case's request: the foreign certificates as the attack
// left them, and those the answer must report.
func (f *fixture) attacked(t *testing.T, r request, reported bool, foreign ...string) request {
	t.Helper()
	r.foreign = map[string]cmsim.StoredCertificate{}
	for _, id := range foreign {
		r.foreign[id] = f.stored(t, id)
	}
	if reported {
		r.reported = foreign
	}
	return r
}

// assertForeignUntouched: the certificates a marker case prepared still exist with the
// same name, description, material and versions; no request of the action wrote to
// them; and the answer lists the reported ones as conflicts of the copied certificate.
func assertForeignUntouched(t *testing.T, f *fixture, r request, resp response) {
	t.Helper()
	for id, before := range r.foreign {
		now, ok := f.s.Sim.Get(id)
		if !assert.True(t, ok, "foreign certificate %s deleted", id) {
			continue
		}
		assert.Equal(t, before.Name, now.Name, "foreign certificate %s renamed", id)
		assert.Equal(t, before.Description, now.Description, "description of foreign certificate %s changed", id)
		assert.Equal(t, before.Data, now.Data, "material of foreign certificate %s changed", id)
		assert.Equal(t, before.Versions, now.Versions, "foreign certificate %s reimported", id)
	}
	for _, q := range f.s.Sim.Requests() {
		if _, foreign := r.foreign[q.Cert]; foreign && slices.Contains([]string{cmsim.OpUpdate, cmsim.OpReimport, cmsim.OpDelete}, q.Op) {
			t.Errorf("the action sent %s to foreign certificate %s (status %d)", q.Op, q.Cert, q.Status)
		}
	}
	if len(r.reported) == 0 {
		return
	}
	raw, err := json.Marshal(resp.body["results"])
	require.NoError(t, err)
	var pairs []replicate.PairResult
	require.NoError(t, json.Unmarshal(raw, &pairs))
	for _, id := range r.reported {
		found := slices.ContainsFunc(pairs, func(p replicate.PairResult) bool {
			return p.SourceCRN == r.copyOf && slices.Contains(p.Conflicts, id) && p.Outcome == replicate.Conflict && p.Message != ""
		})
		assert.True(t, found, "the answer reports %s as a conflict, with the reason: %s", id, resp.raw)
	}
}

// markerCases: a principal with only the Writer role on the backups edits names and
// descriptions there (through the public API, with its own key) so that the next
// genuine notification would delete, reimport over or rename certificates certbackup
// did not create. Every case is a genuine notification: it is copied (the backup gets
// certbackup's own proven copy) and the prepared certificates are left exactly as they
// were. The cases where the backup has no copy yet are answered after a listing, so the
// answer reports the claims as conflicts; after a copy exists, a warm action reads the
// copy it knows and does not list the backup again (the reconcile reports them then:
// test/ownership).
func markerCases() []hostileCase {
	// beforeFirstCopy: a fresh source certificate, and in every backup a foreign
	// certificate that mark turns into a claim on it.
	beforeFirstCopy := func(mark func(t *testing.T, f *fixture, backup, src string) string) func(*testing.T, *fixture) request {
		return func(t *testing.T, f *fixture) request {
			c := f.fresh(t)
			var foreign []string
			for _, b := range f.s.Backups {
				foreign = append(foreign, mark(t, f, b, c))
			}
			r := notify(t, f.sign(f.issued(c)))
			r.copyOf = c
			return f.attacked(t, r, true, foreign...)
		}
	}
	claim := func(src string) string { return "[certbackup source=" + src + "]" }
	return []hostileCase{
		{
			name: "marker/control copy beside a foreign certificate of the same name",
			why:  "a certificate with the source's name and no marker is someone else's: the copy is made beside it",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				return f.foreignCert(t, b, f.stored(t, c).Name, "")
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/foreign certificate claims the source before its first copy",
			why:  "a Writer appends the source's marker to another team's certificate: it is a claim, not a copy",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				id := f.foreignCert(t, b, "team-cert", "theirs")
				f.edit(t, id, "team-cert", "theirs\n"+claim(c))
				return id
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/foreign certificate with the source's domains claims it before its first copy",
			why:  "same domains, another key: adopting it would reimport the source's private key over someone else's certificate",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				id := f.foreignCert(t, b, "twin", "", f.stored(t, c).Domains...)
				f.edit(t, id, "twin", claim(c))
				return id
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/foreign certificate renamed to the source's name with its marker",
			why:  "the name and the marker of a copy together are still only a claim",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				id := f.foreignCert(t, b, "whatever", "")
				f.edit(t, id, f.stored(t, c).Name, claim(c))
				return id
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/claim with a made-up proof",
			why:  "a proof field of the right length is checked, not trusted",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				id := f.foreignCert(t, b, "forged", "", f.stored(t, c).Domains...)
				f.edit(t, id, "forged", "[certbackup source="+c+" proof=AAAAAAAAAAAAAAAAAAAAAA]")
				return id
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/claim with a made-up origin",
			why:  "an origin names the lineage of a copy of a copy; typed by a Writer it proves nothing either",
			build: beforeFirstCopy(func(t *testing.T, f *fixture, b, c string) string {
				id := f.foreignCert(t, b, "lineage", "")
				f.edit(t, id, "lineage", "[certbackup source="+c+" origin="+c+" proof=BBBBBBBBBBBBBBBBBBBBBB]")
				return id
			}),
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/three foreign certificates claim the source",
			why:  "the issue's first report: all three were deleted as duplicates of the copy",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				var foreign []string
				for i := range 3 {
					id := f.foreignCert(t, f.s.Backups[0], fmt.Sprintf("team-%d", i), "")
					f.edit(t, id, fmt.Sprintf("team-%d", i), claim(c))
					foreign = append(foreign, id)
				}
				r := notify(t, f.sign(f.issued(c)))
				r.copyOf = c
				return f.attacked(t, r, true, foreign...)
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/foreign certificate with the same domains and a smaller CRN claims the source, then a reimport",
			why:  "the issue's second report: the smallest CRN won, the foreign certificate got the source's key and the real copy was deleted",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				own := f.copied(t, c)
				var foreign []string
				for _, b := range f.s.Backups {
					id := f.foreignBelow(t, b, own[b].ID, "smaller", f.stored(t, c).Domains...)
					f.edit(t, id, "smaller", claim(c))
					foreign = append(foreign, id)
				}
				return f.attacked(t, f.reimported(t, c), false, foreign...)
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "marker/genuine copy's name and description copied verbatim, then a reimport",
			why:  "a proof is bound to the copy it was written on: the same text on another certificate proves nothing",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				own := f.copied(t, c)
				var foreign []string
				for _, b := range f.s.Backups {
					id := f.foreignBelow(t, b, own[b].ID, "mimic", f.stored(t, c).Domains...)
					f.edit(t, id, own[b].Name, own[b].Description)
					foreign = append(foreign, id)
				}
				return f.attacked(t, f.reimported(t, c), false, foreign...)
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
	}
}

// ownerOf checks the proofs of the stack's deployment (its API key, no ownership_key).
func ownerOf(f *fixture) *match.Owner { return match.NewOwner(f.s.APIKey) }
