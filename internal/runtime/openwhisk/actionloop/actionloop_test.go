package actionloop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// secret is planted in inputs; no result or log line may contain it.
const secret = "s3cr3t-api-key-DO-NOT-LOG"

// call records what the handler saw.
type call struct {
	act         Activation
	params      map[string]any
	ctxDeadline time.Time
	hasDeadline bool
}

// recorder is a Handler that records calls and lets a test choose the result.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	result func(params map[string]any) map[string]any
}

func (r *recorder) handle(ctx context.Context, act Activation, params map[string]any) map[string]any {
	d, ok := ctx.Deadline()
	r.mu.Lock()
	r.calls = append(r.calls, call{act: act, params: params, ctxDeadline: d, hasDeadline: ok})
	r.mu.Unlock()
	if r.result != nil {
		return r.result(params)
	}
	return map[string]any{"echo": params}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// outputLines splits Serve's output and checks the one-line-per-answer rule.
func outputLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatalf("output does not end with a newline")
	}
	var res []map[string]any
	for _, l := range bytes.SplitAfter(out, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("output line is not a JSON object: %v", err)
		}
		res = append(res, m)
	}
	return res
}

func TestServe(t *testing.T) {
	deadline := time.UnixMilli(1700000060000)
	big := strings.Repeat("x", 3<<20)

	tests := []struct {
		name    string
		getenv  func(string) string
		input   string
		result  func(map[string]any) map[string]any
		want    []map[string]any // expected output lines, in order
		calls   int
		inspect func(t *testing.T, calls []call)
	}{
		{
			name:  "no ack without __OW_WAIT_FOR_ACK",
			input: `{"value":{"a":1}}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{"a": 1.0}}},
			calls: 1,
		},
		{
			name:   "ack first when __OW_WAIT_FOR_ACK is set",
			getenv: env("__OW_WAIT_FOR_ACK", "1"),
			input:  `{"value":{}}` + "\n",
			want:   []map[string]any{{"ok": true}, {"echo": map[string]any{}}},
			calls:  1,
		},
		{
			name:   "ack even with no input",
			getenv: env("__OW_WAIT_FOR_ACK", "true"),
			want:   []map[string]any{{"ok": true}},
		},
		{
			name: "activation metadata and string deadline",
			input: `{"value":{"k":"v"},"namespace":"ns1","action_name":"/ns1/pkg/cb","action_version":"0.0.1",` +
				`"activation_id":"act-1","transaction_id":"tx-1","deadline":"1700000060000","api_key":"` + secret + `"}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{"k": "v"}}},
			calls: 1,
			inspect: func(t *testing.T, calls []call) {
				want := Activation{ID: "act-1", ActionName: "/ns1/pkg/cb", ActionVersion: "0.0.1",
					Namespace: "ns1", TransactionID: "tx-1", Deadline: deadline}
				if got := calls[0].act; !got.Deadline.Equal(want.Deadline) || got.ID != want.ID ||
					got.ActionName != want.ActionName || got.ActionVersion != want.ActionVersion ||
					got.Namespace != want.Namespace || got.TransactionID != want.TransactionID {
					t.Errorf("activation = %+v, want %+v", got, want)
				}
				if !calls[0].hasDeadline || !calls[0].ctxDeadline.Equal(deadline) {
					t.Errorf("ctx deadline = %v (set %v), want %v", calls[0].ctxDeadline, calls[0].hasDeadline, deadline)
				}
			},
		},
		{
			name:  "number deadline",
			input: `{"value":{},"deadline":1700000060000}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{}}},
			calls: 1,
			inspect: func(t *testing.T, calls []call) {
				if !calls[0].act.Deadline.Equal(deadline) || !calls[0].ctxDeadline.Equal(deadline) {
					t.Errorf("deadline = %v / ctx %v, want %v", calls[0].act.Deadline, calls[0].ctxDeadline, deadline)
				}
			},
		},
		{
			name:  "exponent number deadline",
			input: `{"value":{},"deadline":1.70000006e12}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{}}},
			calls: 1,
			inspect: func(t *testing.T, calls []call) {
				if !calls[0].act.Deadline.Equal(deadline) {
					t.Errorf("deadline = %v, want %v", calls[0].act.Deadline, deadline)
				}
			},
		},
		{
			name:  "no deadline means no ctx deadline",
			input: `{"value":{},"deadline":""}` + "\n" + `{"value":{}}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{}}, {"echo": map[string]any{}}},
			calls: 2,
			inspect: func(t *testing.T, calls []call) {
				for i, c := range calls {
					if c.hasDeadline || !c.act.Deadline.IsZero() {
						t.Errorf("call %d: unexpected deadline %v", i, c.act.Deadline)
					}
				}
			},
		},
		{
			name:  "bad deadline is an error result",
			input: `{"value":{},"deadline":"soon"}` + "\n" + `{"value":{},"deadline":-5}` + "\n" + `{"value":{},"deadline":true}` + "\n",
			want:  []map[string]any{{"error": msgBadDeadline}, {"error": msgBadDeadline}, {"error": msgBadDeadline}},
		},
		{
			name:  "line that is not JSON",
			input: "password=" + secret + "\n",
			want:  []map[string]any{{"error": msgNotObject}},
		},
		{
			name:  "truncated JSON object",
			input: `{"value":{"key":"` + secret + "\n",
			want:  []map[string]any{{"error": msgNotObject}},
		},
		{
			name:  "top-level array and null and empty line",
			input: "[1,2]\nnull\n\n",
			want:  []map[string]any{{"error": msgNotObject}, {"error": msgNotObject}, {"error": msgNotObject}},
		},
		{
			name:  "array value",
			input: `{"value":[{"a":1}]}` + "\n",
			want:  []map[string]any{{"error": msgValueArray}},
		},
		{
			name:  "string value",
			input: `{"value":"` + secret + `"}` + "\n",
			want:  []map[string]any{{"error": msgValueNotObject}},
		},
		{
			name:  "null and absent value give an empty map",
			input: `{"value":null}` + "\n" + `{"activation_id":"a2"}` + "\n",
			want:  []map[string]any{{"echo": map[string]any{}}, {"echo": map[string]any{}}},
			calls: 2,
			inspect: func(t *testing.T, calls []call) {
				for i, c := range calls {
					if c.params == nil {
						t.Errorf("call %d: params is nil", i)
					}
				}
			},
		},
		{
			name:  "panic is recovered and the loop goes on",
			input: `{"value":{"panic":true}}` + "\n" + `{"value":{"n":2}}` + "\n",
			result: func(p map[string]any) map[string]any {
				if p["panic"] == true {
					panic("boom with " + secret)
				}
				return map[string]any{"n": p["n"]}
			},
			want:  []map[string]any{{"error": msgInternal}, {"n": 2.0}},
			calls: 2,
		},
		{
			name:  "multiple lines answered in order, CRLF tolerated",
			input: `{"value":{"i":1}}` + "\r\n" + `{"value":{"i":2}}` + "\n" + `{"value":{"i":3}}` + "\n",
			result: func(p map[string]any) map[string]any {
				return map[string]any{"i": p["i"]}
			},
			want:  []map[string]any{{"i": 1.0}, {"i": 2.0}, {"i": 3.0}},
			calls: 3,
		},
		{
			name:  "last line without newline is answered",
			input: `{"value":{"i":1}}`,
			want:  []map[string]any{{"echo": map[string]any{"i": 1.0}}},
			calls: 1,
		},
		{
			name:  "3 MB line",
			input: `{"value":{"big":"` + big + `"}}` + "\n",
			result: func(p map[string]any) map[string]any {
				return map[string]any{"len": len(p["big"].(string)), "big": p["big"]}
			},
			want:  []map[string]any{{"len": float64(len(big)), "big": big}},
			calls: 1,
		},
		{
			name:  "newlines in result strings stay inside one line",
			input: `{"value":{}}` + "\n",
			result: func(map[string]any) map[string]any {
				return map[string]any{"pem": "-----BEGIN\nabc\r\n-----END\n", "nested": map[string]any{"s": "a\nb"}, "html": "<a&b>"}
			},
			want:  []map[string]any{{"pem": "-----BEGIN\nabc\r\n-----END\n", "nested": map[string]any{"s": "a\nb"}, "html": "<a&b>"}},
			calls: 1,
		},
		{
			name:   "nil result is an empty object",
			input:  `{"value":{}}` + "\n",
			result: func(map[string]any) map[string]any { return nil },
			want:   []map[string]any{{}},
			calls:  1,
		},
		{
			name:   "unserialisable result",
			input:  `{"value":{}}` + "\n",
			result: func(map[string]any) map[string]any { return map[string]any{"c": make(chan int)} },
			want:   []map[string]any{{"error": msgUnserializable}},
			calls:  1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{result: tc.result}
			var out, diag bytes.Buffer
			err := serve(context.Background(), strings.NewReader(tc.input), &out, &diag, tc.getenv, rec.handle)
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
			got := outputLines(t, out.Bytes())
			wantJSON, _ := json.Marshal(tc.want)
			gotJSON, _ := json.Marshal(got)
			if !bytes.Equal(wantJSON, gotJSON) {
				t.Errorf("output = %.300s\nwant     %.300s", gotJSON, wantJSON)
			}
			if len(rec.calls) != tc.calls {
				t.Errorf("handler called %d times, want %d", len(rec.calls), tc.calls)
			}
			if tc.inspect != nil && len(rec.calls) == tc.calls {
				tc.inspect(t, rec.calls)
			}
			if bytes.Contains(out.Bytes(), []byte(secret)) || bytes.Contains(diag.Bytes(), []byte(secret)) {
				t.Errorf("secret leaked into output or diagnostics")
			}
		})
	}
}

func TestServePanicDiagnostics(t *testing.T) {
	var out, diag bytes.Buffer
	h := func(context.Context, Activation, map[string]any) map[string]any { panic(errors.New(secret)) }
	in := `{"value":{},"activation_id":"act-9"}` + "\n"
	if err := serve(context.Background(), strings.NewReader(in), &out, &diag, nil, h); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(diag.String(), "act-9") || !strings.Contains(diag.String(), "goroutine") {
		t.Errorf("diagnostics should name the activation and carry a stack, got %q", diag.String())
	}
	if strings.Contains(diag.String(), secret) {
		t.Errorf("panic value leaked into diagnostics")
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, syscall.EPIPE
	}
	w.after--
	return len(p), nil
}

func TestServeErrors(t *testing.T) {
	echo := (&recorder{}).handle
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		getenv func(string) string
		in     io.Reader
		out    io.Writer
		h      Handler
		want   error
	}{
		{"ack write fails", context.Background(), env("__OW_WAIT_FOR_ACK", "1"), strings.NewReader(""), &failWriter{}, echo, syscall.EPIPE},
		{"result write fails", context.Background(), nil, strings.NewReader("{}\n{}\n"), &failWriter{after: 1}, echo, syscall.EPIPE},
		{"read fails", context.Background(), nil, io.MultiReader(strings.NewReader("{}\n"), errReader{}), io.Discard, echo, errRead},
		{"context canceled", canceled, nil, strings.NewReader("{}\n"), io.Discard, echo, context.Canceled},
		{"nil handler", context.Background(), nil, strings.NewReader(""), io.Discard, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Serve(tc.ctx, tc.in, tc.out, tc.getenv, tc.h)
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

var errRead = errors.New("read boom")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errRead }

// The tests below re-execute the test binary as an action so that Main runs
// with a real fd 3, the way the proxy starts it.
const mainEnv = "ACTIONLOOP_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		Main(func(_ context.Context, act Activation, params map[string]any) map[string]any {
			return map[string]any{"id": act.ID, "params": params}
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mainCmd(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{mainEnv + "=1", "__OW_WAIT_FOR_ACK=1"}
	return cmd
}

func TestMainSpeaksActionLoopOnFD3(t *testing.T) {
	cmd := mainCmd(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin = strings.NewReader(`{"value":{"x":"y"},"activation_id":"a1"}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("action exited with %v at EOF, want success; stderr: %s", err, stderr.String())
	}
	want := `{"ok":true}` + "\n" + `{"id":"a1","params":{"x":"y"}}` + "\n"
	if string(out) != want {
		t.Errorf("fd 3 got %q, want %q", out, want)
	}
}

func TestMainRefusesUnusableFD3(t *testing.T) {
	readOnly, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer readOnly.Close()
	tests := []struct {
		name  string
		extra []*os.File
	}{
		{"fd 3 missing", nil},
		{"fd 3 read-only", []*os.File{readOnly}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.extra == nil {
				// An fd 3 this test process inherited without close-on-exec
				// would reach the child too; the case is then meaningless.
				if flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, 3, syscall.F_GETFD, 0); errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
					t.Skip("fd 3 is inherited by children of this test process")
				}
			}
			cmd := mainCmd(t)
			cmd.ExtraFiles = tc.extra
			cmd.Stdin = strings.NewReader(`{"value":{}}` + "\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
				t.Fatalf("err = %v, want a non-zero exit", err)
			}
			if !strings.Contains(stderr.String(), "file descriptor 3 is not usable") {
				t.Errorf("stderr = %q, want an explanation", stderr.String())
			}
		})
	}
}

func ExampleServe() {
	in := strings.NewReader(`{"value":{"name":"Mike"},"activation_id":"a1","deadline":"4102444800000"}` + "\n")
	hello := func(_ context.Context, act Activation, params map[string]any) map[string]any {
		return map[string]any{"greeting": fmt.Sprintf("Hello %v", params["name"])}
	}
	_ = Serve(context.Background(), in, os.Stdout, func(string) string { return "1" }, hello)
	// Output:
	// {"ok":true}
	// {"greeting":"Hello Mike"}
}
