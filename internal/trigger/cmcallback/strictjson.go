package cmcallback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The helpers below walk JSON with json.Decoder instead of unmarshalling into structs,
// because encoding/json silently keeps the last of two duplicate keys and matches keys
// case-insensitively. A payload with two "instance_crn" keys would then mean one thing to
// us and another to any other parser that looks at it (a classic signature-bypass
// shape), so duplicates are refused outright. Error messages name only our own field
// paths and byte offsets, never input text.

var (
	errDuplicateKey = errors.New("duplicate key")
	errNotObject    = errors.New("not a JSON object")
	errTrailingData = errors.New("data after the JSON value")
)

// newDecoder returns a decoder over b that keeps numbers as json.Number, so that epoch
// milliseconds are not rounded through float64.
func newDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

// walkObject reads one JSON object from dec and calls member for each key, in order.
// member must consume exactly one value from dec. Keys that are equal after case folding
// are duplicates: encoding/json would treat them as the same struct field.
func walkObject(dec *json.Decoder, member func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject
	}
	seen := make(map[string]struct{}, 12)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(dec, err)
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder only yields string keys inside an object; belt and braces
			return errNotObject
		}
		folded := foldKey(key)
		if _, dup := seen[folded]; dup {
			return errDuplicateKey
		}
		seen[folded] = struct{}{}
		if err := member(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return jsonError(dec, err)
	}
	return nil
}

// foldKey maps a key to the form encoding/json considers equal. ToUpper then ToLower
// folds the two special cases ToLower alone misses ("ſ" matches "s", "K" (Kelvin) "k").
func foldKey(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return strings.ToLower(strings.ToUpper(k))
		}
	}
	return k // fast path: already lower-case ASCII
}

// expectEOF reports trailing data after the top-level value: `{"data":"a"} {"data":"b"}`
// must not be read as just the first object.
func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// skipValue consumes one value of any type.
func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return jsonError(dec, err)
	}
	return nil
}

// decodeString consumes a JSON string. null counts as absent ("") like encoding/json;
// any other type is an error.
func decodeString(dec *json.Decoder, field string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonError(dec, err)
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("%s: want a string", field)
	}
}

// jsonError rewrites decoder errors into messages with an offset but without the
// offending input (json.SyntaxError quotes the character it choked on).
func jsonError(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("unexpected JSON %s at byte %d", te.Value, te.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated JSON at byte %d", dec.InputOffset())
	default:
		return fmt.Errorf("invalid JSON at byte %d", dec.InputOffset())
	}
}
