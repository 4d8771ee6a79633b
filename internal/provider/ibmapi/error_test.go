package ibmapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

func TestErrorText(t *testing.T) {
	msg := safeerr.Message
	tests := []struct {
		name string
		err  *Error
		has  []string
		not  []string
	}{
		{"status, code, message, role",
			&Error{Service: "secrets manager", Op: "import", CRN: "crn:i", StatusCode: 403, Code: "forbidden", Message: "no", Role: "Writer"},
			[]string{"secrets manager import crn:i", "status 403 Forbidden", "(code forbidden)", "the Writer role"}, nil},
		{"the role is said only when the key was refused",
			&Error{Service: "secrets manager", Op: "import", StatusCode: 409, Role: "Writer"}, []string{"status 409"}, []string{"role"}},
		{"IAM refusing the key names the role too",
			&Error{Service: "secrets manager", Op: "list", StatusCode: 400, Role: "Reader", Forbidden: true}, []string{"the Reader role"}, nil},
		{"a message that looks like a key is withheld",
			&Error{Op: "import", StatusCode: 400, Message: msg("bad -----BEGIN PRIVATE KEY----- MIIE")},
			[]string{"withheld"}, []string{"BEGIN", "MIIE"}},
		{"a token is withheld", &Error{Op: "list", StatusCode: 401, Message: msg("token Bearer abc.def")}, []string{"withheld"}, []string{"abc.def"}},
		{"a network cause keeps its kind", &Error{Op: "list", Err: safeerr.NetworkError(syscall.ECONNREFUSED)}, []string{"connection refused"}, nil},
		{"a raw transport error is never quoted", &Error{Op: "list", Err: &url.Error{Op: "Get", URL: "https://secret-host/x", Err: &net.DNSError{Err: "no such host", Name: "secret-host"}}},
			[]string{"the host name could not be resolved"}, []string{"secret-host"}},
		{"a deadline", &Error{Op: "list", Err: fmt.Errorf("wrapped: %w", context.DeadlineExceeded)}, []string{"list: deadline exceeded"}, []string{"wrapped"}},
		{"own words are kept as they are", &Error{Op: "groups", Err: safeerr.Own(errors.New("no group named \"x\""))}, []string{`no group named "x"`}, nil},
		{"the delay", &Error{Op: "list", StatusCode: 429, RetryAfter: 2 * time.Second}, []string{"retry after 2s"}, nil},
		{"a long message is cut", &Error{Op: "list", StatusCode: 400, Message: msg(strings.Repeat("x", 400))}, []string{"..."}, []string{strings.Repeat("x", 301)}},
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

// TestErrorClasses: the one mapping of both providers' failures to the engine's classes.
func TestErrorClasses(t *testing.T) {
	all := []error{engine.ErrNotFound, engine.ErrRetryable, engine.ErrRateLimited, engine.ErrAmbiguous,
		engine.ErrNotSent, engine.ErrConflict, engine.ErrLocked, engine.ErrForbidden, engine.ErrInactive}
	tests := []struct {
		name string
		err  *Error
		is   []error
	}{
		{"404", &Error{StatusCode: 404}, []error{engine.ErrNotFound}},
		{"429", &Error{StatusCode: 429, Retryable: RetryableStatus(429)}, []error{engine.ErrRateLimited, engine.ErrRetryable}},
		{"409", &Error{StatusCode: 409}, []error{engine.ErrConflict}},
		{"412", &Error{StatusCode: 412}, []error{engine.ErrLocked}},
		{"401", &Error{StatusCode: 401}, []error{engine.ErrForbidden}},
		{"403", &Error{StatusCode: 403}, []error{engine.ErrForbidden}},
		{"IAM refuses the key", &Error{StatusCode: 400, Forbidden: true, NotSent: true}, []error{engine.ErrForbidden, engine.ErrNotSent}},
		{"503 on a create", &Error{StatusCode: 503, Retryable: RetryableStatus(503), Ambiguous: true}, []error{engine.ErrRetryable, engine.ErrAmbiguous}},
		{"inactive", &Error{Inactive: true}, []error{engine.ErrInactive}},
		{"400", &Error{StatusCode: 400, Retryable: RetryableStatus(400)}, nil},
		{"501", &Error{StatusCode: 501, Retryable: RetryableStatus(501)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, class := range all {
				want := false
				for _, c := range tc.is {
					want = want || c == class
				}
				assert.Equal(t, want, errors.Is(tc.err, class), "%v", class)
			}
		})
	}
}

// TestUndecodable: a 2xx whose body cannot be read is retryable, and ambiguous only for
// a create (which happened).
func TestUndecodable(t *testing.T) {
	read := (&Error{Op: "list"}).Undecodable(200, false)
	created := (&Error{Op: "import"}).Undecodable(201, true)
	assert.True(t, engine.IsRetryable(read))
	assert.False(t, engine.IsAmbiguous(read))
	assert.True(t, engine.IsAmbiguous(created))
	assert.Contains(t, created.Error(), "status 201 Created: the response could not be decoded")
}
