package smsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error codes of 4xx bodies. IBM's v2 error body was not readable (docs/services/secrets-manager.md §10), so
// the shape follows the IBM API handbook and these code strings are the simulator's own.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnsupportedMedia = "unsupported_media_type"
	codeTooLarge         = "payload_too_large"
	codeConflict         = "conflict"
	codeLocked           = "secret_locked"
	codeRateLimited      = "too_many_requests"
	codeInvalidCert      = "invalid_certificate"
	codeInvalidKey       = "invalid_private_key"
	codeKeyMismatch      = "private_key_mismatch"
	codeInvalidChain     = "invalid_intermediate"
	codeExpired          = "certificate_expired"
	codeServerError      = "internal_server_error"
)

const moreInfo = "https://cloud.ibm.com/apidocs/secrets-manager/secrets-manager-v2"

// Errors of the Go API (Seed, Rotate, Lock, ...). They are wrapped, so use errors.Is.
var (
	// ErrNotFound: no such instance, secret, version or group.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is taken, or the group is not empty.
	ErrConflict = errors.New("conflict")
	// ErrLocked: the secret or the version that would lose its payload is locked (the
	// API answers 412).
	ErrLocked = errors.New("locked")
	// ErrRejected: any other refusal (invalid material, limits); the message says why.
	ErrRejected = errors.New("rejected")
)

// apiError is a 4xx answer. It is also the error of the Go API, so that both paths run
// the same checks.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func (e *apiError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.status == http.StatusNotFound
	case ErrConflict:
		return e.status == http.StatusConflict
	case ErrLocked:
		return e.status == http.StatusPreconditionFailed
	case ErrRejected:
		return e.status != http.StatusNotFound && e.status != http.StatusConflict && e.status != http.StatusPreconditionFailed
	}
	return false
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeBadRequest, format, args...)
}

func notFound(what string) *apiError {
	return errorf(http.StatusNotFound, codeNotFound, "%s not found", what)
}

func lockedError() *apiError {
	return errorf(http.StatusPreconditionFailed, codeLocked, "The requested action can't be completed because the secret version is locked.")
}

// response is what a handler produces; ServeHTTP writes it, unless a fault replaces it.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorBody is the IBM API handbook error shape; go-sdk-core reads errors[0].message.
type errorBody struct {
	Errors     []errorItem `json:"errors"`
	StatusCode int         `json:"status_code"`
	Trace      string      `json:"trace"`
}

type errorItem struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

func (e *apiError) response() response {
	trace := randomUUID()
	r := jsonResponse(e.status, errorBody{
		Errors:     []errorItem{{Code: e.code, Message: e.message, MoreInfo: moreInfo}},
		StatusCode: e.status,
		Trace:      trace,
	})
	r.header.Set("X-Correlation-Id", trace)
	if e.retryAfter > 0 {
		r.header.Set("Retry-After", retryAfterSeconds(e.retryAfter))
	}
	return r
}

func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		// Only simulator-built values are marshalled; failing here is a simulator bug.
		panic(fmt.Sprintf("smsim: marshal response: %v", err))
	}
	return response{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: b}
}

func emptyResponse(status int) response {
	return response{status: status, header: http.Header{}}
}
