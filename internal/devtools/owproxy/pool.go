package owproxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Pool runs activations concurrently on several processes started from the
// same exec, the way OpenWhisk scales an action out over separate
// containers, each running one activation at a time.
//
// After a developer error (a Run that returned a status other than 200, or an
// error) the process is closed and the next activation that picks its slot
// starts a fresh one: the invoker destroys a container after a developer
// error and the next activation gets a cold start.
//
// Its methods are safe for concurrent use.
type Pool struct {
	execPath string
	opts     Options
	slots    chan *slot

	mu     sync.Mutex
	all    []*Process // every process ever started, for Logs
	closed bool
}

type slot struct{ p *Process } // p is nil when the slot needs a cold start

// StartPool starts n processes (concurrently) with Start and the same
// options. Writers in opts receive the output of every process; they are
// wrapped so that they need not be safe for concurrent use. If any process
// fails to start, the others are closed and the errors returned.
func StartPool(ctx context.Context, execPath string, n int, opts Options) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("owproxy: pool size %d, want at least 1", n)
	}
	var mu sync.Mutex // one lock for both: they may be the same writer
	if opts.Stdout != nil {
		opts.Stdout = lockedWriter{&mu, opts.Stdout}
	}
	if opts.Stderr != nil {
		opts.Stderr = lockedWriter{&mu, opts.Stderr}
	}
	pl := &Pool{execPath: execPath, opts: opts, slots: make(chan *slot, n)}

	procs := make([]*Process, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { procs[i], errs[i] = Start(ctx, execPath, opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range procs {
			if p != nil {
				_ = p.Close()
			}
		}
		return nil, fmt.Errorf("owproxy: start pool: %w", err)
	}
	pl.all = procs
	for _, p := range procs {
		pl.slots <- &slot{p: p}
	}
	return pl, nil
}

// Size is the number of processes (slots) of the pool.
func (pl *Pool) Size() int { return cap(pl.slots) }

// Run waits for a free process (or ctx) and runs the activation on it with
// Process.Run. A slot whose process was discarded gets a fresh process first
// (a cold start, bounded by ctx and Options.AckTimeout).
func (pl *Pool) Run(ctx context.Context, params map[string]any, meta RunMeta) (status int, body []byte, err error) {
	var s *slot
	select {
	case s = <-pl.slots:
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("owproxy: wait for a free process: %w", ctx.Err())
	}
	defer func() { pl.slots <- s }()

	pl.mu.Lock()
	closed := pl.closed
	pl.mu.Unlock()
	if closed {
		return 0, nil, ErrClosed
	}
	if s.p == nil {
		p, err := Start(ctx, pl.execPath, pl.opts)
		if err != nil {
			return 0, nil, fmt.Errorf("owproxy: cold start: %w", err)
		}
		if !pl.record(p) {
			_ = p.Close()
			return 0, nil, ErrClosed
		}
		s.p = p
	}
	status, body, err = s.p.Run(ctx, params, meta)
	if err != nil || status != 200 {
		_ = s.p.Close()
		s.p = nil
	}
	return status, body, err
}

// record adds p to the pool's processes unless the pool is closed.
func (pl *Pool) record(p *Process) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return false
	}
	pl.all = append(pl.all, p)
	return true
}

// Logs returns the logs of every process the pool has started, in start order,
// including the ones it discarded.
func (pl *Pool) Logs() []Logs {
	pl.mu.Lock()
	procs := append([]*Process(nil), pl.all...)
	pl.mu.Unlock()
	out := make([]Logs, len(procs))
	for i, p := range procs {
		out[i] = p.Logs()
	}
	return out
}

// Close closes every process. Runs in progress fail; later Runs fail with
// ErrClosed.
func (pl *Pool) Close() error {
	pl.mu.Lock()
	pl.closed = true
	procs := append([]*Process(nil), pl.all...)
	pl.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.Close() })
	}
	wg.Wait()
	return nil
}
