// Package simfault is the fault injection both simulators share: faults that answer
// instead of the service (a status, a dropped connection), delay it, or fire after
// the operation took effect, a given number of times or with a probability drawn from a
// seeded source, plus a fixed latency on every request. It is development tooling:
// no product code imports it.
package simfault

import (
	"context"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Fault makes matching requests fail or slow down. The zero value of each field means
// "any" or "off".
type Fault struct {
	// Op is an operation name of the simulator (its Op constants) or "" for every
	// request, including unroutable ones.
	Op string
	// Instance restricts the fault to requests about this instance CRN; "" for any.
	Instance string
	// Status answers the request with this status instead of handling it (429, 500,
	// 503...). 5xx bodies are plain text, 4xx bodies the API's error JSON.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay is waited before the request is handled or answered.
	Delay time.Duration
	// Drop hijacks the connection and closes it without an answer.
	Drop bool
	// AfterOp carries the request out first and then replaces the answer with Status or
	// Drop: the write happened but the client does not know it.
	AfterOp bool
	// Times limits the fault to the next Times matching requests; 0 = unlimited.
	Times int
	// Probability, when above 0, fires the fault on that fraction of matching requests,
	// drawn from the simulator's seeded random source (SetSeed).
	Probability float64
}

// Replaces reports whether the fault answers instead of the handler.
func (f *Fault) Replaces() bool { return f.Drop || f.Status != 0 }

type activeFault struct {
	id        int
	fault     Fault
	remaining int // for Times > 0
}

// Set holds a simulator's faults and latency. Safe for concurrent use; a simulator
// embeds it, so that Inject, RemoveFault, ClearFaults, SetLatency and SetSeed are its own.
type Set struct {
	mu      sync.Mutex
	faults  []*activeFault
	next    int
	rng     *mrand.Rand
	latency time.Duration
}

// NewSet returns an empty set whose probabilities draw from seed.
func NewSet(seed uint64) *Set { return &Set{rng: mrand.New(mrand.NewPCG(seed, seed))} }

// Inject adds a fault and returns its id for RemoveFault. Faults are tried in the order
// they were injected; the first that fires applies.
func (s *Set) Inject(f Fault) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	s.faults = append(s.faults, &activeFault{id: s.next, fault: f, remaining: f.Times})
	return s.next
}

// RemoveFault removes one fault.
func (s *Set) RemoveFault(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, af := range s.faults {
		if af.id == id {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every fault.
func (s *Set) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency adds d to every request (IAM included).
func (s *Set) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Latency is the latency every request gets.
func (s *Set) Latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

// SetSeed resets the random source of probabilistic faults, so a run can be repeated.
func (s *Set) SetSeed(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rng = mrand.New(mrand.NewPCG(seed, seed))
}

// Take returns the first fault that fires for the request, consuming one of its
// Times; nil when none does.
func (s *Set) Take(op, instanceCRN string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, af := range s.faults {
		f := &af.fault
		if f.Op != "" && f.Op != op || f.Instance != "" && f.Instance != instanceCRN {
			continue
		}
		if f.Probability > 0 && s.rng.Float64() >= f.Probability {
			continue
		}
		if f.Times > 0 {
			af.remaining--
			if af.remaining == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		out := *f
		return &out
	}
	return nil
}

// Wait sleeps for d, or until the client gives up (ctx). Either way the simulator goes
// on to carry out the request, as a real service does with a request it has received.
func Wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// DropConnection ends the exchange without an answer: the connection is closed, or,
// where it cannot be taken over (HTTP/2, a recorder), the response is aborted, which
// resets the stream.
func DropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
