package owproxy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestStartEnvironmentIsOnlyOWVariables(t *testing.T) {
	p := startEcho(t, Options{
		APIHost: "https://api.example.test",
		InitEnv: map[string]any{
			"MYVAR":  "hello",
			"MYNUM":  42,
			"MYOBJ":  map[string]any{"a": 1},
			"MYNULL": nil,
			"MYBOOL": true,
		},
	})
	status, body, err := p.Run(testCtx(t), map[string]any{"env": true}, RunMeta{})
	if err != nil || status != 200 {
		t.Fatalf("Run = %d %s %v", status, body, err)
	}
	got := map[string]string{}
	for _, kv := range decodeEcho(t, body).Env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	want := map[string]string{
		"__OW_EXECUTION_ENV": DefaultExecutionEnv,
		"__OW_WAIT_FOR_ACK":  "1",
		"__OW_PROXY_VERSION": DefaultProxyVersion,
		"__OW_API_HOST":      "https://api.example.test",
		"MYVAR":              "hello",
		"MYNUM":              "42",
		"MYOBJ":              `{"a":1}`,
		"MYNULL":             "",
		"MYBOOL":             "true",
	}
	if len(got) != len(want) {
		var names []string
		for k := range got {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Errorf("environment has %v, want exactly the %d names of %v", names, len(want), want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"PATH", "HOME", "TZ", "USER"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s leaked into the action environment", k)
		}
	}
}

func TestStartInitEnvOverridesProxyVariables(t *testing.T) {
	p := startEcho(t, Options{APIHost: "https://a", InitEnv: map[string]any{"__OW_API_HOST": "https://b"}})
	_, body, _ := p.Run(testCtx(t), map[string]any{"env": true}, RunMeta{})
	env := strings.Join(decodeEcho(t, body).Env, "\n")
	if !strings.Contains(env, "__OW_API_HOST=https://b") {
		t.Errorf("init env did not override __OW_API_HOST: %q", env)
	}
}

func TestStartRequiresAck(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		timeout time.Duration // ctx timeout; AckTimeout is 500ms unless zero here
		want    error
	}{
		{"never acks", "noack", 0, ErrAckTimeout},
		{"acks ok:false", "badack", 0, ErrNotInitialized},
		{"acks garbage", "garbageack", 0, ErrBadAck},
		{"exits before ack", "exit", 0, ErrExitedDuringInit},
		{"context ends first", "noack", 200 * time.Millisecond, context.DeadlineExceeded},
		{"ack with spaces is parsed, not string-compared", "spacedack", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			opts := Options{InitEnv: map[string]any{"ECHO_MODE": tc.mode}, AckTimeout: 500 * time.Millisecond}
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
				opts.AckTimeout = time.Minute
			}
			var stderr syncBuffer
			opts.Stderr = &stderr
			begin := time.Now()
			p, err := Start(ctx, echoExec, opts)
			if elapsed := time.Since(begin); elapsed > 3*time.Second {
				t.Errorf("Start took %v", elapsed)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				defer p.Close()
				if status, body, err := p.Run(ctx, map[string]any{"x": 1}, RunMeta{}); status != 200 || err != nil {
					t.Errorf("Run after spaced ack = %d %s %v", status, body, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start err = %v, want %v", err, tc.want)
			}
			if p != nil {
				t.Errorf("Start returned a process with an error")
			}
			if !bytes.HasSuffix(stderr.Bytes(), []byte(Sentinel)) {
				t.Errorf("failed start should end the logs with the sentinel, got %q", stderr.Bytes())
			}
			if tc.mode == "exit" && !bytes.Contains(stderr.Bytes(), []byte("exiting before the ack")) {
				t.Errorf("the action's stderr was not captured: %q", stderr.Bytes())
			}
		})
	}
}

func TestStartMissingExec(t *testing.T) {
	_, err := Start(testCtx(t), filepath.Join(t.TempDir(), "exec"), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not exist", err)
	}
}

func TestStartInvalidInitEnv(t *testing.T) {
	for _, env := range []map[string]any{{"A=B": "x"}, {"": "x"}, {"A": "x\x00y"}, {"A": make(chan int)}} {
		if _, err := Start(testCtx(t), echoExec, Options{InitEnv: env}); err == nil {
			t.Errorf("InitEnv %v: want an error", env)
		}
	}
}

func TestAckLatency(t *testing.T) {
	p := startEcho(t, Options{})
	if l := p.AckLatency(); l <= 0 || l > DefaultAckTimeout {
		t.Errorf("AckLatency = %v", l)
	}
}

func TestRunSendsTheRunObject(t *testing.T) {
	p := startEcho(t, Options{})
	params := map[string]any{"a": "b", "multi": "line1\nline2", "n": 1.5}
	before := time.Now()
	status, body, err := p.Run(testCtx(t), params, RunMeta{
		Namespace: "ns1", ActionName: "ns1/pkg/cb", ActionVersion: "0.0.2",
		ActivationID: "act-1", TransactionID: "tx-1", Timeout: 10 * time.Second,
		APIKey: secret, Extra: map[string]string{"iam_api_url": "https://iam.example.test"},
	})
	if err != nil || status != 200 {
		t.Fatalf("Run = %d %s %v", status, body, err)
	}
	if !bytes.HasSuffix(body, []byte("\n")) || bytes.Count(body, []byte("\n")) != 1 {
		t.Errorf("body should be the result line, newline included: %q", body)
	}
	r := decodeEcho(t, body)
	if r.Params["a"] != "b" || r.Params["multi"] != "line1\nline2" || r.Params["n"] != 1.5 {
		t.Errorf("params = %v", r.Params)
	}
	a := r.Activation
	if a.ActionName != "/ns1/pkg/cb" || a.Namespace != "ns1" || a.ActionVersion != "0.0.2" ||
		a.ID != "act-1" || a.TransactionID != "tx-1" {
		t.Errorf("activation = %+v", a)
	}
	wantDeadline := before.Add(10 * time.Second).UnixMilli()
	if a.DeadlineMS < wantDeadline || a.DeadlineMS > wantDeadline+5000 || r.CtxDeadlineMS != a.DeadlineMS {
		t.Errorf("deadline = %d (ctx %d), want about %d", a.DeadlineMS, r.CtxDeadlineMS, wantDeadline)
	}
}

func TestRunDefaultsAndContextIDs(t *testing.T) {
	p := startEcho(t, Options{})
	ctx := ContextWithIDs(testCtx(t), "ctx-act", "ctx-tx")
	_, body, err := p.Run(ctx, nil, RunMeta{})
	if err != nil {
		t.Fatal(err)
	}
	r := decodeEcho(t, body)
	if r.Activation.ID != "ctx-act" || r.Activation.TransactionID != "ctx-tx" ||
		r.Activation.ActionName != "/guest/action" || r.Activation.Namespace != "guest" {
		t.Errorf("activation = %+v", r.Activation)
	}
	if r.Params == nil || len(r.Params) != 0 {
		t.Errorf("nil params should arrive as {}, got %v", r.Params)
	}
	_, body, _ = p.Run(testCtx(t), nil, RunMeta{})
	if id := decodeEcho(t, body).Activation.ID; len(id) != 32 {
		t.Errorf("generated activation id %q, want 32 hex digits", id)
	}
}

func TestRunRejectsShadowingExtra(t *testing.T) {
	p := startEcho(t, Options{})
	_, _, err := p.Run(testCtx(t), nil, RunMeta{Extra: map[string]string{"value": "x"}})
	if err == nil {
		t.Fatal("want an error")
	}
}

// step is one activation of a scenario and the proxy answer it must get.
type step struct {
	params     map[string]any
	wantStatus int
	wantBody   string // exact body without the newline; "" = any
	// waitExit waits for the process to be gone before the step, to make
	// "exited between activations" deterministic.
	waitExit bool
}

func TestRunProxyAnswers(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"crash gives 400 then every run 500 no action", []step{
			{map[string]any{"exit": 3}, 400, `{"error":"command exited"}`, false},
			{map[string]any{}, 500, `{"error":"no action defined yet"}`, false},
			{map[string]any{}, 500, `{"error":"no action defined yet"}`, false},
		}},
		{"non-JSON line gives 502; the exit that follows gives 500 command exited", []step{
			{map[string]any{"raw": "not json"}, 502, `{"error":"The action did not return a dictionary or array."}`, false},
			{map[string]any{}, 500, `{"error":"command exited"}`, true},
			{map[string]any{}, 500, `{"error":"command exited"}`, false},
		}},
		{"JSON scalar gives 502", []step{
			{map[string]any{"raw": `"a string"`}, 502, `{"error":"The action did not return a dictionary or array."}`, false},
		}},
		{"JSON null passes the proxy as it does in Go", []step{
			{map[string]any{"raw": "null"}, 200, `null`, false},
		}},
		{"array result passes", []step{
			{map[string]any{"raw": `[1,2]`}, 200, `[1,2]`, false},
		}},
		{"panic is an application error and the process lives on", []step{
			{map[string]any{"panic": true, "apikey": secret}, 200, `{"error":"internal error in action"}`, false},
			{map[string]any{"respond": map[string]any{"ok": true}}, 200, `{"ok":true}`, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startEcho(t, Options{})
			for i, s := range tc.steps {
				if s.waitExit {
					select {
					case <-p.exited:
					case <-time.After(5 * time.Second):
						t.Fatalf("step %d: the process did not exit", i)
					}
				}
				status, body, err := p.Run(testCtx(t), s.params, RunMeta{})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if status != s.wantStatus || (s.wantBody != "" && string(body) != s.wantBody+"\n") {
					t.Errorf("step %d = %d %q, want %d %q", i, status, body, s.wantStatus, s.wantBody)
				}
			}
			logs := p.Logs()
			if bytes.Contains(logs.Stdout, []byte(secret)) || bytes.Contains(logs.Stderr, []byte(secret)) {
				t.Errorf("secret in logs")
			}
		})
	}
}

func TestRunTimeLimitKillsTheProcess(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context
		timeout time.Duration
		want    error
	}{
		{"RunMeta.Timeout", testCtx, 300 * time.Millisecond, context.DeadlineExceeded},
		{"caller context canceled", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(testCtx(t))
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx
		}, 0, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startEcho(t, Options{})
			begin := time.Now()
			status, _, err := p.Run(tc.ctx(t), map[string]any{"sleep_ms": 10000}, RunMeta{Timeout: tc.timeout})
			if elapsed := time.Since(begin); elapsed > 3*time.Second {
				t.Errorf("Run took %v after its deadline", elapsed)
			}
			if !errors.Is(err, ErrTimeLimit) || !errors.Is(err, tc.want) || status != 0 {
				t.Errorf("Run = %d, %v; want ErrTimeLimit and %v", status, err, tc.want)
			}
			if status, body, _ := p.Run(testCtx(t), nil, RunMeta{}); status != 500 || string(body) != string(bodyNoAction) {
				t.Errorf("after the kill Run = %d %s, want 500 no action", status, body)
			}
			if n := bytes.Count(p.Logs().Stdout, []byte(Sentinel)); n != 1 {
				t.Errorf("%d sentinels after a killed activation, want 1", n)
			}
		})
	}
}

func TestRunWithDoneContextDoesNotTouchTheProcess(t *testing.T) {
	p := startEcho(t, Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, _, err := p.Run(ctx, nil, RunMeta{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if status, _, err := p.Run(testCtx(t), nil, RunMeta{}); status != 200 || err != nil {
		t.Errorf("process should still serve: %d %v", status, err)
	}
}

func TestRunRaw(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string // substring of the 200 body
	}{
		{"newlines are removed from the body", "{\n  \"value\": {\"a\": \"x\"}\n}\n", `"a":"x"`},
		{"array value is refused by the action", `{"value":[1,2]}`, `"error":"invalid activation input: \"value\" is an array`},
		{"garbage is refused by the action", `password=` + secret, `"error":"invalid activation input`},
	}
	p := startEcho(t, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := p.RunRaw(testCtx(t), []byte(tc.payload))
			if err != nil || status != 200 || !strings.Contains(string(body), tc.want) {
				t.Errorf("RunRaw = %d %s %v, want 200 with %s", status, body, err, tc.want)
			}
			if strings.Contains(string(body), secret) {
				t.Errorf("the action echoed its input")
			}
		})
	}
}

func TestRunLargePayload(t *testing.T) {
	p := startEcho(t, Options{})
	big := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB
	status, body, err := p.Run(testCtx(t), map[string]any{"big": big}, RunMeta{})
	if err != nil || status != 200 {
		t.Fatalf("Run = %d %v", status, err)
	}
	if got := decodeEcho(t, body).Params["big"]; got != big {
		t.Errorf("big parameter did not round-trip (%d bytes back)", len(got.(string)))
	}
}

func TestLogsCarrySentinelsPerActivation(t *testing.T) {
	var stdout, stderr syncBuffer
	p := startEcho(t, Options{Stdout: &stdout, Stderr: &stderr})
	ctx := testCtx(t)
	for i := range 3 {
		params := map[string]any{"stdout": "out-" + string(rune('a'+i)), "stderr": "err-" + string(rune('a'+i)), "password": secret}
		if status, _, err := p.Run(ctx, params, RunMeta{APIKey: secret}); status != 200 || err != nil {
			t.Fatalf("run %d: %d %v", i, status, err)
		}
	}
	if status, _, _ := p.Run(ctx, map[string]any{"exit": 1, "stderr": "dying"}, RunMeta{}); status != 400 {
		t.Fatalf("crash run status %d", status)
	}
	_, _, _ = p.Run(ctx, nil, RunMeta{}) // 500 no action: no interaction, no sentinel

	logs := p.Logs()
	tests := []struct {
		name   string
		stream []byte
		sink   []byte
		want   []string
	}{
		{"stdout", logs.Stdout, stdout.Bytes(), []string{"out-a\n", "out-b\n", "out-c\n", "", ""}},
		{"stderr", logs.Stderr, stderr.Bytes(), []string{"err-a\n", "err-b\n", "err-c\n", "dying\n", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitActivations(tc.stream)
			if len(got) != len(tc.want) {
				t.Fatalf("%d segments %q, want %q", len(got), got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("activation %d logged %q, want %q", i, got[i], tc.want[i])
				}
			}
			if !bytes.Equal(tc.stream, tc.sink) {
				t.Errorf("writer got %q, Logs has %q", tc.sink, tc.stream)
			}
			if bytes.Contains(tc.stream, []byte(secret)) {
				t.Errorf("secret in %s", tc.name)
			}
		})
	}
}

func TestCloseStopsTheActionAtEOF(t *testing.T) {
	p := startEcho(t, Options{})
	begin := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(begin); elapsed > time.Second {
		t.Errorf("Close took %v: the action did not exit at EOF", elapsed)
	}
	_ = p.Close() // idempotent
	if status, body, _ := p.Run(testCtx(t), nil, RunMeta{}); status != 500 || string(body) != string(bodyNoAction) {
		t.Errorf("Run after Close = %d %s", status, body)
	}
}

func TestCloseDuringRun(t *testing.T) {
	p := startEcho(t, Options{})
	time.AfterFunc(200*time.Millisecond, func() { _ = p.Close() })
	status, _, err := p.Run(testCtx(t), map[string]any{"sleep_ms": 10000}, RunMeta{})
	if status != 400 || err != nil {
		t.Errorf("Run interrupted by Close = %d %v, want 400", status, err)
	}
}

func TestProcessRunFunc(t *testing.T) {
	p := startEcho(t, Options{})
	run := p.RunFunc(RunMeta{ActionName: "/ns/a"})
	status, body, err := run(testCtx(t), map[string]any{"k": 1})
	if err != nil || status != 200 {
		t.Fatalf("RunFunc = %d %v", status, err)
	}
	r := decodeEcho(t, body)
	if r.Pid != p.Pid() || r.Activation.ActionName != "/ns/a" {
		t.Errorf("pid %d (process %d), action %q", r.Pid, p.Pid(), r.Activation.ActionName)
	}
}
