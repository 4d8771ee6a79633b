package smsim

import (
	"slices"
	"time"
)

// Request is one HTTP request the simulator answered. Calls of the Go API are not
// logged.
type Request struct {
	Method      string
	EscapedPath string
	Query       string
	Op          string // "" when the path matched no operation
	Instance    string // instance CRN; "" for IAM and unknown instances
	SecretID    string // the {id} of secret-scoped operations
	Status      int    // what the client got; 0 when the connection was dropped
	Time        time.Time
}

type logEntry struct {
	Request
	handled int // status the handler produced; 0 if a fault answered first
}

func (s *Simulator) record(e logEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, e)
}

// Requests returns the request log in order of completion.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, e := range s.log {
		out[i] = e.Request
	}
	return out
}

// Count counts logged requests of op ("" = any) to instanceCRN ("" = any), whatever
// their outcome.
func (s *Simulator) Count(op, instanceCRN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.log {
		if (op == "" || e.Op == op) && (instanceCRN == "" || e.Instance == instanceCRN) {
			n++
		}
	}
	return n
}

// Writes counts the changes made through the API in the instance ("" = any): secrets
// and versions created, metadata updated, secrets deleted, groups created and deleted,
// including those whose answer a Fault.AfterOp replaced.
func (s *Simulator) Writes(instanceCRN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.log {
		if writeOps[e.Op] && e.handled >= 200 && e.handled < 300 &&
			(instanceCRN == "" || e.Instance == instanceCRN) {
			n++
		}
	}
	return n
}

// ResetLog clears the request log and the rate observer.
func (s *Simulator) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.arrivals = map[string][]time.Time{}
}

// Arrivals returns when each request to the instance arrived, in order, on the real
// (monotonic) clock, whatever Options.Now says. IAM requests are not counted.
func (s *Simulator) Arrivals(instanceCRN string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.arrivals[instanceCRN])
	// Concurrent requests may be recorded a little out of order.
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// PeakRate is the largest number of requests to the instance that arrived within any
// window of length d (a window [t, t+d) that starts at an arrival). A client that keeps
// under 20 req/s has PeakRate(instance, time.Second) <= 20.
func (s *Simulator) PeakRate(instanceCRN string, d time.Duration) int {
	times := s.Arrivals(instanceCRN)
	peak, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < d {
			j++
		}
		peak = max(peak, j-i)
	}
	return peak
}
