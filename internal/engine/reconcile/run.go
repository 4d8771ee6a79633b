package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/pemutil"
)

func run(ctx context.Context, e *replicate.Engine, opts Options, mode string) *Report {
	start := time.Now()
	rep := &Report{Mode: mode, SourceInstanceCRN: e.Source.Instance(), Prune: opts.Prune, Counts: map[Outcome]int{}}

	srcGuard := newGuard(opts.MinRemaining)
	source := guardedSource{Source: e.Source, g: srcGuard}
	targets := make([]guardedTarget, len(e.Targets))
	asTargets := make([]engine.Target, len(e.Targets))
	for i, t := range e.Targets {
		targets[i] = guardedTarget{Target: t, g: newGuard(opts.MinRemaining)}
		asTargets[i] = targets[i]
	}

	p, err := plan(ctx, e.Owner, source, asTargets, opts)
	if err != nil {
		rep.Error = err.Error()
		rep.DurationMS = time.Since(start).Milliseconds()
		opts.Logger.LogAttrs(ctx, slog.LevelWarn, "reconcile could not plan", slog.String("mode", mode), slog.String("error", rep.Error))
		return rep
	}
	rep.SourceCertificates = p.SourceCertificates

	results := make([]Result, len(p.Steps))
	for i, st := range p.Steps {
		results[i] = initialResult(st)
	}
	if !opts.DryRun {
		x := &executor{engine: e, source: source, targets: targets, opts: opts, steps: p.Steps, results: results}
		x.execute(ctx)
	}
	rep.SourceDownloads = int(srcGuard.downloads.Load())
	rep.finish(p, results)
	if opts.DryRun {
		work := *p
		work.Steps = slices.DeleteFunc(slices.Clone(p.Steps), func(s Step) bool { return !s.Action.Writes() })
		rep.Plan = &work
	}
	rep.DurationMS = time.Since(start).Milliseconds()
	logReport(ctx, opts.Logger, rep)
	return rep
}

// initialResult is a step's result before anything is done: final for the steps that
// write nothing, Planned for the others (the executor replaces it).
func initialResult(st Step) Result {
	r := Result{Step: st, Outcome: Planned}
	switch st.Action {
	case ActionNone:
		r.Outcome = replicate.Unchanged
	case ActionKeepOrphan:
		r.Outcome = OrphanKept
	case ActionSkip:
		r.Outcome = replicate.Skipped
	case ActionKeepNewer:
		r.Outcome, r.ErrorClass, r.Message = replicate.Failed, engine.ClassPermanent, NewerMessage
	}
	return r
}

type executor struct {
	engine  *replicate.Engine
	source  guardedSource
	targets []guardedTarget
	opts    Options
	steps   []Step
	results []Result // one per step; each unit writes its own entries only
}

// units groups the steps that write: one unit per source certificate (its source is
// downloaded at most once for every backup), then one per orphan.
func (x *executor) units() [][]int {
	byCert := map[string]int{}
	var certs, orphans [][]int
	for i, st := range x.steps {
		switch {
		case !st.Action.Writes():
		case st.Action == ActionDeleteOrphan:
			orphans = append(orphans, []int{i})
		default:
			k, ok := byCert[st.SourceCRN]
			if !ok {
				k = len(certs)
				byCert[st.SourceCRN] = k
				certs = append(certs, nil)
			}
			certs[k] = append(certs[k], i)
		}
	}
	return append(certs, orphans...)
}

func (x *executor) execute(ctx context.Context) {
	units := x.units()
	if len(units) == 0 {
		return
	}
	jobs := make(chan []int)
	var mu sync.Mutex
	counts := x.newCounts(units)
	var wg sync.WaitGroup
	for range min(x.opts.Concurrency, len(units)) {
		wg.Go(func() {
			for u := range jobs {
				x.do(ctx, u)
				if x.opts.Progress != nil {
					mu.Lock()
					x.opts.Progress(counts.done(x.backupsOf(u)))
					mu.Unlock()
				}
			}
		})
	}
	for _, u := range units {
		jobs <- u
	}
	close(jobs)
	wg.Wait()
}

// backupsOf is the targets a unit writes to, each once.
func (x *executor) backupsOf(unit []int) []int {
	var out []int
	for _, i := range unit {
		if t := x.steps[i].target; !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// progress counts, per target, the units done and to do.
type progress struct {
	all   []Progress // by target index
	order []int      // the targets that have work, in order
}

func (x *executor) newCounts(units [][]int) *progress {
	p := &progress{all: make([]Progress, len(x.targets))}
	for i, t := range x.targets {
		p.all[i].Backup = t.Instance()
	}
	for _, u := range units {
		for _, t := range x.backupsOf(u) {
			p.all[t].Total++
		}
	}
	for i, c := range p.all {
		if c.Total > 0 {
			p.order = append(p.order, i)
		}
	}
	return p
}

// done counts a unit done in targets and returns a copy of the counts to report.
func (p *progress) done(targets []int) []Progress {
	for _, t := range targets {
		p.all[t].Done++
	}
	out := make([]Progress, len(p.order))
	for k, t := range p.order {
		out[k] = p.all[t]
	}
	return out
}

// budget says why no new work may start, or "" when it may.
func (x *executor) budget(ctx context.Context) string {
	if err := ctx.Err(); err != nil {
		return fmt.Sprintf("not started: the run's context ended (%v); left for the next run", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < x.opts.MinRemaining {
			return fmt.Sprintf("not started: %s left before the deadline, less than the %s kept for one certificate; left for the next run",
				left.Round(time.Millisecond), x.opts.MinRemaining)
		}
	}
	return ""
}

func (x *executor) do(ctx context.Context, unit []int) {
	if why := x.budget(ctx); why != "" {
		for _, i := range unit {
			x.results[i] = Result{Step: x.steps[i], Outcome: Deferred, ErrorClass: engine.ClassRetryable, Message: why}
		}
		return
	}
	var material []int
	for _, i := range unit {
		switch st := x.steps[i]; st.Action {
		case ActionImport, ActionReimport, ActionAdopt:
			material = append(material, i)
		case ActionUpdate:
			x.results[i] = x.updateLabels(ctx, st)
		case ActionRemoveDuplicates:
			x.results[i] = x.removeDuplicates(ctx, Result{Step: st, Outcome: Deduplicated})
		case ActionDeleteOrphan:
			x.results[i] = x.deleteOrphan(ctx, st)
		}
	}
	if len(material) > 0 {
		x.copyMaterial(ctx, material)
	}
}

// copyMaterial downloads one source certificate once and copies it, through the
// engine, into every backup whose step needs its material. The engine reads each copy
// back and compares fingerprints, as on the notification path.
func (x *executor) copyMaterial(ctx context.Context, idx []int) {
	// A backup paused by a 429 for longer than the run can wait gets nothing: defer its
	// step now rather than download the source for nothing.
	idx = slices.DeleteFunc(idx, func(i int) bool {
		st := x.steps[i]
		if _, err := x.targets[st.target].g.blocked(ctx, string(st.Action), st.Backup); err != nil {
			x.results[i] = failed(st, err)
			return true
		}
		return false
	})
	if len(idx) == 0 {
		return
	}
	first := x.steps[idx[0]]
	each := func(f func(st Step) Result) {
		for _, i := range idx {
			x.results[i] = f(x.steps[i])
		}
	}
	src, err := x.source.Download(ctx, first.SourceCRN)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		each(func(st Step) Result {
			return Result{Step: st, Outcome: replicate.Skipped, Message: "the source certificate was deleted after the listing; the next run finds its copies as orphans"}
		})
		return
	case err != nil:
		each(func(st Step) Result { return failed(st, fmt.Errorf("download from the source: %w", err)) })
		return
	case src.ID != first.SourceCRN:
		each(func(st Step) Result {
			return Result{Step: st, Outcome: replicate.Failed, ErrorClass: engine.ClassInvalidSource, Message: "the source returned another certificate than the one asked for"}
		})
		return
	}
	bundle, err := pemutil.ParseBundle(src.Material.Certificate, src.Material.PrivateKey, src.Material.Intermediate)
	if err != nil {
		each(func(st Step) Result { return failed(st, fmt.Errorf("source material: %w", err)) })
		return
	}
	each(func(st Step) Result {
		found := st.found
		pr := x.engine.CopyTo(ctx, x.targets[st.target], src, bundle, &found, replicate.CopyOptions{KnownDifferent: st.Action == ActionReimport})
		r := Result{
			Step: st, Outcome: pr.Outcome, Verified: pr.Verified, Fingerprint: pr.Fingerprint,
			RemovedDuplicates: pr.RemovedDuplicates, ErrorClass: pr.ErrorClass, Message: pr.Message,
		}
		if pr.CopyCRN != "" {
			r.CopyCRN = pr.CopyCRN
		}
		if pr.Outcome == replicate.Failed && pr.ErrorClass == engine.ClassRetryable {
			r.Outcome = Deferred
		}
		return r
	})
}

// updateLabels sets the copy's name and description without touching its material:
// the plan saw from the metadata that it holds the source certificate. The copy's
// metadata is read back (no download) and must show the labels and the same
// certificate.
func (x *executor) updateLabels(ctx context.Context, st Step) Result {
	t := x.targets[st.target]
	want := x.engine.Owner.WantFor(t, st.src, st.found)
	if err := t.UpdateLabels(ctx, st.CopyCRN, want); err != nil {
		return failed(st, fmt.Errorf("update name and description: %w", err))
	}
	got, err := t.Metadata(ctx, st.CopyCRN)
	if err != nil {
		return failed(st, fmt.Errorf("read the copy back: %w", err))
	}
	if (got.ID != "" && got.ID != st.CopyCRN) || engine.LabelsOf(*got) != want || !engine.SameCertificate(st.src.Certificate, *got) {
		return Result{Step: st, Outcome: replicate.Failed, ErrorClass: engine.ClassVerification,
			Message: "the copy read back does not have the source's name, description and certificate"}
	}
	return x.removeDuplicates(ctx, Result{Step: st, Outcome: replicate.Updated, Verified: true})
}

// removeDuplicates deletes the further copies of a source whose copy is right: they
// are ours (they carry its marker) and the engine would converge on the same winner.
func (x *executor) removeDuplicates(ctx context.Context, r Result) Result {
	t := x.targets[r.target]
	for _, d := range r.Duplicates {
		if err := t.Delete(ctx, d); err != nil && !errors.Is(err, engine.ErrNotFound) {
			f := failed(r.Step, fmt.Errorf("delete duplicate copy %s: %w", d, err))
			r.Outcome, r.ErrorClass, r.Message = f.Outcome, f.ErrorClass, f.Message
			return r
		}
		r.RemovedDuplicates = append(r.RemovedDuplicates, d)
	}
	return r
}

// deleteOrphan deletes every copy of a source certificate that no longer exists. The
// plan only makes this step under prune, for copies carrying a marker of this source
// instance. A listing is not proof of absence (a keyset cursor may skip a certificate
// renewed while the pages were read), so the source is asked first: a delete cannot be
// undone.
func (x *executor) deleteOrphan(ctx context.Context, st Step) Result {
	switch _, err := x.source.Metadata(ctx, st.SourceCRN); {
	case err == nil:
		return Result{Step: st, Outcome: Deferred, ErrorClass: engine.ClassRetryable,
			Message: "the source certificate exists though the listing missed it: its copy is kept for the next run to pair"}
	case !errors.Is(err, engine.ErrNotFound):
		return failed(st, fmt.Errorf("confirm that the source certificate is gone: %w", err))
	}
	t := x.targets[st.target]
	for _, c := range append([]string{st.CopyCRN}, st.Duplicates...) {
		if err := t.Delete(ctx, c); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return failed(st, fmt.Errorf("delete orphan copy %s: %w", c, err))
		}
	}
	return Result{Step: st, Outcome: Deleted}
}

// failed makes the result of a step that err stopped: Deferred when trying again later
// may succeed, Failed otherwise.
func failed(st Step, err error) Result {
	r := Result{Step: st, Outcome: replicate.Failed, ErrorClass: engine.ClassOf(err), Message: err.Error()}
	if r.ErrorClass == engine.ClassRetryable {
		r.Outcome = Deferred
	}
	return r
}

// finish fills the counts, the per-backup sums, the lists and Match.
func (rep *Report) finish(p *PlanResult, results []Result) {
	for _, bl := range p.Backups {
		if bl.Error == "" {
			continue
		}
		r := Result{Step: Step{Backup: bl.InstanceCRN, Action: ActionSkip, Reason: "the backup instance could not be listed"},
			Outcome: replicate.Failed, ErrorClass: bl.ErrorClass, Message: bl.Error}
		if bl.ErrorClass == engine.ClassRetryable {
			r.Outcome = Deferred
		}
		results = append(results, r)
	}
	rep.Results = results
	byBackup := map[string]*BackupReport{}
	for _, bl := range p.Backups {
		rep.Backups = append(rep.Backups, BackupReport{BackupListing: bl, Counts: map[Outcome]int{}})
	}
	for i := range rep.Backups {
		byBackup[rep.Backups[i].InstanceCRN] = &rep.Backups[i]
	}
	rep.Match = true
	for _, r := range results {
		rep.Counts[r.Outcome]++
		if b := byBackup[r.Backup]; b != nil {
			b.Counts[r.Outcome]++
		}
		if len(r.Conflicts) > 0 {
			rep.Conflicts = append(rep.Conflicts, r)
		}
		switch r.Outcome {
		case replicate.Failed:
			rep.Failures = append(rep.Failures, r)
			rep.Match = false
		case Deferred:
			rep.Deferred = append(rep.Deferred, r)
			rep.Match = false
		case Planned:
			rep.Match = false
		default:
			if r.Action != ActionDeleteOrphan && len(r.RemovedDuplicates) < len(r.Duplicates) {
				// The copy is right but a duplicate could not be deleted (the engine says
				// why in Message): the next run removes it.
				rep.Deferred = append(rep.Deferred, r)
				rep.Match = false
			}
		}
	}
}

func logReport(ctx context.Context, log *slog.Logger, rep *Report) {
	for _, r := range rep.Results {
		switch r.Outcome {
		case replicate.Unchanged, OrphanKept, Planned:
			continue
		}
		level := slog.LevelInfo
		if r.Outcome == replicate.Failed || r.Outcome == Deferred {
			level = slog.LevelWarn
		}
		log.LogAttrs(ctx, level, "reconciled",
			slog.String("source_crn", r.SourceCRN), slog.String("backup_instance_crn", r.Backup),
			slog.String("copy_crn", r.CopyCRN), slog.String("action", string(r.Action)),
			slog.String("outcome", string(r.Outcome)), slog.Bool("verified", r.Verified),
			slog.String("error_class", r.ErrorClass), slog.String("message", r.Message))
	}
	attrs := []slog.Attr{
		slog.String("mode", rep.Mode), slog.Bool("match", rep.Match),
		slog.Int("source_certificates", rep.SourceCertificates), slog.Int("source_downloads", rep.SourceDownloads),
		slog.Int("failures", len(rep.Failures)), slog.Int("deferred", len(rep.Deferred)),
		slog.Int("conflicts", len(rep.Conflicts)), slog.Int64("duration_ms", rep.DurationMS),
	}
	for o, n := range rep.Counts {
		attrs = append(attrs, slog.Int("count_"+string(o), n))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "reconcile finished", attrs...)
}
