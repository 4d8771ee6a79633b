package secretsmanager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/provider/retrypolicy"
)

// jitterAllowance is how much later than it was sent a request may reach the service
// and still be counted in the right second: the limiter lets at most n requests leave
// in any window of one second plus this allowance, so that no one-second window at the
// service sees more than n even when some requests are delayed on the way by up to
// 50 ms. At 20 per second that is about 19 a second sustained.
const jitterAllowance = 50 * time.Millisecond

// defaultHold is how long an instance is left alone after a 429 without Retry-After.
const defaultHold = time.Second

// errRateWait: a request would have had to wait for its turn past the call's deadline,
// so it was not sent at all.
var errRateWait = errors.New("the request rate limit of the instance would delay the call past its deadline")

// limiter keeps the requests to one instance at most n in any window: a sliding
// window, so that the few calls of one copy leave back to back and only a run that
// would pass the ceiling waits. It is shared by every call to the instance, retries
// included, and safe for concurrent use.
type limiter struct {
	n      int
	window time.Duration

	mu    sync.Mutex
	slots []time.Time // the last n slots given out (some may lie ahead), in order
	until time.Time   // no slot before this: the service asked to wait (429)
}

func newLimiter(perSecond int) *limiter {
	return &limiter{n: perSecond, window: time.Second + jitterAllowance}
}

// wait takes the next slot and waits for it, honouring ctx. A slot that lies after
// ctx's deadline is not taken nor waited for: the call fails at once, unsent.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	slot := l.nextSlot(time.Now())
	if dl, ok := ctx.Deadline(); ok && slot.After(dl) {
		l.mu.Unlock()
		return fmt.Errorf("%w: %w", errRateWait, context.DeadlineExceeded)
	}
	l.slots = append(l.slots, slot)
	if len(l.slots) > l.n {
		l.slots = l.slots[len(l.slots)-l.n:]
	}
	l.mu.Unlock()
	d := time.Until(slot)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		// The slot is lost, which only slows the instance's other calls a little.
		return ctx.Err()
	}
}

// nextSlot is the earliest time a request may leave: now, unless n slots already lie
// within a window before it (then one window after the oldest of those) or the
// service asked to wait. Slots are given out in order, so the window holds at most n.
func (l *limiter) nextSlot(now time.Time) time.Time {
	slot := now
	if len(l.slots) == l.n {
		if free := l.slots[0].Add(l.window); free.After(slot) {
			slot = free
		}
	}
	if l.until.After(slot) {
		slot = l.until
	}
	if last := len(l.slots) - 1; last >= 0 && l.slots[last].After(slot) {
		slot = l.slots[last] // keep the order: a later caller never goes first
	}
	return slot
}

// hold keeps every request to the instance back until d from now: the service said
// how long to wait (429 Retry-After), and that holds for all of them, not only for the
// one that was told.
func (l *limiter) hold(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := time.Now().Add(d); until.After(l.until) {
		l.until = until
	}
}

// limitedTransport sends each request (each attempt of a call) through the instance's
// limiter and records, in the call's trace, what became of it.
type limitedTransport struct {
	base http.RoundTripper
	lim  *limiter
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := traceOf(req.Context())
	if err := t.lim.wait(req.Context()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		// A request that failed before its connection was made was never written.
		var op *net.OpError
		if !(errors.As(err, &op) && op.Op == "dial") {
			tr.record(0)
		}
		return nil, err
	}
	tr.record(resp.StatusCode)
	if resp.StatusCode == http.StatusTooManyRequests {
		d := defaultHold
		if resp.Header.Get("Retry-After") != "" {
			d = retrypolicy.RetryAfter(resp.Header)
		}
		t.lim.hold(d)
	}
	return resp, nil
}

// trace is what the attempts of one call did, for the classification of its failure.
type trace struct {
	mu       sync.Mutex
	attempts int  // requests written to the network
	acted    bool // an attempt may have been carried out: no answer, or a server error
}

type traceKey struct{}

func withTrace(ctx context.Context, t *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceOf(ctx context.Context) *trace {
	t, _ := ctx.Value(traceKey{}).(*trace)
	return t // nil outside a call: its methods accept that
}

// record notes one written request: status 0 when no answer came back.
func (t *trace) record(status int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	if status == 0 || status >= 500 {
		t.acted = true
	}
}

func (t *trace) read() (attempts int, acted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempts, t.acted
}
