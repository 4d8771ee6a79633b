// Package actionloop is the action side of the OpenWhisk ActionLoop protocol:
// the contract between the runtime proxy of a Go action container and the
// precompiled binary `exec` it starts.
//
// The proxy starts `exec` with no arguments, writes one /run object per line
// on its stdin and reads exactly one JSON line per activation from file
// descriptor 3. Logs go to stdout and stderr. Serve implements that loop for a
// Handler; Main wires it to the real process.
//
// This package must never echo an input line, a parameter or a panic value in
// a result or a log: activation input carries credentials.
package actionloop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Activation is the per-run metadata the proxy sends beside "value".
type Activation struct {
	ID            string // activation_id
	ActionName    string // action_name, fully qualified with a leading slash
	ActionVersion string // action_version
	Namespace     string // namespace of the activation
	TransactionID string // transaction_id
	Deadline      time.Time
	// Deadline is zero when the line carried no deadline (the platform always
	// sends one; a hand-typed line may not).
}

// Handler runs one activation and returns the JSON object result.
//
// ctx carries the activation deadline when the proxy sent one. params is never
// nil. The result is serialised with encoding/json; a nil result is sent as {}.
// A top-level "error" key makes the activation an application error.
type Handler func(ctx context.Context, act Activation, params map[string]any) map[string]any

// Messages put in {"error": ...} results. They are fixed strings on purpose:
// a message built from the input could leak a secret into the activation
// record.
const (
	msgInternal       = "internal error in action"
	msgNotObject      = "invalid activation input: the line is not a JSON object"
	msgValueArray     = "invalid activation input: \"value\" is an array; this action accepts a JSON object"
	msgValueNotObject = "invalid activation input: \"value\" is not a JSON object"
	msgBadDeadline    = "invalid activation input: \"deadline\" is not epoch milliseconds"
	msgUnserializable = "internal error in action: the result cannot be serialised as JSON"
)

// ackLine is what the proxy waits for before it reports the action started.
var ackLine = []byte(`{"ok":true}` + "\n")

// Serve runs the ActionLoop on in/out until in reaches EOF.
//
// If getenv("__OW_WAIT_FOR_ACK") is not empty it first writes {"ok":true} to
// out (the documented rule; the stock launcher acks unconditionally, which
// corrupts the first result on a proxy that does not expect an ack). A nil
// getenv means an empty environment.
//
// Every line read yields exactly one compact, newline-terminated JSON object on
// out, so the proxy never waits forever: invalid input and handler panics
// become {"error": ...} results without echoing the input. A final line without
// a trailing newline is still answered.
//
// Serve returns nil at EOF, ctx.Err() if ctx is done before a line is handled,
// and an error if reading or writing fails.
func Serve(ctx context.Context, in io.Reader, out io.Writer, getenv func(string) string, h Handler) error {
	return serve(ctx, in, out, os.Stderr, getenv, h)
}

// serve is Serve with the diagnostic stream as a parameter, for tests.
func serve(ctx context.Context, in io.Reader, out, diag io.Writer, getenv func(string) string, h Handler) error {
	if h == nil {
		return errors.New("actionloop: nil handler")
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if getenv("__OW_WAIT_FOR_ACK") != "" {
		if _, err := out.Write(ackLine); err != nil {
			return fmt.Errorf("actionloop: write ack: %w", err)
		}
	}
	// bufio.Reader.ReadBytes has no line-length limit, unlike bufio.Scanner's
	// 64 KiB default: /run payloads reach several MB.
	r := bufio.NewReaderSize(in, 64*1024)
	for {
		line, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return fmt.Errorf("actionloop: read activation: %w", readErr)
		}
		if len(line) == 0 && readErr != nil {
			return nil // clean EOF: the proxy closed stdin
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		result := handleLine(ctx, line, diag, h)
		if _, err := out.Write(result); err != nil {
			return fmt.Errorf("actionloop: write result: %w", err)
		}
		if readErr != nil {
			return nil // last line had no newline; we answered it, now EOF
		}
	}
}

// handleLine turns one /run line into one result line (with its newline).
func handleLine(ctx context.Context, line []byte, diag io.Writer, h Handler) []byte {
	act, params, msg := decodeRun(line)
	if msg != "" {
		return errorLine(msg)
	}
	runCtx := ctx
	if !act.Deadline.IsZero() {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, act.Deadline)
		defer cancel()
	}
	result, ok := callHandler(runCtx, act, params, diag, h)
	if !ok {
		return errorLine(msgInternal)
	}
	if result == nil {
		result = map[string]any{}
	}
	out, err := encodeLine(result)
	if err != nil {
		// The error text may quote a value (json.UnsupportedValueError), so
		// only its type goes to the log.
		fmt.Fprintf(diag, "actionloop: activation %s: result not serialisable (%T)\n", act.ID, err)
		return errorLine(msgUnserializable)
	}
	return out
}

// callHandler runs h and converts a panic into ok=false, so one bad activation
// does not kill the process: the proxy would then fail every later activation
// in this container with "no action defined yet".
func callHandler(ctx context.Context, act Activation, params map[string]any, diag io.Writer, h Handler) (result map[string]any, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			// The panic value may embed a parameter; log its type and the
			// stack (which shows code locations and raw words, not strings).
			fmt.Fprintf(diag, "actionloop: activation %s: handler panicked (%T)\n%s", act.ID, v, debug.Stack())
			result, ok = nil, false
		}
	}()
	return h(ctx, act, params), true
}

// decodeRun parses a /run line. msg is non-empty when the line is rejected.
func decodeRun(line []byte) (act Activation, params map[string]any, msg string) {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return act, nil, msgNotObject
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return act, nil, msgNotObject
	}

	params, msg = decodeValue(fields["value"])
	if msg != "" {
		return act, nil, msg
	}
	// Metadata fields are informational: like the stock launcher, ignore a
	// value that is not a string rather than refuse the activation.
	act.ID = stringField(fields, "activation_id")
	act.ActionName = stringField(fields, "action_name")
	act.ActionVersion = stringField(fields, "action_version")
	act.Namespace = stringField(fields, "namespace")
	act.TransactionID = stringField(fields, "transaction_id")

	deadline, ok := parseDeadline(fields["deadline"])
	if !ok {
		return act, nil, msgBadDeadline
	}
	act.Deadline = deadline
	return act, params, ""
}

func decodeValue(raw json.RawMessage) (map[string]any, string) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		// The stock launcher calls Main with a nil map here; an empty map
		// saves every handler a nil check.
		return map[string]any{}, ""
	}
	switch v[0] {
	case '{':
		params := map[string]any{}
		if err := json.Unmarshal(v, &params); err != nil {
			return nil, msgValueNotObject
		}
		return params, ""
	case '[':
		// Arrays only come from sequences, which this action is not part
		// of. The stock launcher crashes here; an error result is kinder.
		return nil, msgValueArray
	default:
		return nil, msgValueNotObject
	}
}

func stringField(fields map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := fields[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// parseDeadline accepts epoch milliseconds as a JSON string (what the invoker
// actually sends) or number (what apache docs/actions-new.md documents).
// Absent, null and "" mean no deadline.
func parseDeadline(raw json.RawMessage) (time.Time, bool) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return time.Time{}, true
	}
	var text string
	if v[0] == '"' {
		if err := json.Unmarshal(v, &text); err != nil {
			return time.Time{}, false
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return time.Time{}, true
		}
	} else {
		text = string(v)
	}
	if ms, err := strconv.ParseInt(text, 10, 64); err == nil {
		return deadlineFromMillis(float64(ms), ms)
	}
	// A number may arrive in exponent form (1.7e12) from a JSON encoder.
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return time.Time{}, false
	}
	return deadlineFromMillis(f, int64(f))
}

func deadlineFromMillis(f float64, ms int64) (time.Time, bool) {
	// Reject values that cannot be a real deadline (and would overflow
	// time arithmetic): before 1970 or after year ~2262.
	if f <= 0 || f > float64(math.MaxInt64/int64(time.Millisecond)) {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// encodeLine marshals v as one compact JSON line. encoding/json escapes
// newlines inside strings and compacts json.Marshaler output, so the only
// newline is the terminator.
func encodeLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the proxy passes bytes through; keep them readable
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func errorLine(msg string) []byte {
	line, err := encodeLine(map[string]string{"error": msg})
	if err != nil { // cannot happen for a map of strings
		return []byte(`{"error":"internal error in action"}` + "\n")
	}
	return line
}

// Main runs the ActionLoop on the real process: stdin, file descriptor 3 and
// the process environment. It returns when the proxy closes stdin. It exits
// with status 1 and a message on stderr if fd 3 is not usable (the binary was
// started outside an ActionLoop proxy) or if writing a result fails.
//
// Main owns fd 3: nothing else in the binary may wrap it in an *os.File
// (os.NewFile(3, ...)), because that File closes the descriptor when it is
// garbage collected and every later result would fail with EBADF.
func Main(h Handler) {
	out, err := openResultPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "actionloop: file descriptor 3 is not usable: %v\n"+
			"this program speaks the OpenWhisk ActionLoop protocol; to try it by hand run it as: %s 3>&1\n",
			err, os.Args[0])
		os.Exit(1)
	}
	err = Serve(context.Background(), os.Stdin, out, os.Getenv, h)
	runtime.KeepAlive(out) // the finalizer of out would close fd 3
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// openResultPipe returns fd 3 after checking that it is open and writable.
func openResultPipe() (*os.File, error) {
	f := os.NewFile(3, "pipe")
	if f == nil {
		return nil, errors.New("invalid descriptor")
	}
	if _, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("stat fd 3: %w", err)
	}
	if err := checkWritable(f); err != nil {
		return nil, err
	}
	return f, nil
}
