package cmsim

import "time"

// window is a sliding-window rate limiter: at most limit events in any period.
type window struct {
	times []time.Time
}

// allow records an event at now if fewer than limit happened in the last period; when
// not, it returns how long until the oldest of them leaves the window.
func (w *window) allow(now time.Time, limit int, period time.Duration) (bool, time.Duration) {
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

// rateLimited is the 429 answer for an exhausted window.
func rateLimited(retryAfter time.Duration, what string) *apiError {
	e := errorf(429, codeRateLimited, "rate limit exceeded: %s", what)
	e.retryAfter = retryAfter
	return e
}
