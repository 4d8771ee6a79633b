package secretsmanager

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

// ErrNoSecretGroup is wrapped by the error of an import (and of Check) when the
// configured secret group does not exist in the instance: a configuration error,
// reported before anything is written.
var ErrNoSecretGroup = errors.New("secret group not found")

// Error is a failed Secrets Manager (or IAM) call. Its text names the operation, the
// instance or secret CRN and the status, and never contains a private key, an API key
// or a token: Message comes from the service's error body and is cut and filtered
// before it is kept, and causes are rendered without the request.
type Error struct {
	Op         string        // list, metadata, download, import, reimport, update, delete, groups, authenticate
	CRN        string        // the instance or secret the call was about
	StatusCode int           // 0 when no HTTP response was received
	Code       string        // the service's error code, when it gave one
	Message    string        // the service's message, filtered, or certbackup's own words
	Role       string        // the least IAM service role the operation needs (said on 401/403)
	Retryable  bool          // 429, 5xx, network, deadline: trying again later may succeed
	RetryAfter time.Duration // from Retry-After, zero when absent
	Err        error         // the cause (context errors, network errors, ErrNoSecretGroup)

	// notSent: no request of the call was written to the network (no token, no URL,
	// the rate limit's wait outlived the deadline), so it cannot have been carried out.
	notSent bool
	// ambiguous: a create that may have been carried out although it failed (a
	// request was written and no answer, or a server error, came back).
	ambiguous bool
	// inactive: the secret exists but has nothing to copy (engine.ErrInactive).
	inactive bool
	// forbidden: the credentials were refused (401, 403, or IAM refusing the key).
	forbidden bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "secrets manager %s", e.Op)
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
	if e.forbidden && e.Role != "" {
		fmt.Fprintf(&b, " (the API key needs the %s role or higher on the instance)", e.Role)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is answers the engine's error classes, so that the engine decides on classes and
// never on this service's status codes.
func (e *Error) Is(target error) bool {
	switch target {
	case engine.ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case engine.ErrRetryable:
		return e.Retryable
	case engine.ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case engine.ErrAmbiguous:
		return e.ambiguous
	case engine.ErrNotSent:
		return e.notSent
	case engine.ErrConflict:
		return e.StatusCode == http.StatusConflict
	case engine.ErrLocked:
		return e.StatusCode == http.StatusPreconditionFailed
	case engine.ErrForbidden:
		return e.forbidden
	case engine.ErrInactive:
		return e.inactive
	}
	return false
}

// RetryDelay is the service's Retry-After (see engine.RetryAfter).
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// retryableStatus: 429 and server errors may succeed later; 501 (not implemented)
// never does, and every other 4xx (400, 401, 403, 404, 409, 412) needs someone to act.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500 && code != http.StatusNotImplemented
}

// sanitize keeps a service message short and free of anything that looks like key
// material or a credential, so that it can be logged and returned.
func sanitize(msg string) string { return safeerr.Message(msg) }

// safeCause renders a cause without trusting its text to be free of secrets.
func safeCause(err error) string {
	switch {
	case errors.Is(err, ErrNoSecretGroup):
		return err.Error() // our own words, naming the group only
	case errors.Is(err, errRateWait):
		return errRateWait.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return safeerr.Cause(err)
}
