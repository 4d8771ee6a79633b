package replicate

import (
	"context"
	"sync"

	"github.com/certbackup/certbackup/internal/engine"
)

// CopyCache maps (backup instance, source certificate) to the copy's ID. Safe for
// concurrent use. A stale entry is harmless: the copy is read and its marker checked
// before it is trusted.
type CopyCache struct {
	mu sync.Mutex
	m  map[[2]string]string
}

// NewCopyCache returns an empty cache.
func NewCopyCache() *CopyCache { return &CopyCache{m: map[[2]string]string{}} }

func (c *CopyCache) get(backup, source string) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[[2]string{backup, source}]
}

func (c *CopyCache) put(backup, source, copyID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if copyID == "" {
		delete(c.m, [2]string{backup, source})
		return
	}
	c.m[[2]string{backup, source}] = copyID
}

// prefetch is the read of a cached copy, started while the source downloads.
type prefetch struct {
	id  string
	cp  *engine.Downloaded
	err error
}

// prefetch starts reading the copy the cache knows of source id in t; nil when it
// knows none.
func (e *Engine) prefetch(ctx context.Context, t engine.Target, id string) <-chan prefetch {
	known := e.Cache.get(t.Instance(), id)
	if known == "" {
		return nil
	}
	ch := make(chan prefetch, 1)
	go func() {
		cp, err := t.Download(ctx, known)
		ch <- prefetch{id: known, cp: cp, err: err}
	}()
	return ch
}

func receive(ctx context.Context, ch <-chan prefetch) (prefetch, bool) {
	if ch == nil {
		return prefetch{}, false
	}
	select {
	case p := <-ch:
		return p, true
	case <-ctx.Done():
		return prefetch{}, false
	}
}
