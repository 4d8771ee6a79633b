package reconcile

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// TestRunEndsEqual starts the backups in every state the issue names and checks that
// one run makes them equal to the source and that a second run writes and downloads
// nothing.
func TestRunEndsEqual(t *testing.T) {
	tests := []struct {
		name    string
		backups int
		prune   bool
		// setup prepares the world after the source has been seeded with srcs; it returns
		// the backup certificates that must be left exactly as they are.
		setup func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate
		check func(t *testing.T, w *world, srcs []string, rep *Report)
	}{
		{
			name: "empty backup", backups: 1,
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Imported: len(srcs)}, outcomes(rep))
				assert.Equal(t, len(srcs), rep.SourceDownloads)
				for _, r := range rep.Results {
					assert.True(t, r.Verified, "%s read back", r.Name)
					assert.NotEmpty(t, r.Fingerprint)
				}
			},
		},
		{
			name: "partly filled", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				e := w.main()
				for _, s := range srcs[:3] {
					for _, r := range e.ReplicateCertificate(context.Background(), s) {
						require.Equal(t, replicate.Imported, r.Outcome)
					}
				}
				return nil
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Imported: len(srcs) - 3, replicate.Unchanged: 3}, outcomes(rep))
				assert.Equal(t, len(srcs)-3, rep.SourceDownloads, "only the missing copies are downloaded")
			},
		},
		{
			name: "stale copies after a renewal in the source", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				requireRun(t, w.main(), Options{})
				w.renew(t, srcs[1])
				w.renew(t, srcs[4])
				return nil
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Reimported: 2, replicate.Unchanged: len(srcs) - 2}, outcomes(rep))
				assert.Equal(t, 2, rep.SourceDownloads)
				for _, c := range w.sim.Snapshot(w.backups[0]) {
					if src, _ := cms.SourceOf(c.Description); src == srcs[1] {
						assert.Equal(t, 2, c.Versions, "reimported in place: the backup keeps the previous version")
					}
				}
			},
		},
		{
			name: "renamed in the source", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				requireRun(t, w.main(), Options{})
				require.NoError(t, w.sim.SetName(srcs[2], "renamed", "a new description"))
				w.sim.ResetLog()
				return nil
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Updated: 1, replicate.Unchanged: len(srcs) - 1}, outcomes(rep))
				assert.Zero(t, w.sim.Count(cmsim.OpDownload, ""), "a label update downloads nothing")
				assert.Equal(t, 1, w.sim.Count(cmsim.OpMetadata, w.backups[0]), "it reads the copy's metadata back")
			},
		},
		{
			name: "conflicting certificate of the same name", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				// Someone imported the same certificate by hand, without our marker.
				s := stored(t, w, srcs[0])
				hand := w.sim.Seed(w.backups[0], s.Name, "imported by hand", issuedOf(s))
				return []cmsim.StoredCertificate{stored(t, w, hand)}
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				require.Len(t, rep.Conflicts, 1)
				c := rep.Conflicts[0]
				assert.Equal(t, srcs[0], c.SourceCRN)
				assert.Equal(t, replicate.Conflict, c.Outcome, "imported beside it, reported")
				assert.Len(t, c.Conflicts, 1)
				assert.True(t, rep.Match, "a conflict is reported, not a mismatch")
			},
		},
		{
			name: "orphans kept without prune", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				return orphanSetup(t, w, srcs)
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Unchanged: len(srcs) - 1, OrphanKept: 1}, outcomes(rep))
				assert.Zero(t, w.sim.Writes(""))
				assert.True(t, rep.Match)
			},
		},
		{
			name: "orphans pruned, only ours", backups: 1, prune: true,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				return orphanSetup(t, w, srcs)[1:] // the orphan copy itself goes
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, map[Outcome]int{replicate.Unchanged: len(srcs) - 1, Deleted: 1}, outcomes(rep))
				assert.Equal(t, 1, w.sim.Writes(w.backups[0]), "exactly one delete")
				assert.Equal(t, 1, w.sim.Count(cmsim.OpDelete, w.backups[0]))
				assert.Equal(t, 1, w.sim.Count(cmsim.OpMetadata, w.source), "the source is asked before the delete")
			},
		},
		{
			name: "duplicated copies removed down to one", backups: 1,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				requireRun(t, w.main(), Options{})
				// Two activations raced: a second copy of srcs[0], and one of srcs[1] whose
				// name lags behind.
				for i, s := range srcs[:2] {
					c := stored(t, w, s)
					name := c.Name
					if i == 1 {
						name = "old name"
					}
					w.seedCopy(w.backups[0], name, c, issuedOf(c))
				}
				return nil
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				assert.Equal(t, 2, w.sim.Count(cmsim.OpDelete, w.backups[0]))
				assert.Zero(t, rep.SourceDownloads)
				assert.Len(t, w.sim.Snapshot(w.backups[0]), len(srcs))
			},
		},
		{
			name: "two backups, one empty, one partly filled", backups: 2,
			setup: func(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
				e := w.engine(w.source, w.backups[1])
				for _, s := range srcs[:2] {
					e.ReplicateCertificate(context.Background(), s)
				}
				return nil
			},
			check: func(t *testing.T, w *world, srcs []string, rep *Report) {
				require.Len(t, rep.Backups, 2)
				assert.Equal(t, map[Outcome]int{replicate.Imported: len(srcs)}, rep.Backups[0].Counts)
				assert.Equal(t, map[Outcome]int{replicate.Imported: len(srcs) - 2, replicate.Unchanged: 2}, rep.Backups[1].Counts)
				assert.Equal(t, len(srcs), rep.SourceDownloads, "each source certificate is downloaded once for both backups")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tt.backups)
			srcs := w.seed(6)
			var keep []cmsim.StoredCertificate
			if tt.setup != nil {
				keep = tt.setup(t, w, srcs)
			}
			w.sim.ResetLog()
			opts := Options{Prune: tt.prune, Concurrency: 3}
			rep := Run(context.Background(), w.main(), opts)
			require.Empty(t, rep.Failures, "%+v", rep.Failures)
			require.Empty(t, rep.Deferred, "%+v", rep.Deferred)
			require.Empty(t, rep.Error)
			tt.check(t, w, srcs, rep)
			for _, b := range w.backups {
				w.requireMirror(t, w.source, b, keep...)
			}
			w.requireQuiet(t, w.main(), opts)
		})
	}
}

// orphanSetup syncs, deletes srcs[1] from the source and puts beside its copy a
// certificate of the same name made by hand and a copy of another source instance.
// It returns the orphan copy, then the two that are not ours.
func orphanSetup(t *testing.T, w *world, srcs []string) []cmsim.StoredCertificate {
	t.Helper()
	requireRun(t, w.main(), Options{})
	gone := stored(t, w, srcs[1])
	require.NoError(t, w.sim.Delete(srcs[1]))
	var orphan cmsim.StoredCertificate
	for _, c := range w.sim.Snapshot(w.backups[0]) {
		if src, _ := cms.SourceOf(c.Description); src == srcs[1] {
			orphan = c
		}
	}
	require.NotEmpty(t, orphan.ID)

	other := w.addInstance("jp-tok")
	foreignSrc := w.sim.Seed(other, gone.Name, "", w.issue("foreign.example.com"))
	foreign := w.sim.Seed(w.backups[0], gone.Name, cms.LegacyDescription("", foreignSrc), w.issue("foreign.example.com"))
	hand := w.sim.Seed(w.backups[0], gone.Name, "mine, hands off", issuedOf(gone))
	return []cmsim.StoredCertificate{orphan, stored(t, w, foreign), stored(t, w, hand)}
}

// hidingSource is a source whose listing misses one certificate, as a keyset cursor
// may when the certificate is renewed while the pages are read.
type hidingSource struct {
	engine.Source
	hide string
}

func (h hidingSource) List(ctx context.Context) ([]engine.Certificate, error) {
	all, err := h.Source.List(ctx)
	return slices.DeleteFunc(all, func(c engine.Certificate) bool { return c.ID == h.hide }), err
}

// TestPruneAsksBeforeDeleting: a certificate missing from the source's listing but
// present in the source is not an orphan; its copy is never deleted on the listing's
// word alone.
func TestPruneAsksBeforeDeleting(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	srcs := w.seed(3)
	requireRun(t, w.main(), Options{})
	e := w.main()
	e.Source = hidingSource{Source: e.Source, hide: srcs[1]}
	w.sim.ResetLog()
	rep := Run(context.Background(), e, Options{Prune: true})
	assert.Zero(t, w.sim.Writes(""), "nothing deleted")
	require.Len(t, rep.Deferred, 1)
	assert.Equal(t, srcs[1], rep.Deferred[0].SourceCRN)
	assert.Equal(t, ActionDeleteOrphan, rep.Deferred[0].Action)
	assert.Contains(t, rep.Deferred[0].Message, "listing missed it")
	assert.False(t, rep.Match)
	w.requireMirror(t, w.source, w.backups[0])
}

func requireRun(t *testing.T, e *replicate.Engine, opts Options) *Report {
	t.Helper()
	rep := Run(context.Background(), e, opts)
	require.Empty(t, rep.Error)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.Empty(t, rep.Deferred, "%+v", rep.Deferred)
	require.True(t, rep.Match)
	return rep
}

// TestDryRunPlansWhatRunDoes sets up every kind of step, checks that a dry run and a
// verify write and download nothing, and that the real run then carries out exactly
// the plan.
func TestDryRunPlansWhatRunDoes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	srcs := w.seed(8)
	requireRun(t, w.engine(w.source, w.backups[0]), Options{})
	w.renew(t, srcs[0])                                          // reimport in backup 0, import in backup 1
	require.NoError(t, w.sim.SetName(srcs[1], "renamed", "new")) // update
	require.NoError(t, w.sim.Delete(srcs[2]))                    // orphan in backup 0
	c3 := stored(t, w, srcs[3])                                  // duplicate in backup 0
	w.seedCopy(w.backups[0], c3.Name, c3, issuedOf(c3))

	opts := Options{Prune: true}
	w.sim.ResetLog()
	dry := Run(context.Background(), w.main(), Options{Prune: true, DryRun: true})
	ver := Verify(context.Background(), w.main(), opts)
	assert.Zero(t, w.sim.Writes(""), "dry run and verify write nothing")
	assert.Zero(t, w.sim.Count(cmsim.OpDownload, ""), "dry run and verify download nothing")
	assert.Zero(t, dry.SourceDownloads)
	assert.Equal(t, ModeDryRun, dry.Mode)
	assert.Equal(t, ModeVerify, ver.Mode)
	assert.False(t, dry.Match)
	assert.False(t, ver.Match)
	require.NotNil(t, dry.Plan)
	assert.Equal(t, map[Action]int{
		ActionNone: 4, ActionReimport: 1, ActionUpdate: 1, ActionRemoveDuplicates: 1, ActionDeleteOrphan: 1,
		ActionImport: 7,
	}, dry.Plan.Counts)
	assert.Equal(t, dry.Plan.Steps, ver.Plan.Steps)

	plan, err := Plan(context.Background(), w.main(), opts)
	require.NoError(t, err)
	assert.Equal(t, dry.Plan.Counts, plan.Counts)

	w.sim.ResetLog()
	rep := requireRun(t, w.main(), opts)
	done := map[Action][]Outcome{
		ActionImport: {replicate.Imported}, ActionReimport: {replicate.Reimported}, ActionUpdate: {replicate.Updated},
		ActionRemoveDuplicates: {Deduplicated}, ActionDeleteOrphan: {Deleted}, ActionNone: {replicate.Unchanged},
	}
	var carried []Step
	for _, r := range rep.Results {
		assert.Contains(t, done[r.Action], r.Outcome, "%s in %s", r.Name, r.Backup)
		if r.Action.Writes() {
			s := r.Step
			s.CopyCRN = ""
			carried = append(carried, s)
		}
	}
	var planned []Step
	for _, s := range dry.Plan.Steps {
		s.CopyCRN = ""
		planned = append(planned, s)
	}
	assert.Equal(t, stepKeys(planned), stepKeys(carried))
	assert.Equal(t, 7, rep.SourceDownloads, "each certificate written anywhere is downloaded once, for both backups")
	for _, b := range w.backups {
		w.requireMirror(t, w.source, b)
	}
	after := Verify(context.Background(), w.main(), opts)
	assert.True(t, after.Match)
	assert.Empty(t, after.Plan.Steps)
}

func stepKeys(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.SourceCRN+"|"+s.Backup+"|"+string(s.Action))
	}
	return out
}

// TestOutageCompletedByNextRun takes the backup's import down halfway through a run;
// the run reports what it left, and the next run completes without duplicates.
func TestOutageCompletedByNextRun(t *testing.T) {
	tests := []struct {
		name  string
		fault cmsim.Fault
		// completes: the run itself finishes the job. An import whose answer is lost
		// was carried out; the engine looks before importing again and finds it.
		completes bool
	}{
		{name: "503 on import", fault: cmsim.Fault{Op: cmsim.OpImport, Status: 503}},
		{name: "import carried out, connection dropped", fault: cmsim.Fault{Op: cmsim.OpImport, Drop: true, AfterOp: true}, completes: true},
		{name: "backup unreachable for listing too", fault: cmsim.Fault{Status: 503}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, 1)
			w.seed(8)
			tt.fault.Instance = w.backups[0]
			opts := Options{Concurrency: 1}
			opts.Progress = func(p []Progress) {
				if p[0].Done == 3 {
					w.sim.Inject(tt.fault)
				}
			}
			rep := Run(context.Background(), w.main(), opts)
			if tt.completes {
				assert.True(t, rep.Match, "%+v", rep.Deferred)
				assert.Equal(t, 8, rep.Counts[replicate.Imported])
				w.requireMirror(t, w.source, w.backups[0])
				w.sim.ClearFaults()
				w.requireQuiet(t, w.main(), Options{Concurrency: 1})
				return
			}
			assert.False(t, rep.Match)
			require.NotEmpty(t, rep.Deferred, "the run says what it left")
			for _, d := range rep.Deferred {
				assert.Equal(t, engine.ClassRetryable, d.ErrorClass)
				assert.NotEmpty(t, d.Message)
			}
			assert.Equal(t, 3, rep.Counts[replicate.Imported])
			assert.Equal(t, 8, len(rep.Deferred)+rep.Counts[replicate.Imported])

			w.sim.ClearFaults()
			opts.Progress = nil
			next := requireRun(t, w.main(), opts)
			assert.Equal(t, 3, next.Counts[replicate.Unchanged])
			assert.Equal(t, 5, next.Counts[replicate.Imported])
			w.requireMirror(t, w.source, w.backups[0])
			w.requireQuiet(t, w.main(), opts)
		})
	}
}

// TestProgressPerBackup: progress counts each backup on its own: a backup that already
// holds every copy has no work and is not reported; the others count up to what each
// has to do, one call per unit of work, and end complete.
func TestProgressPerBackup(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 3)
	w.seed(6)
	require.True(t, requireRun(t, w.engine(w.source, w.backups[1]), Options{}).Match, "backup 1 holds the first six")
	require.True(t, requireRun(t, w.engine(w.source, w.backups[2]), Options{}).Match, "backup 2 holds the first six")
	w.seed(2)
	require.True(t, requireRun(t, w.engine(w.source, w.backups[2]), Options{}).Match, "backup 2 holds all eight")

	var calls [][]Progress
	opts := Options{Concurrency: 3, Progress: func(p []Progress) { calls = append(calls, p) }}
	requireRun(t, w.main(), opts)
	require.Len(t, calls, 8, "one call per source certificate with work")
	for _, c := range calls {
		require.Len(t, c, 2, "backup 2 has no work and is not reported")
		assert.Equal(t, []string{w.backups[0], w.backups[1]}, []string{c[0].Backup, c[1].Backup})
		assert.Equal(t, []int{8, 2}, []int{c[0].Total, c[1].Total})
	}
	last := calls[len(calls)-1]
	assert.Equal(t, []int{8, 2}, []int{last[0].Done, last[1].Done})
	for k := 1; k < len(calls); k++ {
		for b := range 2 {
			assert.GreaterOrEqual(t, calls[k][b].Done, calls[k-1][b].Done, "counts only grow")
		}
	}

	calls = nil
	requireRun(t, w.main(), opts)
	assert.Empty(t, calls, "nothing to do: no progress")
}

// TestRestoreBySwapping rebuilds a lost primary: the backup becomes the source of a new
// instance, which ends with the original certificates, names and descriptions.
func TestRestoreBySwapping(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	srcs := w.seed(5)
	requireRun(t, w.main(), Options{})

	primary := w.addInstance("jp-tok")
	rep := requireRun(t, w.engine(w.backups[0], primary), Options{})
	assert.Equal(t, 5, rep.Counts[replicate.Imported])
	w.requireMirror(t, w.backups[0], primary)

	byName := map[string]cmsim.StoredCertificate{}
	for _, c := range w.sim.Snapshot(primary) {
		byName[c.Name] = c
	}
	for _, s := range srcs {
		orig := stored(t, w, s)
		got, ok := byName[orig.Name]
		require.True(t, ok, orig.Name)
		assert.Equal(t, orig.Description, cms.StripMarker(got.Description), "the old marker is replaced, not piled up")
		assert.Equal(t, 1, strings.Count(got.Description, "[certbackup source="))
		assert.Equal(t, digest(t, orig.Data), digest(t, got.Data))
	}
	w.requireQuiet(t, w.engine(w.backups[0], primary), Options{})
}

// TestThousandCertificatesTenChanged: an unchanged instance of 1000 certificates costs
// list calls only; with 10 renewed, exactly those 10 are downloaded from the source.
func TestThousandCertificatesTenChanged(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 certificates")
	}
	t.Parallel()
	w := newWorld(t, 1)
	srcs := mirrorThousand(t, w, 1000)

	opts := Options{Concurrency: 8}
	w.requireQuiet(t, w.main(), opts)
	// 5 full pages of 200 per instance, and the empty page after a full one.
	assert.Equal(t, 12, w.sim.Count(cmsim.OpList, ""), "list calls only")
	assert.Equal(t, w.sim.Count("", ""), w.sim.Count(cmsim.OpList, "")+w.sim.Count(cmsim.OpIAMToken, ""))

	for _, s := range srcs[:10] {
		w.renew(t, s)
	}
	w.sim.ResetLog()
	rep := requireRun(t, w.main(), opts)
	assert.Equal(t, 10, w.sim.Count(cmsim.OpDownload, w.source), "exactly the 10 changed certificates")
	assert.Equal(t, 10, rep.SourceDownloads)
	assert.Equal(t, 10, rep.Counts[replicate.Reimported])
	assert.Equal(t, 990, rep.Counts[replicate.Unchanged])
	assert.Equal(t, 10, w.sim.Writes(""))
	w.requireQuiet(t, w.main(), opts)
}

// mirrorThousand seeds n certificates in the source and their copies in the first
// backup through the simulator's Go API (a first sync of 1000 through the API is
// what the benchmark measures).
func mirrorThousand(tb testing.TB, w *world, n int) []string {
	tb.Helper()
	srcs := w.seed(n)
	for _, s := range srcs {
		c := stored(tb, w, s)
		w.seedCopy(w.backups[0], c.Name, c, issuedOf(c))
	}
	return srcs
}

// TestDeadline: a run that cannot finish reports what it left, never silently.
func TestDeadline(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		latency time.Duration
		opts    Options
		// allDeferred: nothing may start at all.
		allDeferred bool
	}{
		{name: "less than the margin from the start", timeout: 2 * time.Second, opts: Options{MinRemaining: 10 * time.Second}, allDeferred: true},
		{name: "runs out halfway", timeout: 400 * time.Millisecond, latency: 10 * time.Millisecond, opts: Options{MinRemaining: 150 * time.Millisecond, Concurrency: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, 1)
			w.seed(12)
			w.sim.SetLatency(tt.latency)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			rep := Run(ctx, w.main(), tt.opts)
			assert.Less(t, time.Since(start), tt.timeout+100*time.Millisecond, "the run stays within its deadline")
			require.Empty(t, rep.Error)
			assert.False(t, rep.Match)
			require.NotEmpty(t, rep.Deferred)
			assert.Equal(t, 12, rep.Counts[replicate.Imported]+len(rep.Deferred), "every certificate is either done or deferred")
			for _, d := range rep.Deferred {
				assert.NotEmpty(t, d.Message)
				assert.Equal(t, engine.ClassRetryable, d.ErrorClass)
			}
			if tt.allDeferred {
				assert.Zero(t, w.sim.Writes(""))
				assert.Contains(t, rep.Deferred[0].Message, "before the deadline")
			} else {
				assert.Positive(t, rep.Counts[replicate.Imported], "some work was done")
			}
			w.sim.SetLatency(0)
			requireRun(t, w.main(), Options{})
			w.requireMirror(t, w.source, w.backups[0])
		})
	}
}

// TestRateLimited: a 429 whose Retry-After does not fit the deadline comes back from
// the client; its certificate and the rest of that backup's work are deferred at once,
// with the reason, instead of hammering the backup or waiting past the deadline.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	w.seed(6)
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: w.backups[0], Status: 429, RetryAfter: "30"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	rep := Run(ctx, w.main(), Options{Concurrency: 1, MinRemaining: time.Second})
	assert.Less(t, time.Since(start), 10*time.Second, "neither the Retry-After nor the deadline was waited for")
	require.Len(t, rep.Deferred, 6)
	assert.Contains(t, rep.Deferred[0].Message, "429")
	assert.Contains(t, rep.Deferred[5].Message, "rate limited")
	assert.Equal(t, 1, w.sim.Count(cmsim.OpImport, w.backups[0]), "one 429, then no more calls to that backup")
}

// TestFailuresReported: a permanent error (no role on the backup) is a failure by
// certificate, and a listing failure of one backup does not stop the other.
func TestFailuresReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	w.seed(3)
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: w.backups[0], Status: 403})
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Instance: w.backups[1], Status: 500})
	rep := Run(context.Background(), w.main(), Options{})
	assert.False(t, rep.Match)
	require.Len(t, rep.Failures, 3)
	for _, f := range rep.Failures {
		assert.Equal(t, engine.ClassPermanent, f.ErrorClass)
		assert.Equal(t, w.backups[0], f.Backup)
		assert.NotEmpty(t, f.SourceCRN)
	}
	require.Len(t, rep.Deferred, 1)
	assert.Equal(t, w.backups[1], rep.Deferred[0].Backup)
	assert.Empty(t, rep.Deferred[0].SourceCRN)
	assert.NotEmpty(t, rep.Backups[1].Error)
}

// TestSourceUnlisted: without the source's listing nothing is planned, and nothing is
// taken for an orphan.
func TestSourceUnlisted(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	w.seed(2)
	requireRun(t, w.main(), Options{})
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Instance: w.source, Status: 403})
	w.sim.ResetLog()
	rep := Run(context.Background(), w.main(), Options{Prune: true})
	assert.False(t, rep.Match)
	assert.Contains(t, rep.Error, "list the source instance")
	assert.Zero(t, w.sim.Writes(""))
	_, err := Plan(context.Background(), w.main(), Options{})
	assert.Error(t, err)
}

// TestReportJSON: snake_case fields, no key material.
func TestReportJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	srcs := w.seed(2)
	rep := Run(context.Background(), w.main(), Options{})
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	s := string(b)
	for _, field := range []string{`"match":true`, `"source_downloads":2`, `"results":`, `"backup_instance_crn":`, `"source_crn":`, `"outcome":"imported"`} {
		assert.Contains(t, s, field)
	}
	assert.NotContains(t, s, "PRIVATE KEY")
	assert.NotContains(t, s, "BEGIN")
	assert.NotContains(t, s, testAPIKey)
	assert.NotContains(t, s, stored(t, w, srcs[0]).Data.PrivKey[40:80])
}

func TestGuardReimportsOncePerRun(t *testing.T) {
	g := newGuard(time.Second)
	require.NoError(t, g.claimReimport("a"))
	require.NoError(t, g.claimReimport("b"))
	err := g.claimReimport("a")
	require.Error(t, err)
	assert.Equal(t, engine.ClassRetryable, engine.ClassOf(err))
}

func TestUniqueSorted(t *testing.T) {
	got := uniqueSorted([]engine.Certificate{
		{ID: "c2", Name: "b"}, {ID: "c1", Name: "a"}, {ID: "c2", Name: "renamed between pages"}, {ID: "c0", Name: "b"},
	})
	assert.Equal(t, []engine.Certificate{{ID: "c1", Name: "a"}, {ID: "c0", Name: "b"}, {ID: "c2", Name: "b"}}, got)
}

// TestExpiredSourceIsSkipped: Certificate Manager refuses to download an expired
// certificate, so the reconcile reports it as skipped instead of failing every run.
func TestExpiredSourceIsSkipped(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	w.seed(2)
	old, err := w.ca.Issue(testpki.Options{Domains: []string{"old.example.com"},
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	require.NoError(t, err)
	expired := w.sim.Seed(w.source, "old", "", old)
	rep := Run(context.Background(), w.main(), Options{})
	assert.Empty(t, rep.Failures, "an expired source certificate is not a failure")
	assert.True(t, rep.Match, "%+v", rep.Deferred)
	var skipped bool
	for _, r := range rep.Results {
		if r.SourceCRN == expired {
			skipped = r.Outcome == replicate.Skipped
			assert.Contains(t, r.Message+r.Reason, "expired")
		}
	}
	assert.True(t, skipped)
	assert.Equal(t, 2, rep.Counts[replicate.Imported])
}
