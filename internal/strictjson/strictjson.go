// Package strictjson reads JSON the way both notification triggers must: duplicate
// keys refused (after case folding), types checked, no trailing data, numbers kept as
// json.Number. It walks JSON with json.Decoder instead of unmarshalling into structs,
// because encoding/json silently keeps the last of two duplicate keys and matches keys
// case-insensitively: a body with two "source" keys would mean one thing to us and
// another to any other reader of it. Error messages name only field paths and byte
// offsets, never input text.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors the walk reports (wrapped with the byte offset).
var (
	errDuplicateKey = errors.New("duplicate key")
	ErrNotObject    = errors.New("not a JSON object")
	errTrailingData = errors.New("data after the JSON value")
)

// NewDecoder returns a decoder over b that keeps numbers as json.Number, so that epoch
// milliseconds are not rounded through float64.
func NewDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

// WalkObject reads one JSON object from dec and calls member for each key, in order.
// member must consume exactly one value from dec. Keys equal after case folding are
// duplicates: encoding/json would treat them as the same struct field.
func WalkObject(dec *json.Decoder, member func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return Error(dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return ErrNotObject
	}
	seen := make(map[string]struct{}, 12)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Error(dec, err)
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder only yields string keys inside an object; belt and braces
			return ErrNotObject
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
		return Error(dec, err)
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

// ExpectEOF refuses trailing data after the top-level value: `{...} {...}` must not be
// read as just the first object.
func ExpectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// SkipValue consumes one value of any type (an unknown field).
func SkipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return Error(dec, err)
	}
	return nil
}

// RawValue consumes one value and returns its bytes, to tell null, a string and an
// object apart (json.Decoder cannot peek).
func RawValue(dec *json.Decoder) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, Error(dec, err)
	}
	return raw, nil
}

// DecodeString consumes a JSON string. null counts as absent (""); any other type is an
// error: a number where a string is documented is not what the service sends.
func DecodeString(dec *json.Decoder, field string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", Error(dec, err)
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

// Error rewrites decoder errors into messages with an offset but without the
// offending input (json.SyntaxError quotes the character it choked on).
func Error(dec *json.Decoder, err error) error {
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
