package cms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// Error is a failed Certificate Manager (or IAM) call. Its text names the operation,
// the CRN and the status, and never contains a key, an API key or a token: Message
// comes from the service's error body and is cut and filtered before it is kept.
type Error struct {
	Op         string        // list, download, metadata, import, reimport, update, delete, publickey, channels.list, channels.create, channels.test, authenticate
	CRN        string        // the instance or certificate the call was about
	StatusCode int           // 0 when no HTTP response was received
	Code       string        // the service's error code, when it gave one
	Message    string        // the service's message, filtered
	Retryable  bool          // 429, 5xx, network: trying again later may succeed
	RetryAfter time.Duration // from Retry-After on a 429/503, zero when absent
	Err        error         // the cause (context errors, network errors)

	// notSent: the request never left (no token, no URL), so it cannot have been
	// carried out.
	notSent bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "certificate manager %s", e.Op)
	if e.CRN != "" {
		fmt.Fprintf(&b, " %s", e.CRN)
	}
	switch {
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case e.Err != nil:
		fmt.Fprintf(&b, ": %s", safeCause(e.Err))
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is answers the engine's error classes (engine.ErrNotFound, ErrRetryable, ...), so
// that the engine decides on classes and never on this service's status codes.
func (e *Error) Is(target error) bool {
	switch target {
	case engine.ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case engine.ErrRetryable:
		return e.Retryable
	case engine.ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case engine.ErrAmbiguous:
		return e.ambiguous()
	case engine.ErrNotSent:
		return e.notSent
	case engine.ErrConflict:
		return e.StatusCode == http.StatusConflict
	case engine.ErrForbidden:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// RetryDelay is the service's Retry-After (see engine.RetryAfter).
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// ambiguous: the request may have been carried out although it failed: no answer at
// all, or a server error.
func (e *Error) ambiguous() bool {
	switch {
	case e.notSent:
		return false
	case e.StatusCode == 0:
		return true
	default:
		return e.StatusCode >= 500
	}
}

// IsNotFound reports whether err is a 404 from the service.
func IsNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// IsRetryable reports whether the call may succeed if tried again later: rate limits,
// server errors, network failures and deadlines.
func IsRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// IsAmbiguous reports whether a failed call that creates something (an import) may
// nevertheless have been carried out: the answer was lost (network error, deadline) or
// was a server error. The caller must look before creating again.
func IsAmbiguous(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
	}
	return e.ambiguous()
}

// StatusCode returns the HTTP status of a failed call, 0 when there was none.
func StatusCode(err error) int { return statusOf(err) }

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// retryableStatus is the classification of the issue: 400, 401, 403, 404, 409 (and other
// 4xx) are permanent; 429 and 5xx are not.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// sanitize keeps a service message short and free of anything that looks like key
// material or a credential, so that it can be logged and returned.
func sanitize(msg string) string { return safeerr.Message(msg) }

// safeCause renders a transport error without the request URL's query (none of ours
// carries a secret, but a cause should not be trusted to stay that way).
func safeCause(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return safeerr.Cause(err)
}
