package successor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
	"github.com/certbackup/certbackup/test/harness"
)

// writer is a principal with Writer on every backup (and nothing on the source): it
// can create secrets and edit any secret's name, description, labels and
// custom_metadata, but not delete.
func (w *world) writer(t testing.TB) string {
	t.Helper()
	k := "successor-writer-" + randomHex(8)
	w.cloud.AddAPIKey(k)
	for _, b := range w.backups {
		w.cloud.SM.Grant(k, b, smsim.Writer)
	}
	t.Cleanup(func() { harness.RegisterSecrets([]string{k}, nil, nil) })
	return k
}

// foreign creates, as key, an imported_cert of its own (a fresh certificate) in
// backup with the given name and custom_metadata, and returns its CRN.
func (w *world) foreign(t testing.TB, key, backup, name string, metadata map[string]any) string {
	t.Helper()
	iss := w.issue()
	body := map[string]any{
		"secret_type": "imported_cert", "name": name, "certificate": iss.CertPEM,
		"private_key": iss.KeyPEM, "intermediate": iss.Intermediate, "labels": []string{secretsmanager.Label, "team"},
	}
	if metadata != nil {
		body["custom_metadata"] = metadata
	}
	st, raw := w.smAs(t, key, http.MethodPost, backup, "secrets", body)
	require.Equal(t, http.StatusCreated, st, "the Writer creates its own secret: %.300s", raw)
	var out struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &out))
	return secretCRN(backup, out.ID)
}

// claim is custom_metadata that names src as its source, with a proof nobody proved.
func claim(src string) map[string]any {
	return map[string]any{
		secretsmanager.MetadataSource: src,
		secretsmanager.MetadataProof:  "AAAAAAAAAAAAAAAAAAAAAA",
		"owner":                       "team-a",
	}
}

// frozen is what must not change in a secret certbackup did not create.
type frozen struct {
	Name, Description string
	Labels            []string
	Metadata          string
	Versions          int
	Serial            string
	Updated           string
}

func (w *world) freeze(t testing.TB, crns []string) map[string]frozen {
	t.Helper()
	out := map[string]frozen{}
	for _, c := range crns {
		s, err := w.cloud.SM.Get(instanceOf(c), secretID(c))
		require.NoError(t, err, "%s exists", c)
		md, _ := json.Marshal(s.CustomMetadata)
		f := frozen{Name: s.Name, Description: s.Description, Labels: s.Labels, Metadata: string(md), Versions: s.VersionsTotal, Updated: s.UpdatedAt.String()}
		if cur := s.Current(); cur != nil {
			f.Serial = cur.SerialNumber
		}
		out[c] = f
	}
	return out
}

type scene struct {
	source   string   // the certificate the notification names
	foreign  []string // secrets certbackup did not create (or can no longer prove)
	reported []string // foreign secrets that claim source: reported as its conflicts
}

type attack struct {
	name, why string
	arrange   func(t *testing.T, w *world, writer string) scene
}

func attacks() []attack {
	return []attack{
		{
			name: "foreign secrets claim the source, then it is rotated",
			why:  "a claim is not a proof: they must never be written, renamed or deleted as duplicates",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "shop", imported)
				w.reconcile(t)
				var fs []string
				for i, b := range []string{w.backups[0], w.backups[0], w.backups[1]} {
					fs = append(fs, w.foreign(t, writer, b, fmt.Sprintf("team-%d", i), claim(src)))
				}
				w.rotate(t, src)
				return scene{source: src, foreign: fs, reported: fs}
			},
		},
		{
			name: "a foreign secret claims the source before its first copy",
			why:  "with no copy yet the claim is the only candidate: adopted only if it holds the source's material, else left alone beside a new copy",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "first", imported)
				var fs []string
				for _, b := range w.backups {
					fs = append(fs, w.foreign(t, writer, b, "first", claim(src)))
				}
				return scene{source: src, foreign: fs, reported: fs}
			},
		},
		{
			name: "a real copy's marker is copied onto a foreign secret",
			why:  "the proof is bound to the copy's ID: copied verbatim it proves nothing",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "api", imported)
				w.reconcile(t)
				cs := w.copies(t, w.backups[0], src)
				require.Len(t, cs, 1)
				f := w.foreign(t, writer, w.backups[0], "api-twin", cs[0].CustomMetadata)
				w.rotate(t, src)
				return scene{source: src, foreign: []string{f}, reported: []string{f}}
			},
		},
		{
			name: "a foreign secret claims a source certificate that does not exist",
			why:  "prune deletes only proven copies: a claim on a ghost is someone else's secret",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "live", imported)
				w.reconcile(t)
				ghost := w.add(t, "ghost", imported)
				w.remove(t, ghost)
				f := w.foreign(t, writer, w.backups[0], "ghost", claim(ghost))
				w.rotate(t, src)
				return scene{source: src, foreign: []string{f}}
			},
		},
		{
			name: "a foreign secret takes the name the copy would get, before its first copy",
			why:  "names are unique in Secrets Manager, and the copy's name is predictable: a Writer must not be able to keep a certificate out of a backup, nor get certbackup to write its secret",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "squat", imported)
				name := secretsmanager.FitName(w.sourceMaterial(t, src).name, engine.Marker{Source: src})
				f := w.foreign(t, writer, w.backups[0], name, nil)
				return scene{source: src, foreign: []string{f}}
			},
		},
		{
			name: "the Writer points a real copy's marker at another source certificate",
			why:  "the edited copy can no longer be proven: it is left alone, and its source still gets a proven copy although the edited one keeps the name",
			arrange: func(t *testing.T, w *world, writer string) scene {
				src := w.add(t, "moved", imported)
				other := w.add(t, "other", imported)
				w.reconcile(t)
				cs := w.copies(t, w.backups[0], src)
				require.Len(t, cs, 1)
				md := cs[0].CustomMetadata
				md[secretsmanager.MetadataSource] = other
				st, raw := w.smAs(t, writer, http.MethodPatch, w.backups[0], "secrets/"+secretID(cs[0].CRN)+"/metadata", map[string]any{"custom_metadata": md})
				require.Equal(t, http.StatusOK, st, raw)
				w.rotate(t, src)
				return scene{source: src, foreign: []string{cs[0].CRN}}
			},
		},
	}
}

// reconcile runs `exec reconcile` and requires a success.
func (w *world) reconcile(t testing.TB, args ...string) *reconcile.Report {
	t.Helper()
	code, rep, stderr := command(t, w.env(nil), append([]string{"reconcile"}, args...)...)
	require.Equal(t, cli.ExitOK, code, "reconcile %v: %s failures %+v deferred %+v", args, stderr, rep.Failures, rep.Deferred)
	return rep
}

// trigger delivers the notification of the source's event about src: an Event
// Notifications envelope to /events (Secrets Manager source) or a signed Callback URL
// notification to /notify (Certificate Manager source).
func (w *world) trigger(t testing.TB, c *core, src string) answer {
	t.Helper()
	if w.kind == fromCM {
		return c.notify(t, "cert_reimported", src)
	}
	return c.events(t, envelope(w.source, "secret_rotated", "imported_cert", src))
}

// TestWriterCannotTurnClaimsIntoWrites: the ownership rule for every pair with
// Secrets Manager backups. After each attack a principal with Writer on the backups
// can make, a genuine notification (through the core, as every runtime calls it) and a
// `reconcile --prune` (through the command): nothing certbackup did not create (or can
// no longer prove) is written, renamed or deleted; the backup still gets its own proven
// copy; the claims are reported as conflicts of the certificate they claim.
func TestWriterCannotTurnClaimsIntoWrites(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		for _, tc := range attacks() {
			t.Run(pairName(kind)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, kind, 2, harness.CloudOptions{})
				writer := w.writer(t)
				sc := tc.arrange(t, w, writer)
				require.NotEmpty(t, sc.foreign)
				st, _ := w.smAs(t, writer, http.MethodDelete, instanceOf(sc.foreign[0]), "secrets/"+secretID(sc.foreign[0]), nil)
				require.Equal(t, http.StatusForbidden, st, "the Writer really cannot delete")
				before := w.freeze(t, sc.foreign)

				c := w.core(t, config.ModeNotify, nil, fastDeps(0))
				a := w.trigger(t, c, sc.source)
				assert.Equal(t, http.StatusOK, a.Status, "why: %s\nanswer: %v", tc.why, a.Body)
				assert.Equal(t, before, w.freeze(t, sc.foreign), "after the notification: %s", tc.why)
				for _, b := range w.backups {
					var p map[string]any
					for _, r := range a.results() {
						if r["backup_instance_crn"] == b && r["source_crn"] == sc.source {
							p = r
						}
					}
					if !assert.NotNil(t, p, "a result for %s: %v", b, a.Body) {
						continue
					}
					assert.Equal(t, true, p["verified"], "verified in %s: %v", b, p)
					assert.Nil(t, p["removed_duplicates"], "nothing deleted as a duplicate in %s", b)
					assert.Len(t, w.copies(t, b, sc.source), 1, "one proven copy of the source in %s", b)
					conflicts, _ := p["conflicts"].([]any)
					for _, f := range sc.reported {
						if instanceOf(f) == b {
							assert.Contains(t, conflicts, f, "the notification reports %s as a conflict in %s", f, b)
						}
					}
				}

				code, rep, stderr := command(t, w.env(nil), "reconcile", "--prune")
				assert.Equal(t, cli.ExitOK, code, "reconcile --prune: %s %+v", stderr, rep.Failures)
				assert.Equal(t, before, w.freeze(t, sc.foreign), "after reconcile --prune: %s", tc.why)
				assert.Zero(t, rep.Counts[reconcile.Deleted], "prune deleted nothing: %+v", rep.Results)
				for _, r := range rep.Results {
					assert.Empty(t, r.RemovedDuplicates, "no duplicate removed: %+v", r)
				}
				for _, b := range w.backups {
					assert.Len(t, w.copies(t, b, sc.source), 1, "one proven copy of the source in %s", b)
					for _, f := range sc.reported {
						if instanceOf(f) != b {
							continue
						}
						found := slices.ContainsFunc(rep.Conflicts, func(r reconcile.Result) bool {
							return r.Backup == b && r.SourceCRN == sc.source && slices.Contains(r.Conflicts, f)
						})
						assert.True(t, found, "the reconcile reports %s as a conflict of the source in %s: %+v", f, b, rep.Conflicts)
					}
				}
				code, v, _ := command(t, w.env(nil), "verify")
				assert.Equal(t, cli.ExitOK, code, "verify after the attack: %+v", v.Plan)
			})
		}
	}
}

// TestBrokenProofOfRealCopyIsAdopted: a Writer who spoils the proof of a real copy
// gains nothing and loses nothing: the copy still holds the source's own certificate
// and key, so it is adopted (its proof written again), not duplicated.
func TestBrokenProofOfRealCopyIsAdopted(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		t.Run(pairName(kind), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, kind, 1, harness.CloudOptions{})
			writer := w.writer(t)
			src := w.add(t, "kept", imported)
			w.reconcile(t)
			b := w.backups[0]
			cs := w.copies(t, b, src)
			require.Len(t, cs, 1)
			md := cs[0].CustomMetadata
			md[secretsmanager.MetadataProof] = "BBBBBBBBBBBBBBBBBBBBBB"
			st, raw := w.smAs(t, writer, http.MethodPatch, b, "secrets/"+secretID(cs[0].CRN)+"/metadata", map[string]any{"custom_metadata": md})
			require.Equal(t, http.StatusOK, st, raw)
			require.Empty(t, w.copies(t, b, src), "the proof is broken")

			rep := w.reconcile(t, "--prune")
			assert.Zero(t, rep.Counts[replicate.Imported], "adopted, not imported beside: %v", rep.Counts)
			assert.Zero(t, rep.Counts[reconcile.Deleted])
			after := w.copies(t, b, src)
			require.Len(t, after, 1, "proven again")
			assert.Equal(t, cs[0].CRN, after[0].CRN, "the same secret")
			w.requireMirror(t)
		})
	}
}
