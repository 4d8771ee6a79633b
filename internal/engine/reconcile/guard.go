package reconcile

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
)

// A guard stands in front of one instance for the length of a run and keeps the run's
// promises to the service whatever path a call takes (the engine's or ours):
//
//   - after a 429, no call to that instance starts before its Retry-After has passed
//     (at least a second), and a call that would have to wait past the run's time
//     budget fails at once with a retryable error, so its certificate is deferred;
//   - a copy is reimported at most once per run (the service allows five a minute per
//     certificate, and two in one run would mean the plan is wrong).
//
// Errors it makes answer engine.ErrRetryable, so that the engine and the report class
// them like the service's own.
type guard struct {
	minRemaining time.Duration

	mu         sync.Mutex
	until      time.Time
	reimported map[string]bool

	downloads atomic.Int64 // source downloads, for the report
}

var (
	errRateLimited       = errors.New("rate limited earlier in this run: waiting for Retry-After would cross the run's time budget; left for the next run")
	errReimportedThisRun = errors.New("already reimported in this run (Certificate Manager allows 5 reimports a minute per certificate); left for the next run")
)

func newGuard(minRemaining time.Duration) *guard {
	return &guard{minRemaining: minRemaining, reimported: map[string]bool{}}
}

// blocked returns the error a call would get at once: the instance is paused by a 429
// past what the run's time budget can wait for.
func (g *guard) blocked(ctx context.Context, op, crn string) (time.Duration, error) {
	g.mu.Lock()
	until := g.until
	g.mu.Unlock()
	d := time.Until(until)
	if d <= 0 {
		return 0, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl)-d < g.minRemaining {
		return d, &guardError{op: op, id: crn, retryAfter: d, err: errRateLimited}
	}
	return d, nil
}

// wait blocks until the instance may be called again.
func (g *guard) wait(ctx context.Context, op, crn string) error {
	d, err := g.blocked(ctx, op, crn)
	if err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &guardError{op: op, id: crn, err: ctx.Err()}
	}
}

// observe records a 429 that the client's own retries did not absorb.
func (g *guard) observe(err error) {
	if !errors.Is(err, engine.ErrRateLimited) {
		return
	}
	pause := max(time.Second, engine.RetryAfter(err))
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := time.Now().Add(pause); u.After(g.until) {
		g.until = u
	}
}

func (g *guard) claimReimport(cert string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reimported[cert] {
		return &guardError{op: "reimport", id: cert, err: errReimportedThisRun}
	}
	g.reimported[cert] = true
	return nil
}

func guarded[T any](ctx context.Context, g *guard, op, crn string, call func() (T, error)) (T, error) {
	if err := g.wait(ctx, op, crn); err != nil {
		var zero T
		return zero, err
	}
	v, err := call()
	g.observe(err)
	return v, err
}

// guardError is a call the guard refused or cut short; trying again later (in the next
// run) may succeed.
type guardError struct {
	op, id     string
	retryAfter time.Duration
	err        error
}

func (e *guardError) Error() string             { return e.op + " " + e.id + ": " + e.err.Error() }
func (e *guardError) Unwrap() error             { return e.err }
func (e *guardError) Is(target error) bool      { return target == engine.ErrRetryable }
func (e *guardError) RetryDelay() time.Duration { return e.retryAfter }

type guardedSource struct {
	engine.Source
	g *guard
}

func (s guardedSource) List(ctx context.Context) ([]engine.Certificate, error) {
	return guarded(ctx, s.g, "list", s.Instance(), func() ([]engine.Certificate, error) { return s.Source.List(ctx) })
}

func (s guardedSource) Download(ctx context.Context, id string) (*engine.Downloaded, error) {
	return guarded(ctx, s.g, "download", id, func() (*engine.Downloaded, error) {
		s.g.downloads.Add(1)
		return s.Source.Download(ctx, id)
	})
}

func (s guardedSource) Metadata(ctx context.Context, id string) (*engine.Certificate, error) {
	return guarded(ctx, s.g, "metadata", id, func() (*engine.Certificate, error) { return s.Source.Metadata(ctx, id) })
}

type guardedTarget struct {
	engine.Target
	g *guard
}

func (t guardedTarget) List(ctx context.Context) ([]engine.Certificate, error) {
	return guarded(ctx, t.g, "list", t.Instance(), func() ([]engine.Certificate, error) { return t.Target.List(ctx) })
}

func (t guardedTarget) Download(ctx context.Context, id string) (*engine.Downloaded, error) {
	return guarded(ctx, t.g, "download", id, func() (*engine.Downloaded, error) { return t.Target.Download(ctx, id) })
}

func (t guardedTarget) Metadata(ctx context.Context, id string) (*engine.Certificate, error) {
	return guarded(ctx, t.g, "metadata", id, func() (*engine.Certificate, error) { return t.Target.Metadata(ctx, id) })
}

func (t guardedTarget) Import(ctx context.Context, l engine.Labels, m engine.Material) (*engine.Certificate, error) {
	return guarded(ctx, t.g, "import", t.Instance(), func() (*engine.Certificate, error) { return t.Target.Import(ctx, l, m) })
}

func (t guardedTarget) Reimport(ctx context.Context, id string, m engine.Material) error {
	if err := t.g.claimReimport(id); err != nil {
		return err
	}
	_, err := guarded(ctx, t.g, "reimport", id, func() (struct{}, error) { return struct{}{}, t.Target.Reimport(ctx, id, m) })
	return err
}

func (t guardedTarget) UpdateLabels(ctx context.Context, id string, l engine.Labels) error {
	_, err := guarded(ctx, t.g, "update", id, func() (struct{}, error) { return struct{}{}, t.Target.UpdateLabels(ctx, id, l) })
	return err
}

func (t guardedTarget) Delete(ctx context.Context, id string) error {
	_, err := guarded(ctx, t.g, "delete", id, func() (struct{}, error) { return struct{}{}, t.Target.Delete(ctx, id) })
	return err
}

// UniqueNames passes the guarded target's answer through (engine.UniqueNames).
func (t guardedTarget) UniqueNames() bool { return engine.NamesAreUnique(t.Target) }
