package smsim

import (
	mrand "math/rand/v2"
	"time"
)

// Fault makes matching requests fail or slow down. The zero value of each field means
// "any" or "off".
type Fault struct {
	// Op is an operation name (OpListSecrets, OpCreateVersion, OpIAMToken, ...) or ""
	// for every request, including unroutable ones.
	Op string
	// Instance restricts the fault to requests to this instance CRN; "" for any.
	Instance string
	// Status answers the request with this status instead of handling it (429, 500,
	// 503...). 5xx bodies are plain text, as from a gateway; 4xx bodies the API's error
	// JSON.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay is waited before the request is handled or answered.
	Delay time.Duration
	// Drop closes the connection without an answer.
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

// replaces reports whether the fault answers instead of the handler.
func (f *Fault) replaces() bool { return f.Drop || f.Status != 0 }

type activeFault struct {
	id        int
	fault     Fault
	remaining int // for Times > 0
}

// Inject adds a fault and returns its id for RemoveFault. Faults are tried in the order
// they were injected; the first that fires applies.
func (s *Simulator) Inject(f Fault) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFault++
	s.faults = append(s.faults, &activeFault{id: s.nextFault, fault: f, remaining: f.Times})
	return s.nextFault
}

// RemoveFault removes one fault.
func (s *Simulator) RemoveFault(id int) {
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
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency adds d to every request (IAM included).
func (s *Simulator) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetSeed resets the random source of probabilistic faults, so a run can be repeated.
func (s *Simulator) SetSeed(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rng = mrand.New(mrand.NewPCG(seed, seed))
}

// takeFaultLocked returns the first fault that fires for the request, consuming one of
// its Times.
func (s *Simulator) takeFaultLocked(op, instanceCRN string) *Fault {
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
