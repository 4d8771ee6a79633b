package secretsmanager

import (
	"errors"

	"github.com/certbackup/certbackup/internal/provider/ibmapi"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// ErrNoSecretGroup is wrapped by the error of an import (and of Check) when the
// configured secret group does not exist in the instance: a configuration error,
// reported before anything is written.
var ErrNoSecretGroup = errors.New("secret group not found")

// Error is a failed Secrets Manager (or IAM) call: ibmapi's error, whose text never
// holds a private key, an API key or a token, and which answers the engine's error
// classes.
type Error = ibmapi.Error

// service names Secrets Manager in errors.
const service = "secrets manager"

// apiError starts the error of operation op about subject (an instance or secret CRN).
func apiError(op operation, subject string) *Error {
	return &Error{Service: service, Op: op.name, CRN: subject, Role: op.role}
}

// notSent is the error of a call that failed before any request was written. It
// cannot have been carried out.
func notSent(op operation, subject string, cause error, message string) *Error {
	e := apiError(op, subject)
	e.Err, e.Message, e.NotSent = cause, message, true
	return e
}

// inactive is the error of a download of a secret with nothing to copy.
func inactive(secret, message string) *Error {
	e := apiError(opDownload, secret)
	e.Message, e.Inactive = message, true
	return e
}

// sanitize keeps a service message short and free of anything that looks like key
// material or a credential, so that it can be logged and returned.
func sanitize(msg string) string { return safeerr.Message(msg) }
