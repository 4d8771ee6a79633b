package eventnotifications

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
// case-insensitively: a body with two "source" keys would mean one thing to us and
// another to any other reader of it. Duplicates (after case folding) are refused. Error
// messages name only our own field paths and byte offsets, never input text.
//
// They are the rules of internal/trigger/cmcallback/strictjson.go, kept in step by hand:
// the two triggers must read JSON the same way.

var (
	errDuplicateKey = errors.New("duplicate key")
	errNotObject    = errors.New("not a JSON object")
	errTrailingData = errors.New("data after the JSON value")
)

func newDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

// walkObject reads one JSON object from dec and calls member for each key, in order.
// member must consume exactly one value from dec. Keys equal after case folding are
// duplicates: encoding/json would treat them as the same struct field.
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
	return k
}

// expectEOF refuses trailing data after the top-level value: `{...} {...}` must not be
// read as just the first object.
func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// skipValue consumes one value of any type (an unknown field).
func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return jsonError(dec, err)
	}
	return nil
}

// rawValue consumes one value and returns its bytes, to tell null, a string and an
// object apart (json.Decoder cannot peek).
func rawValue(dec *json.Decoder) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonError(dec, err)
	}
	return raw, nil
}

// decodeString consumes a JSON string. null counts as absent (""); any other type is an
// error: a number where a string is documented is not what the service sends.
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
