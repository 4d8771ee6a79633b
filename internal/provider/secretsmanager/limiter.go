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
// and still be counted in the right second: the limiter spaces requests so that n of
// them span one second plus this allowance. At 20 per second a request leaves at most
// every 52.5 ms, about 19 per second, and no one-second window at the service sees more
// than 20 even when some requests are delayed on the way by up to 50 ms.
const jitterAllowance = 50 * time.Millisecond

// defaultHold is how long an instance is left alone after a 429 without Retry-After.
const defaultHold = time.Second

// errRateWait: a request would have had to wait for its turn past the call's deadline,
// so it was not sent at all.
var errRateWait = errors.New("the request rate limit of the instance would delay the call past its deadline")

// limiter spaces the requests to one instance: a token bucket of one token refilled
// every interval, so that a burst never exceeds the rate either. It is shared by every
// call to the instance, retries included, and safe for concurrent use.
type limiter struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time // the earliest time the next request may leave
}

func newLimiter(perSecond int) *limiter {
	return &limiter{interval: (time.Second + jitterAllowance) / time.Duration(perSecond)}
}

// wait takes the next slot and waits for it, honouring ctx. A slot that lies after
// ctx's deadline is not waited for: the call fails at once, unsent.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	slot := l.next
	if slot.Before(now) {
		slot = now
	}
	if dl, ok := ctx.Deadline(); ok && slot.After(dl) {
		l.mu.Unlock()
		return fmt.Errorf("%w: %w", errRateWait, context.DeadlineExceeded)
	}
	l.next = slot.Add(l.interval)
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

// hold keeps every request to the instance back until d from now: the service said
// how long to wait (429 Retry-After), and that holds for all of them, not only for the
// one that was told.
func (l *limiter) hold(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := time.Now().Add(d); until.After(l.next) {
		l.next = until
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
