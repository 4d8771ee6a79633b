package eventnotifications

import (
	"errors"
	"net/http"
)

// Sentinel errors. Every error of this package wraps exactly one of them, so that a caller
// decides with errors.Is (or simply HTTPStatus), never by matching text. No error quotes
// the body, a value taken from it, the Authorization header or the webhook secret.
var (
	// ErrUnauthorized: the Authorization header is missing, repeated, not a Bearer
	// credential, or its token is not the webhook secret. Nothing was parsed.
	ErrUnauthorized = errors.New("event notification is not authorized")
	// ErrMalformed: the body is not the envelope Event Notifications delivers for
	// Secrets Manager (bad JSON, wrong types, duplicate keys, trailing data, missing
	// source, data or event type, types that disagree, a secret id that is neither a
	// CRN nor a UUID, a copy event without secrets).
	ErrMalformed = errors.New("malformed event notification")
	// ErrTooLarge: the body is over MaxBodySize (nothing was parsed), or data.secrets
	// has more than MaxSecrets entries.
	ErrTooLarge = errors.New("event notification too large")
	// ErrWrongInstance: the envelope's source or data.source_instance_crn is not the
	// configured source instance.
	ErrWrongInstance = errors.New("event notification is for another instance")
	// ErrForeignSecret: a secret_id is a CRN that is not a secret of the configured
	// source instance (another instance, region, account or service).
	ErrForeignSecret = errors.New("event notification names a secret of another instance")
	// ErrConfig: the configuration handed to this package is unusable (the source
	// instance CRN is not a Secrets Manager instance CRN, or the webhook secret is too
	// weak). It is the operator's error, never the sender's.
	ErrConfig = errors.New("event notifications trigger misconfigured")
)

// HTTPStatus maps an error of Authenticate or Parse to the status code the webhook
// answers with: 401 unauthorized, 400 malformed, 413 too large, 403 wrong instance or
// foreign secret, 500 for a configuration error and anything else. A nil error is 200.
//
// Event Notifications retries a failed delivery (up to 3 times); a 4xx from here means
// the notification can never succeed, which is why the periodic reconcile exists.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrWrongInstance), errors.Is(err, ErrForeignSecret):
		return http.StatusForbidden
	default: // ErrConfig and anything unclassified
		return http.StatusInternalServerError
	}
}
