// Package retrypolicy is the one rule both providers follow when go-sdk-core asks
// whether to send a request again: its own policy (429, 5xx, network errors), except
// that a call that creates something is resent only after a 429 (which proves nothing
// was created), and that a Retry-After ending after the context's deadline is not waited
// for (the wait could only end in a deadline error; a prompt 429 serves the caller better).
package retrypolicy

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
)

type createKey struct{}

// Creating marks ctx as the context of a call that creates something.
func Creating(ctx context.Context) context.Context {
	return context.WithValue(ctx, createKey{}, true)
}

// Check is the retry policy for go-sdk-core's retryable HTTP client (CheckRetry).
func Check(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, perr := core.IBMCloudSDKRetryPolicy(ctx, resp, err)
	if !retry || perr != nil {
		return retry, perr
	}
	if ctx.Value(createKey{}) != nil && (err != nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests) {
		return false, nil
	}
	if resp != nil {
		if d := RetryAfter(resp.Header); d > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Now().Add(d).After(dl) {
				return false, nil
			}
		}
	}
	return true, nil
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date); zero when absent.
func RetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
