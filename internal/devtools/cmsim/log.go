package cmsim

import (
	"slices"
	"time"
)

// Request is one HTTP request the simulator answered. Requests made through the Go API
// are not logged.
type Request struct {
	Method      string
	EscapedPath string
	Query       string
	Op          string // "" when the path matched no operation
	Instance    string // instance CRN, also for certificate operations
	Cert        string // certificate CRN for certificate operations
	Status      int    // what the client got; 0 when the connection was dropped
	Time        time.Time
}

type logEntry struct {
	Request
	handled int // status the handler produced; 0 if a fault answered first
}

var writeOps = []string{OpImport, OpReimport, OpUpdate, OpDelete}

func (s *Simulator) record(e logEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, e)
}

// Requests returns the request log in arrival order of completion.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, e := range s.log {
		out[i] = e.Request
	}
	return out
}

// Count counts logged requests of op ("" = any) about instanceCRN ("" = any), whatever
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

// Writes counts imports, reimports, updates and deletes in the instance ("" = any) that
// were carried out, including those whose answer a Fault.AfterOp replaced.
func (s *Simulator) Writes(instanceCRN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.log {
		if slices.Contains(writeOps, e.Op) && e.handled >= 200 && e.handled < 300 &&
			(instanceCRN == "" || e.Instance == instanceCRN) {
			n++
		}
	}
	return n
}

// Carried counts the calls of operation op that the service carried out (its handler
// answered 2xx, whatever the client then got), for instanceCRN ("" for all).
func (s *Simulator) Carried(op, instanceCRN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.log {
		if e.Op == op && e.handled >= 200 && e.handled < 300 && (instanceCRN == "" || e.Instance == instanceCRN) {
			n++
		}
	}
	return n
}

// ResetLog clears the request log, the deliveries and the sent tokens.
func (s *Simulator) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log, s.deliveries, s.sent = nil, nil, nil
}

// Deliveries returns every notification delivery attempt, in order.
func (s *Simulator) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// SentTokens returns every notification JWT signed for a channel, in order.
func (s *Simulator) SentTokens() []SentToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}
