package cms

import (
	"errors"

	"github.com/certbackup/certbackup/internal/provider/ibmapi"
)

// Error is a failed Certificate Manager (or IAM) call: ibmapi's error, whose text never
// holds a key, an API key or a token, and which answers the engine's error classes.
type Error = ibmapi.Error

// service names Certificate Manager in errors.
const service = "certificate manager"

// apiError starts the error of operation op about crn.
func apiError(op, crn string) *Error { return &Error{Service: service, Op: op, CRN: crn} }

// notSent is the error of a call that failed before any request was written: a CRN
// that does not parse, a URL that cannot be built. It cannot have been carried out.
func notSent(op, crn string, cause error) *Error {
	e := apiError(op, crn)
	e.Err, e.NotSent = cause, true
	return e
}

// unusable is the error of a call whose answer cannot be used (message says why).
func unusable(op, crn, message string) *Error {
	e := apiError(op, crn)
	e.Message = message
	return e
}

// statusOf is the HTTP status of a failed call, 0 when there was none.
func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}
