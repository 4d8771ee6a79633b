// Package ibmapi is what certbackup's clients of IBM Cloud APIs (Certificate Manager,
// Secrets Manager) share, so that each rule is written once: the error type and the
// engine classes it answers, the endpoint rule, and the IAM-authenticated connection
// with its retries.
package ibmapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// Error is a failed call to a service (or to IAM on its behalf). Its text names the
// service, the operation, the CRN and the status, and never holds a private key, an
// API key or a token: Message comes from the service's error body and is filtered
// (safeerr.Message) before it is kept, and a cause is rendered by safeerr.Cause.
type Error struct {
	Service    string        // the service's name in the text: "certificate manager", "secrets manager"
	Op         string        // the operation: list, download, import, ..., authenticate
	CRN        string        // the instance, certificate or secret the call was about
	StatusCode int           // 0 when no HTTP response was received
	Code       string        // the service's error code, when it gave one
	Message    string        // the service's message, filtered, or certbackup's own words
	Role       string        // the least IAM service role the operation needs, said when refused
	Retryable  bool          // 429, 5xx, network, deadline: trying again later may succeed
	RetryAfter time.Duration // from Retry-After, zero when absent
	Err        error         // the cause (context errors, network errors, own words)

	// NotSent: no request of the call was written to the network (no token, no URL,
	// a rate limit's wait past the deadline), so it cannot have been carried out.
	NotSent bool
	// Ambiguous: a create that may have been carried out although it failed (a
	// request was written and no answer, a server error or an unreadable answer came
	// back). The caller must look before creating again.
	Ambiguous bool
	// Inactive: the certificate exists but has nothing to copy.
	Inactive bool
	// Forbidden: the credentials were refused although the status does not say so
	// (IAM refusing the API key); 401 and 403 always are.
	Forbidden bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Service)
	if e.Op != "" {
		fmt.Fprintf(&b, " %s", e.Op)
	}
	if e.CRN != "" {
		fmt.Fprintf(&b, " %s", e.CRN)
	}
	switch {
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case e.Err != nil:
		fmt.Fprintf(&b, ": %s", safeerr.Cause(e.Err))
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.forbidden() && e.Role != "" {
		fmt.Fprintf(&b, " (the API key needs the %s role or higher on the instance)", e.Role)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is answers the engine's error classes, so that the engine decides on classes and
// never on a service's status codes.
func (e *Error) Is(target error) bool {
	switch target {
	case engine.ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case engine.ErrRetryable:
		return e.Retryable
	case engine.ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case engine.ErrAmbiguous:
		return e.Ambiguous
	case engine.ErrNotSent:
		return e.NotSent
	case engine.ErrConflict:
		return e.StatusCode == http.StatusConflict
	case engine.ErrLocked:
		return e.StatusCode == http.StatusPreconditionFailed
	case engine.ErrForbidden:
		return e.forbidden()
	case engine.ErrInactive:
		return e.Inactive
	}
	return false
}

func (e *Error) forbidden() bool {
	return e.Forbidden || e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// RetryDelay is the service's Retry-After (see engine.RetryAfter).
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// RetryableStatus: 429 and server errors may succeed later; 501 (not implemented)
// never does, and every other 4xx (400, 401, 403, 404, 409, 412) needs someone to act.
func RetryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500 && code != http.StatusNotImplemented
}

// Undecodable is the error of a 2xx whose body could not be read: the service did
// what was asked, so a create happened (ambiguous: the caller must look for it).
func (e *Error) Undecodable(status int, creates bool) *Error {
	e.StatusCode, e.Message, e.Ambiguous, e.Retryable = status, "the response could not be decoded", creates, true
	return e
}
