package cmcallback

import (
	"errors"
	"fmt"

	"github.com/certbackup/certbackup/internal/strictjson"
)

// MaxBodySize bounds the HTTP body and the token. Real notifications are a few KB; the
// limit is checked before any parsing so that a large body costs nothing but its length.
const MaxBodySize = 1 << 20

// ExtractToken returns the JWT from a callback body `{"data":"<JWT>"}`, the only format
// Certificate Manager sends. The token is returned as sent; nothing is verified here.
//
// Errors: ErrTooLarge over MaxBodySize; ErrMalformed when the body is not a single JSON
// object, has duplicate keys (two "data" keys would be ambiguous), or "data" is missing,
// empty or not a string. Other keys are ignored.
func ExtractToken(body []byte) (string, error) {
	if len(body) > MaxBodySize {
		return "", fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxBodySize)
	}
	dec := strictjson.NewDecoder(body)
	var token string
	var found bool
	err := strictjson.WalkObject(dec, func(key string) error {
		if key != "data" {
			return strictjson.SkipValue(dec)
		}
		tok, err := dec.Token()
		if err != nil {
			return strictjson.Error(dec, err)
		}
		s, ok := tok.(string)
		if !ok {
			return errors.New(`"data" is not a string`)
		}
		token, found = s, true
		return nil
	})
	if err == nil {
		err = strictjson.ExpectEOF(dec)
	}
	if err != nil {
		return "", fmt.Errorf("%w: body: %w", ErrMalformed, err)
	}
	if !found || token == "" {
		return "", fmt.Errorf(`%w: body has no "data" token`, ErrMalformed)
	}
	return token, nil
}
