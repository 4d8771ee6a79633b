package engine

import (
	"context"
	"errors"
	"time"

	"github.com/certbackup/certbackup/internal/pemutil"
)

// Error classes. A provider's errors answer errors.Is for the classes that apply to
// them (its error type implements Is), so that the engine decides on classes and never
// on one provider's status codes or operation names.
var (
	// ErrNotFound: the certificate (or instance) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRetryable: trying again later may succeed (rate limit, server error,
	// network, deadline).
	ErrRetryable = errors.New("retryable")
	// ErrRateLimited: the service asked the caller to slow down (HTTP 429); it also
	// answers ErrRetryable, and RetryAfter says for how long when the service said.
	ErrRateLimited = errors.New("rate limited")
	// ErrAmbiguous: a call that creates something failed in a way that leaves it
	// unknown whether it was carried out (its answer was lost, or a server error). The
	// caller must look before creating again.
	ErrAmbiguous = errors.New("outcome unknown")
	// ErrConflict: the instance refused the write because of its current state (a
	// duplicate name, for example).
	ErrConflict = errors.New("conflict")
	// ErrLocked: the certificate is locked against changes; not retried.
	ErrLocked = errors.New("locked")
	// ErrForbidden: the credentials lack the role for the call.
	ErrForbidden = errors.New("forbidden")
	// ErrInactive: the certificate exists but has nothing to copy (not issued yet,
	// suspended, deactivated, destroyed, or not a certificate at all).
	ErrInactive = errors.New("not active")
	// ErrNotSent: the call never reached the service (no credentials, no address),
	// so it cannot have been carried out, whatever its cause says.
	ErrNotSent = errors.New("not sent")
)

// RetryAfter is how long the service asked the caller to wait before the next call
// (zero when it did not say).
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryDelay() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryDelay()
	}
	return 0
}

// IsRetryable reports whether trying again later may succeed.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrRetryable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// IsAmbiguous reports whether a failed create may nevertheless have been carried out.
func IsAmbiguous(err error) bool {
	switch {
	case errors.Is(err, ErrAmbiguous):
		return true
	case errors.Is(err, ErrNotSent):
		return false
	default:
		return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
	}
}

// Classes of a failed (certificate, backup) pair, as results report them.
const (
	ClassRetryable     = "retryable"      // rate limit, server error, network, deadline: the next run will do it
	ClassPermanent     = "permanent"      // refused (400, 401, 403, 404, 409): needs an operator
	ClassLocked        = "locked"         // the copy is locked against changes: left alone, not retried
	ClassInvalidSource = "invalid_source" // the source's material does not parse, match or chain: nothing was written
	ClassVerification  = "verification"   // the copy read back does not hold what was written
)

// ClassOf is the one classification of an error into a result class.
func ClassOf(err error) string {
	switch {
	case IsRetryable(err):
		return ClassRetryable
	case errors.Is(err, ErrLocked):
		return ClassLocked
	case errors.Is(err, pemutil.ErrInvalid):
		return ClassInvalidSource
	default:
		return ClassPermanent
	}
}
