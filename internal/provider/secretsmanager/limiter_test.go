package secretsmanager

import (
	"context"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

func TestLimiterSpacing(t *testing.T) {
	l := newLimiter(100) // 10.5 ms apart
	assert.Equal(t, 10500*time.Microsecond, l.interval)
	start := time.Now()
	for range 11 {
		require.NoError(t, l.wait(context.Background()))
	}
	assert.GreaterOrEqual(t, time.Since(start), 10*l.interval)

	l.hold(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := l.wait(ctx)
	assert.ErrorIs(t, err, errRateWait)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 20*time.Millisecond, "a turn after the deadline is not waited for")

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, l.wait(ctx), context.Canceled)
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		has  []string
		not  []string
	}{
		{"status, code, message, role",
			&Error{Op: "import", CRN: "crn:i", StatusCode: 403, Code: "forbidden", Message: "no", Role: "Writer", forbidden: true},
			[]string{"secrets manager import crn:i", "status 403 Forbidden", "(code forbidden)", "the Writer role"}, nil},
		{"a message that looks like a key is withheld",
			&Error{Op: "import", StatusCode: 400, Message: sanitize("bad -----BEGIN PRIVATE KEY----- MIIE")},
			[]string{"withheld"}, []string{"BEGIN", "MIIE"}},
		{"a token is withheld", &Error{Op: "list", StatusCode: 401, Message: sanitize("token Bearer abc.def")}, []string{"withheld"}, []string{"abc.def"}},
		{"a network cause keeps its kind", &Error{Op: "list", Err: safeerr.NetworkError(syscall.ECONNREFUSED)}, []string{"connection refused"}, nil},
		{"a raw transport error is never quoted", &Error{Op: "list", Err: &url.Error{Op: "Get", URL: "https://secret-host/x", Err: &net.DNSError{Err: "no such host", Name: "secret-host"}}},
			[]string{"the host name could not be resolved"}, []string{"secret-host"}},
		{"the delay", &Error{Op: "list", StatusCode: 429, RetryAfter: 2 * time.Second}, []string{"retry after 2s"}, nil},
		{"a long message is cut", &Error{Op: "list", StatusCode: 400, Message: sanitize(strings.Repeat("x", 400))}, []string{"..."}, []string{strings.Repeat("x", 301)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.err.Error()
			for _, h := range tc.has {
				assert.Contains(t, s, h)
			}
			for _, n := range tc.not {
				assert.NotContains(t, s, n)
			}
		})
	}
	assert.Equal(t, 2*time.Second, engine.RetryAfter(&Error{StatusCode: 429, RetryAfter: 2 * time.Second}))
}
