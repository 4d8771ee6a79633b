package retrypolicy

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryAfterHeader(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "0": 0, "-1": 0, "soon": 0} {
		assert.Equal(t, want, RetryAfter(http.Header{"Retry-After": {v}}), v)
	}
	d := RetryAfter(http.Header{"Retry-After": {time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)}})
	assert.InDelta(t, 5*time.Second, d, float64(2*time.Second))
}

// TestCheck: a create is resent only after a 429; a Retry-After past the deadline is
// not waited for; the rest is go-sdk-core's policy.
func TestCheck(t *testing.T) {
	status := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	soon, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		resp *http.Response
		err  error
		want bool
	}{
		{"503 is retried", context.Background(), status(503, ""), nil, true},
		{"400 is not", context.Background(), status(400, ""), nil, false},
		{"a create after a 503 is not", Creating(context.Background()), status(503, ""), nil, false},
		{"a create after a network error is not", Creating(context.Background()), nil, errors.New("reset"), false},
		{"a create after a 429 is", Creating(context.Background()), status(429, ""), nil, true},
		{"a Retry-After past the deadline is not waited for", soon, status(429, "60"), nil, false},
		{"a Retry-After within the deadline is", soon, status(429, "1"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Check(tt.ctx, tt.resp, tt.err)
			assert.Equal(t, tt.want, got)
		})
	}
}
