package replicate

import (
	"context"
	"sync"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
)

// Batch shares one listing of each backup among the certificates of one batch (the
// certificates of one notification), so that n certificates a process has not copied
// before list each backup once instead of n times. Only the first look for a copy
// uses it: every listing that decides after a write (the check for a racing import, a
// name that turned out to be taken) is made fresh, so a copy made since the shared
// listing is found as it is without one. One per batch (a listing goes stale); safe
// for concurrent use.
type Batch struct {
	mu sync.Mutex
	m  map[string]*batchListing // backup instance -> its listing, indexed
}

type batchListing struct {
	done chan struct{}
	ix   *match.Index
	err  error
}

// NewBatch returns a batch that has listed nothing yet.
func NewBatch() *Batch { return &Batch{m: map[string]*batchListing{}} }

// index is t's listing, indexed for o: listed by the first caller, waited for by the
// others. A failed listing is not kept: the next caller lists again.
func (b *Batch) index(ctx context.Context, o *match.Owner, t engine.Target) (*match.Index, error) {
	b.mu.Lock()
	l, ok := b.m[t.Instance()]
	if !ok {
		l = &batchListing{done: make(chan struct{})}
		b.m[t.Instance()] = l
	}
	b.mu.Unlock()
	if ok {
		select {
		case <-l.done:
			return l.ix, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	all, err := t.List(ctx)
	if err == nil {
		l.ix = match.NewIndex(o, t.Instance(), all)
	} else {
		l.err = err
		b.mu.Lock()
		delete(b.m, t.Instance())
		b.mu.Unlock()
	}
	close(l.done)
	return l.ix, l.err
}
