// Package simrate is the sliding-window rate limit both simulators use to answer 429
// as their services do.
package simrate

import "time"

// Window allows at most a limit of events in any period. The zero value is empty.
type Window struct {
	times []time.Time
}

// Allow records an event at now if fewer than limit happened in the period before it;
// when not, it returns how long until the oldest of them leaves the window.
func (w *Window) Allow(now time.Time, limit int, period time.Duration) (bool, time.Duration) {
	cutoff := now.Add(-period)
	i := 0
	for i < len(w.times) && !w.times[i].After(cutoff) {
		i++
	}
	w.times = w.times[i:]
	if len(w.times) >= limit {
		return false, w.times[0].Add(period).Sub(now)
	}
	w.times = append(w.times, now)
	return true, 0
}
