package ownership

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// scene is what an attack leaves before certbackup runs.
type scene struct {
	// source is the certificate the genuine notification names; token is that
	// notification, as the source signed it.
	source, token string
	// foreign are certificates certbackup did not create (or whose proof the Writer
	// broke): after the notification and after `reconcile --prune` they must be exactly
	// as the attack left them.
	foreign []string
	// reported are the foreign certificates that claim source or carry its name: both
	// runs must report them as conflicts of source in their backup.
	reported []string
}

type attack struct {
	name string
	why  string
	// arrange sets the deployment up as it was before the attack (certbackup's own
	// copies made by a reconcile through the command, so that the action's cache of
	// copy locations is cold and its notification path lists the backup), then makes
	// the Writer's edits.
	arrange func(t *testing.T, e *env) scene
}

// TestWriterCannotTurnMarkersIntoWrites is section 1 of the issue: each attack a
// principal with only Writer on the backups can make with names and descriptions, then
// a genuine notification through the real zip and a `reconcile --prune` through the
// command. Nothing certbackup did not create is written or deleted; the backup still
// gets its own proven copy; the claims are reported as conflicts.
func TestWriterCannotTurnMarkersIntoWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range attacks() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NotEmpty(t, tc.why)
			e := newEnv(t, 2)
			sc := tc.arrange(t, e)
			require.NotEmpty(t, sc.foreign, "an attack leaves foreign certificates")
			// The key really is Writer-only: it can neither delete nor import.
			require.Equal(t, http.StatusForbidden, harness.DeleteAs(t, e.s.SimURL, e.writer, sc.foreign[0]), "the Writer cannot delete")
			before := e.snapshot(sc.foreign)
			require.Len(t, before, len(sc.foreign))
			e.s.Sim.ResetLog()

			n := e.notify(t, sc.token)
			require.Equal(t, http.StatusOK, n.Status, "why: %s\nanswer: %.800s", tc.why, n.Raw)
			e.assertUntouched(t, before, "after the notification")
			for _, b := range e.s.Backups {
				p := n.pair(t, sc.source, b)
				assert.True(t, p.Verified, "the pair in %s is verified: %+v", b, p)
				assert.Contains(t, []replicate.Outcome{replicate.Imported, replicate.Reimported, replicate.Updated, replicate.Unchanged, replicate.Conflict}, p.Outcome)
				assert.Empty(t, p.RemovedDuplicates, "nothing deleted as a duplicate in %s", b)
				e.assertOneCopy(t, b, sc.source)
				for _, f := range sc.reported {
					if inInstance(f, b) {
						assert.Contains(t, p.Conflicts, f, "the notification reports %s as a conflict in %s", f, b)
					}
				}
				if p.Outcome == replicate.Conflict {
					assert.NotEmpty(t, p.Message, "a conflict says why")
				}
			}

			rep := e.reconcileNow(t, "--prune")
			e.assertUntouched(t, before, "after reconcile --prune")
			assert.Zero(t, rep.Counts[reconcile.Deleted], "prune deleted nothing: %+v", rep.Results)
			for _, r := range rep.Results {
				assert.Empty(t, r.RemovedDuplicates, "no duplicate removed: %+v", r)
			}
			for _, b := range e.s.Backups {
				e.assertOneCopy(t, b, sc.source)
				for _, f := range sc.reported {
					if !inInstance(f, b) {
						continue
					}
					var found *reconcile.Result
					for _, r := range rep.Conflicts {
						if r.Backup == b && slices.Contains(r.Conflicts, f) {
							found = &r
						}
					}
					if assert.NotNil(t, found, "the reconcile reports %s as a conflict in %s: %+v", f, b, rep.Conflicts) {
						assert.Equal(t, sc.source, found.SourceCRN, "as a conflict of the source it claims")
					}
				}
			}

			// And the next run finds nothing to do: the claims are not "repaired" later.
			code, v := run(t, e.cliEnv(e.s.APIKey), "verify")
			assert.Equal(t, 0, code, "verify after the attack: %s", harness.PlanSummary(v.Plan))
		})
	}
}

func inInstance(cert, instance string) bool {
	return strings.HasPrefix(cert, strings.TrimSuffix(instance, ":"))
}

func attacks() []attack {
	return []attack{
		{
			name: "three foreign certificates claim the source, then it is renewed",
			why:  "the issue's first report: the action deleted all three as duplicates of the copy",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "shop")
				e.reconcileNow(t)
				var fs []string
				for i, b := range []string{e.s.Backups[0], e.s.Backups[0], e.s.Backups[1]} {
					f := e.foreign(t, b, []string{"team-a", "team-b", "team-c"}[i], "imported by another team")
					e.appendMarker(t, f, claim(src))
					fs = append(fs, f)
				}
				return scene{source: src, token: e.renew(t, src), foreign: fs, reported: fs}
			},
		},
		{
			name: "a foreign certificate with the same domains and a smaller CRN claims the source",
			why:  "the issue's second report: a reconcile reimported it with the source's key, renamed it and deleted the real copy",
			arrange: func(t *testing.T, e *env) scene {
				d := e.domain("same")
				src := e.imported(t, "api", "the API", d)
				e.reconcileNow(t)
				var fs []string
				for _, b := range e.s.Backups {
					own := e.copies(b, src)
					require.Len(t, own, 1)
					f := e.foreignBelow(t, b, own[0].ID, "their-api", "theirs", d)
					e.appendMarker(t, f, claim(src))
					fs = append(fs, f)
				}
				return scene{source: src, token: e.reimport(t, src), foreign: fs, reported: fs}
			},
		},
		{
			name: "a foreign certificate with other domains claims the source",
			why:  "the issue's third report: the notification failed with domains_mismatch and the backup stayed behind for good",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "mail")
				e.reconcileNow(t)
				f := e.foreign(t, e.s.Backups[0], "other-team", "")
				e.appendMarker(t, f, claim(src))
				return scene{source: src, token: e.renew(t, src), foreign: []string{f}, reported: []string{f}}
			},
		},
		{
			name: "a foreign certificate claims the source before its first copy",
			why:  "with no copy yet, the claim is the only candidate: it must be proven or hold the source's material, or be left alone beside a new copy",
			arrange: func(t *testing.T, e *env) scene {
				src := e.imported(t, "first", "")
				var fs []string
				for _, b := range e.s.Backups {
					f := e.foreign(t, b, "first", "")
					e.appendMarker(t, f, claim(src))
					fs = append(fs, f)
				}
				return scene{source: src, token: e.event(t, "cert_issued", src), foreign: fs, reported: fs}
			},
		},
		{
			name: "a foreign certificate with the source's domains claims it before its first copy",
			why:  "same domains, another certificate and key: adopting it would reimport the source's key over someone else's certificate",
			arrange: func(t *testing.T, e *env) scene {
				d := e.domain("twin")
				src := e.imported(t, "twin", "", d)
				var fs []string
				for _, b := range e.s.Backups {
					f := e.foreign(t, b, "their-twin", "", d)
					e.appendMarker(t, f, claim(src))
					fs = append(fs, f)
				}
				return scene{source: src, token: e.event(t, "cert_issued", src), foreign: fs, reported: fs}
			},
		},
		{
			name: "a foreign certificate claims a source certificate that does not exist",
			why:  "the issue's fourth report: reconcile --prune deleted it as an orphan",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "live")
				e.reconcileNow(t)
				ghost := strings.TrimSuffix(e.s.Source, ":") + "certificate:" + randomHex(16)
				f := e.foreign(t, e.s.Backups[0], "ghost", "")
				e.appendMarker(t, f, claim(ghost))
				return scene{source: src, token: e.renew(t, src), foreign: []string{f}}
			},
		},
		{
			name: "a genuine copy's marker copied verbatim onto a foreign certificate",
			why:  "a proof is bound to the copy it was made for: the same text elsewhere proves nothing",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "verbatim")
				e.reconcileNow(t)
				var fs []string
				for _, b := range e.s.Backups {
					own := e.copies(b, src)
					require.Len(t, own, 1)
					f := e.foreign(t, b, "not-a-copy", "")
					e.write(t, f, own[0].Name, own[0].Description)
					fs = append(fs, f)
				}
				return scene{source: src, token: e.renew(t, src), foreign: fs, reported: fs}
			},
		},
		{
			name: "a genuine copy's marker copied verbatim onto a foreign certificate with the same domains and a smaller CRN",
			why:  "the strongest imitation a Writer can make: name, description and proof of the real copy, the source's domains, the CRN a duplicate rule keeps",
			arrange: func(t *testing.T, e *env) scene {
				d := e.domain("mimic")
				src := e.imported(t, "mimic", "the real one", d)
				e.reconcileNow(t)
				var fs []string
				for _, b := range e.s.Backups {
					own := e.copies(b, src)
					require.Len(t, own, 1)
					f := e.foreignBelow(t, b, own[0].ID, "x", "", d)
					e.write(t, f, own[0].Name, own[0].Description)
					fs = append(fs, f)
				}
				return scene{source: src, token: e.reimport(t, src), foreign: fs, reported: fs}
			},
		},
		{
			name: "another backup's genuine marker copied onto a foreign certificate",
			why:  "a proof is bound to the instance that holds the copy",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "cross")
				e.reconcileNow(t)
				own := e.copies(e.s.Backups[0], src)
				require.Len(t, own, 1)
				f := e.foreign(t, e.s.Backups[1], "cross-foreign", "")
				e.write(t, f, own[0].Name, own[0].Description)
				return scene{source: src, token: e.renew(t, src), foreign: []string{f}, reported: []string{f}}
			},
		},
		{
			name: "a foreign certificate renamed to the source's name with its marker",
			why:  "name and marker together are still only a claim",
			arrange: func(t *testing.T, e *env) scene {
				src := e.order(t, "named")
				e.reconcileNow(t)
				f := e.foreign(t, e.s.Backups[1], "whatever", "keep me")
				e.write(t, f, "named", "keep me\n"+claim(src))
				return scene{source: src, token: e.renew(t, src), foreign: []string{f}, reported: []string{f}}
			},
		},
		{
			name: "a genuine copy re-pointed at another source certificate",
			why:  "a Writer can break a proof, never move one: the edited copy is not reimported with the other certificate's key",
			arrange: func(t *testing.T, e *env) scene {
				a := e.order(t, "alpha")
				b := e.order(t, "beta")
				e.reconcileNow(t)
				own := e.copies(e.s.Backups[0], a)
				require.Len(t, own, 1)
				e.write(t, own[0].ID, own[0].Name, strings.Replace(own[0].Description, "source="+a, "source="+b, 1))
				return scene{source: b, token: e.renew(t, b), foreign: []string{own[0].ID}, reported: []string{own[0].ID}}
			},
		},
	}
}

// TestConflictsAreReportedWithTheirReason: a certificate certbackup cannot prove is
// its copy is left alone and reported as a conflict *with the reason* (the issue's
// requirement), in every run that sees it, not only in the run that imported the copy
// beside it: the hourly reconcile is where an operator looks.
//
// KNOWN FAILURE (at e037aff): once the copy is in place the pair's
// step is ActionNone (reconcile/plan.go stepFor) and its result carries the conflicts'
// CRNs with an empty reason and message; only the run that imports beside them says
// why (replicate.ConflictMessage). The command's summary then says "beside a
// certificate of the same name that is not a copy" also for a marker claim under
// another name.
func TestConflictsAreReportedWithTheirReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	b := e.s.Backups[0]
	src := e.order(t, "reported")
	e.reconcileNow(t)
	claimed := e.foreign(t, b, "their-cert", "")
	e.appendMarker(t, claimed, claim(src))
	sameName := e.foreign(t, b, "reported", "")
	for run := 1; run <= 2; run++ {
		rep := e.reconcileNow(t)
		for _, f := range []string{claimed, sameName} {
			var found *reconcile.Result
			for _, r := range rep.Conflicts {
				if slices.Contains(r.Conflicts, f) {
					found = &r
				}
			}
			if assert.NotNil(t, found, "run %d reports %s", run, f) {
				assert.True(t, found.Reason != "" || found.Message != "",
					"run %d says why %s is a conflict (action %s, outcome %s)", run, f, found.Action, found.Outcome)
			}
		}
	}
}
