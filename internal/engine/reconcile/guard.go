package reconcile

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
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
// Errors it makes are *cms.Error values with Retryable set, so that the engine and the
// report class them like the service's own.
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
		return d, &cms.Error{Op: op, CRN: crn, Retryable: true, RetryAfter: d, Err: errRateLimited}
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
		return &cms.Error{Op: op, CRN: crn, Retryable: true, Err: ctx.Err()}
	}
}

// observe records a 429 that the client's own retries did not absorb.
func (g *guard) observe(err error) {
	if cms.StatusCode(err) != 429 {
		return
	}
	pause := time.Second
	var ce *cms.Error
	if errors.As(err, &ce) && ce.RetryAfter > pause {
		pause = ce.RetryAfter
	}
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
		return &cms.Error{Op: "reimport", CRN: cert, Retryable: true, Err: errReimportedThisRun}
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

type guardedSource struct {
	replicate.Source
	g *guard
}

func (s guardedSource) List(ctx context.Context) ([]cms.Certificate, error) {
	return guarded(ctx, s.g, "list", s.InstanceCRN(), func() ([]cms.Certificate, error) { return s.Source.List(ctx) })
}

func (s guardedSource) Download(ctx context.Context, cert string) (*cms.CertificateWithData, error) {
	return guarded(ctx, s.g, "download", cert, func() (*cms.CertificateWithData, error) {
		s.g.downloads.Add(1)
		return s.Source.Download(ctx, cert)
	})
}

type guardedTarget struct {
	replicate.Target
	g *guard
}

func (t guardedTarget) List(ctx context.Context) ([]cms.Certificate, error) {
	return guarded(ctx, t.g, "list", t.InstanceCRN(), func() ([]cms.Certificate, error) { return t.Target.List(ctx) })
}

func (t guardedTarget) Download(ctx context.Context, cert string) (*cms.CertificateWithData, error) {
	return guarded(ctx, t.g, "download", cert, func() (*cms.CertificateWithData, error) { return t.Target.Download(ctx, cert) })
}

func (t guardedTarget) Import(ctx context.Context, req cms.ImportRequest) (*cms.Certificate, error) {
	return guarded(ctx, t.g, "import", t.InstanceCRN(), func() (*cms.Certificate, error) { return t.Target.Import(ctx, req) })
}

func (t guardedTarget) Reimport(ctx context.Context, cert string, data cms.Data) (*cms.Certificate, error) {
	if err := t.g.claimReimport(cert); err != nil {
		return nil, err
	}
	return guarded(ctx, t.g, "reimport", cert, func() (*cms.Certificate, error) { return t.Target.Reimport(ctx, cert, data) })
}

func (t guardedTarget) UpdateMetadata(ctx context.Context, cert, name, description string) error {
	_, err := guarded(ctx, t.g, "update", cert, func() (struct{}, error) {
		return struct{}{}, t.Target.UpdateMetadata(ctx, cert, name, description)
	})
	return err
}

func (t guardedTarget) Delete(ctx context.Context, cert string) error {
	_, err := guarded(ctx, t.g, "delete", cert, func() (struct{}, error) { return struct{}{}, t.Target.Delete(ctx, cert) })
	return err
}

// MetadataReader is implemented by a Source or Target that can read one certificate's
// metadata without its material. The reconcile reads a copy back this way after a label
// update, and asks the source whether an orphan's certificate is really gone.
type MetadataReader interface {
	Metadata(ctx context.Context, certCRN string) (*cms.Certificate, error)
}

// metadataOf reads a certificate's metadata from inner: through MetadataReader when it
// has it, through the client of a replicate.Instance, else by downloading it.
func metadataOf(ctx context.Context, inner any, cert string, download func(context.Context, string) (*cms.CertificateWithData, error)) (*cms.Certificate, error) {
	switch in := inner.(type) {
	case MetadataReader:
		return in.Metadata(ctx, cert)
	case replicate.Instance:
		return in.Client.Metadata(ctx, cert)
	case *replicate.Instance:
		return in.Client.Metadata(ctx, cert)
	}
	d, err := download(ctx, cert)
	if err != nil {
		return nil, err
	}
	return &d.Certificate, nil
}

// Metadata reads a copy's metadata (see metadataOf).
func (t guardedTarget) Metadata(ctx context.Context, cert string) (*cms.Certificate, error) {
	return guarded(ctx, t.g, "metadata", cert, func() (*cms.Certificate, error) {
		return metadataOf(ctx, t.Target, cert, t.Target.Download)
	})
}

// Metadata reads a source certificate's metadata (see metadataOf).
func (s guardedSource) Metadata(ctx context.Context, cert string) (*cms.Certificate, error) {
	return guarded(ctx, s.g, "metadata", cert, func() (*cms.Certificate, error) {
		return metadataOf(ctx, s.Source, cert, func(ctx context.Context, cert string) (*cms.CertificateWithData, error) {
			s.g.downloads.Add(1)
			return s.Source.Download(ctx, cert)
		})
	})
}
