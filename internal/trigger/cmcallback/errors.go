package cmcallback

import (
	"errors"
	"net/http"
)

// Sentinel errors. Every error returned by this package wraps exactly one of them, so a
// caller decides with errors.Is (or simply HTTPStatus) and never by matching text.
var (
	// ErrMalformed: the body, the token or the payload is not what Certificate Manager
	// sends (bad JSON, wrong types, duplicate keys, missing required fields).
	ErrMalformed = errors.New("malformed notification")
	// ErrTooLarge: the body or the token is over MaxBodySize; nothing was parsed.
	ErrTooLarge = errors.New("notification too large")
	// ErrBadSignature: the token is not an RS256 JWS that verifies with the pinned key.
	ErrBadSignature = errors.New("notification signature is not valid")
	// ErrExpired: the signature is good but the token carries exp or nbf and is outside
	// them (beyond Config.Leeway). Real Certificate Manager tokens carry neither.
	ErrExpired = errors.New("notification token is expired or not yet valid")
	// ErrWrongInstance: a validly signed notification names another instance than the
	// configured source.
	ErrWrongInstance = errors.New("notification is for another instance")
	// ErrForeignCertificate: a certificate CRN in the payload is not a certificate of the
	// configured source instance.
	ErrForeignCertificate = errors.New("notification names a certificate of another instance")
	// ErrUnsupportedVersion: the payload version is not 2, 3 or 4 (v1 has no event type),
	// or the payload has the shape of another version.
	ErrUnsupportedVersion = errors.New("unsupported notification payload version")
	// ErrKeyUnavailable: the public key could not be fetched. Transient: the caller
	// should answer 503 so that the sender may retry.
	ErrKeyUnavailable = errors.New("notification public key unavailable")
)

// HTTPStatus maps an error of Verify or ExtractToken to the status code a web action
// answers with: 400 malformed or unsupported version, 413 too large, 401 bad signature or
// expired, 403 wrong instance or foreign certificate, 503 key unavailable, 500 for anything
// else. A nil error is 200.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnsupportedVersion):
		return http.StatusBadRequest
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrExpired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrWrongInstance), errors.Is(err, ErrForeignCertificate):
		return http.StatusForbidden
	case errors.Is(err, ErrKeyUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
