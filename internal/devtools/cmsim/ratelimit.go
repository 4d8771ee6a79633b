package cmsim

import "time"

// rateLimited is the 429 answer for an exhausted window.
func rateLimited(retryAfter time.Duration, what string) *apiError {
	e := errorf(429, codeRateLimited, "rate limit exceeded: %s", what)
	e.retryAfter = retryAfter
	return e
}
