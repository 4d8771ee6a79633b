package eventnotifications

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// MinSecretLength is the shortest webhook secret ValidateSecret accepts (32 characters:
// 192 bits and more from any base64 or hexadecimal generator).
const MinSecretLength = 32

// maxSecretLength bounds the secret so that it fits any header line.
const maxSecretLength = 4096

// ValidateSecret checks the configured webhook secret: at least MinSecretLength
// characters, at most 4096, and only visible ASCII characters (no space, tab, newline,
// control or non-ASCII character), because it travels as an HTTP header value
// ("Authorization: Bearer <secret>") that Event Notifications stores as a sensitive
// custom header. The error wraps ErrConfig and never quotes the value or its length.
func ValidateSecret(s string) error {
	if s == "" {
		return fmt.Errorf("%w: the webhook secret is empty", ErrConfig)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: the webhook secret has a whitespace, control or non-ASCII character", ErrConfig)
		}
	}
	if len(s) < MinSecretLength {
		return fmt.Errorf("%w: the webhook secret is shorter than %d characters", ErrConfig, MinSecretLength)
	}
	if len(s) > maxSecretLength {
		return fmt.Errorf("%w: the webhook secret is longer than %d characters", ErrConfig, maxSecretLength)
	}
	return nil
}

// Authenticate checks that h carries exactly one "Authorization: Bearer <secret>"
// header whose token is the webhook secret. h is an http.Header as net/http builds it
// (canonical keys). The scheme is matched case-insensitively (RFC 9110 §11.1); one or
// more spaces may follow it; everything after them is the token, so trailing
// whitespace makes it wrong. The token is compared in constant time, through SHA-256
// digests so that not even its length shows in the timing.
//
// Errors: ErrUnauthorized (missing, repeated, not Bearer, wrong token); ErrConfig when
// secret fails ValidateSecret, so that an empty or weak configured secret never
// authenticates anything.
func Authenticate(h http.Header, secret string) error {
	if err := ValidateSecret(secret); err != nil {
		return err
	}
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	case 1:
		return checkBearer(values[0], secret)
	default:
		return fmt.Errorf("%w: %d Authorization headers, one is expected", ErrUnauthorized, len(values))
	}
}

// AuthenticateValue is Authenticate for a runtime that hands over a single
// Authorization value (for example a web action's lower-cased header map); "" means
// the header is missing.
func AuthenticateValue(authorization, secret string) error {
	if err := ValidateSecret(secret); err != nil {
		return err
	}
	if authorization == "" {
		return fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	}
	return checkBearer(authorization, secret)
}

func checkBearer(value, secret string) error {
	scheme, token, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return fmt.Errorf("%w: the Authorization header is not a Bearer credential", ErrUnauthorized)
	}
	token = strings.TrimLeft(token, " ")
	got := sha256.Sum256([]byte(token))
	want := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return fmt.Errorf("%w: the bearer token is not the webhook secret", ErrUnauthorized)
	}
	return nil
}
