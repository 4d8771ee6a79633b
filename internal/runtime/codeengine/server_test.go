package codeengine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stub is a Handler made of a function.
type stub func(ctx context.Context, req app.Request) app.Response

func (f stub) Handle(ctx context.Context, req app.Request) app.Response { return f(ctx, req) }

// okStub answers 200 with what it was asked.
var okStub = stub(func(_ context.Context, req app.Request) app.Response {
	return app.Response{Status: 200, Headers: map[string]string{"Content-Type": "application/json"},
		Body: map[string]any{"path": req.Path, "bytes": len(req.Body)}}
})

// syncBuffer is a bytes.Buffer that the server's goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines is the JSON log lines whose msg is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every log line is JSON: %q", l)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type running struct {
	url    string
	addr   string
	logs   *syncBuffer
	stop   context.CancelFunc
	served chan error
}

// start serves o on 127.0.0.1:0 until the test ends (or r.stop).
func start(t *testing.T, o Options) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs := &syncBuffer{}
	o.Listener = ln
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), logs: logs, stop: cancel, served: make(chan error, 1)}
	go func() { r.served <- Serve(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.served:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after the stop")
		}
	})
	return r
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if method != http.MethodHead {
		require.NoError(t, json.Unmarshal(raw, &a.body), "every answer is a JSON object: %q", raw)
	}
	return a
}

func TestRoutes(t *testing.T) {
	var mu sync.Mutex
	var got []app.Request
	h := stub(func(ctx context.Context, req app.Request) app.Response {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		return okStub(ctx, req)
	})
	r := start(t, Options{Handler: h})
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		header    map[string]string
		status    int
		wantBody  map[string]any
		allow     string
		reachesUs bool // the Handler is called
	}{
		{name: "health", method: "GET", path: "/healthz", status: 200, wantBody: map[string]any{"status": "ok"}},
		{name: "health HEAD", method: "HEAD", path: "/healthz", status: 200},
		{name: "health POST", method: "POST", path: "/healthz", status: 405, allow: "GET, HEAD", wantBody: map[string]any{"error": "method_not_allowed"}},
		{name: "notify", method: "POST", path: "/notify", body: `{"data":"x.y.z"}`, status: 200, wantBody: map[string]any{"path": "/notify", "bytes": 16.0}, reachesUs: true},
		{name: "events", method: "POST", path: "/events", body: `{}`, header: map[string]string{"Authorization": "Bearer s"}, status: 200, wantBody: map[string]any{"path": "/events"}, reachesUs: true},
		{name: "events with a query", method: "POST", path: "/events?x=1", body: `{}`, status: 200, wantBody: map[string]any{"path": "/events"}, reachesUs: true},
		{name: "notify GET", method: "GET", path: "/notify", status: 405, allow: "POST", wantBody: map[string]any{"error": "method_not_allowed"}},
		{name: "events PUT", method: "PUT", path: "/events", body: "{}", status: 405, allow: "POST"},
		{name: "root", method: "GET", path: "/", status: 404, wantBody: map[string]any{"error": "not_found"}},
		{name: "root POST", method: "POST", path: "/", body: "{}", status: 404},
		{name: "trailing slash", method: "POST", path: "/events/", body: "{}", status: 404},
		{name: "case", method: "POST", path: "/Notify", body: "{}", status: 404},
		{name: "unknown", method: "DELETE", path: "/admin", status: 404},
		{name: "dot segments are not cleaned", method: "POST", path: "/x/../notify", body: "{}", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			before := len(got)
			mu.Unlock()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			a := do(t, tt.method, r.url+tt.path, body, tt.header)
			assert.Equal(t, tt.status, a.status, "%v", a.body)
			assert.Equal(t, "application/json", a.header.Get("Content-Type"))
			assert.Equal(t, "no-store", a.header.Get("Cache-Control"))
			assert.NotEmpty(t, a.header.Get("X-Request-Id"))
			if tt.allow != "" {
				assert.Equal(t, tt.allow, a.header.Get("Allow"))
			}
			for k, v := range tt.wantBody {
				assert.Equal(t, v, a.body[k], k)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.reachesUs {
				assert.Len(t, got, before, "the Handler is not called")
				return
			}
			require.Len(t, got, before+1)
			req := got[before]
			assert.Equal(t, "POST", req.Method)
			assert.Equal(t, tt.body, string(req.Body))
			assert.Equal(t, a.header.Get("X-Request-Id"), req.ID)
			for k, v := range tt.header {
				assert.Equal(t, v, req.Headers.Get(k), "headers reach the Handler")
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	var seen string
	r := start(t, Options{Handler: stub(func(_ context.Context, req app.Request) app.Response {
		seen = req.ID
		return app.Response{Status: 200}
	})})
	tests := []struct {
		name  string
		given string
		kept  bool
	}{
		{name: "uuid from a proxy", given: "0b7c7e0c-4f4e-4d4b-9a51-9a1f0c6f1b2e", kept: true},
		{name: "none", given: ""},
		{name: "spaces and quotes", given: `a b"c`},
		{name: "too long", given: strings.Repeat("a", 129)},
		{name: "json injection", given: `x","status":200,"y":"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, "POST", r.url+"/notify", strings.NewReader("{}"), map[string]string{"X-Request-Id": tt.given})
			require.Equal(t, 200, a.status)
			assert.Equal(t, seen, a.header.Get("X-Request-Id"))
			if tt.kept {
				assert.Equal(t, tt.given, seen)
			} else {
				assert.Regexp(t, `^[0-9a-f]{16}$`, seen)
			}
		})
	}
}

// TestHandlerAnswersPassThrough: the status, headers and body the Handler chooses are
// what the caller gets, refusals included; only the server's own headers win.
func TestHandlerAnswersPassThrough(t *testing.T) {
	tests := []struct {
		name   string
		resp   app.Response
		status int
		body   map[string]any
		header map[string]string
	}{
		{name: "400 malformed", resp: app.Response{Status: 400, Body: map[string]any{"error": "malformed", "message": "not JSON"}}, status: 400, body: map[string]any{"error": "malformed"}},
		{name: "401 unauthorized", resp: app.Response{Status: 401, Headers: map[string]string{"WWW-Authenticate": "Bearer"}, Body: map[string]any{"error": "unauthorized"}}, status: 401,
			body: map[string]any{"error": "unauthorized"}, header: map[string]string{"Www-Authenticate": "Bearer"}},
		{name: "403 forbidden", resp: app.Response{Status: 403, Body: map[string]any{"error": "forbidden"}}, status: 403, body: map[string]any{"error": "forbidden"}},
		{name: "413 from the trigger", resp: app.Response{Status: 413, Body: map[string]any{"error": "too_large"}}, status: 413},
		{name: "502 a copy failed", resp: app.Response{Status: 502, Body: map[string]any{"summary": map[string]any{"failed": 1.0}}}, status: 502, body: map[string]any{"summary": map[string]any{"failed": 1.0}}},
		{name: "503 with Retry-After", resp: app.Response{Status: 503, Headers: map[string]string{"Retry-After": "5"}, Body: map[string]any{}}, status: 503, header: map[string]string{"Retry-After": "5"}},
		{name: "misconfigured", resp: app.Misconfigured(), status: 500, body: map[string]any{"error": "configuration"}},
		{name: "no status is never a success", resp: app.Response{}, status: 500, body: map[string]any{"error": "internal"}},
		{name: "1xx is never an answer", resp: app.Response{Status: 100}, status: 500, body: map[string]any{"error": "internal"}},
		{name: "nil body is an empty object", resp: app.Response{Status: 200}, status: 200, body: map[string]any{}},
		{name: "reserved headers stay the server's", resp: app.Response{Status: 200, Headers: map[string]string{"content-type": "text/html", "Content-Length": "1", "x-request-id": "forged", "Connection": "keep-alive"}, Body: map[string]any{"a": 1.0}},
			status: 200, body: map[string]any{"a": 1.0}, header: map[string]string{"Content-Type": "application/json"}},
		{name: "unencodable body", resp: app.Response{Status: 200, Body: map[string]any{"f": func() {}}}, status: 500, body: map[string]any{"error": "internal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, Options{Handler: stub(func(context.Context, app.Request) app.Response { return tt.resp })})
			a := do(t, "POST", r.url+"/events", strings.NewReader("{}"), map[string]string{"X-Request-Id": "rid-1"})
			assert.Equal(t, tt.status, a.status)
			for k, v := range tt.body {
				assert.Equal(t, v, a.body[k], k)
			}
			for k, v := range tt.header {
				assert.Equal(t, v, a.header.Get(k), k)
			}
			assert.Equal(t, "rid-1", a.header.Get("X-Request-Id"))
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const max = 1000
	limit := max + bodyMargin
	called := make(chan int, 10)
	r := start(t, Options{MaxBodyBytes: max, Handler: stub(func(_ context.Context, req app.Request) app.Response {
		called <- len(req.Body)
		return app.Response{Status: 200}
	})})
	type noLen struct{ io.Reader } // hides the length: the body goes chunked
	tests := []struct {
		name    string
		body    io.Reader
		status  int
		handled bool
	}{
		{name: "at the limit", body: strings.NewReader(strings.Repeat("a", max)), status: 200, handled: true},
		{name: "in the margin (the trigger decides)", body: strings.NewReader(strings.Repeat("a", limit)), status: 200, handled: true},
		{name: "over, with Content-Length", body: strings.NewReader(strings.Repeat("a", limit+1)), status: 413},
		{name: "over, chunked", body: noLen{strings.NewReader(strings.Repeat("a", limit+1))}, status: 413},
		{name: "far over, chunked", body: noLen{strings.NewReader(strings.Repeat("a", 5<<20))}, status: 413},
		{name: "empty", body: nil, status: 200, handled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, "POST", r.url+"/notify", tt.body, nil)
			assert.Equal(t, tt.status, a.status)
			if tt.status == 413 {
				assert.Equal(t, "too_large", a.body["error"])
				assert.NotContains(t, a.body["message"], "aaaa", "the body is never echoed")
			}
			select {
			case n := <-called:
				assert.True(t, tt.handled, "handler called with %d bytes", n)
			default:
				assert.False(t, tt.handled, "handler not called")
			}
		})
	}
}

// TestSlowClientsCannotHoldASlot: with one slot, a client that sends its headers byte
// by byte is cut off by ReadHeaderTimeout, one that never sends its body by
// ReadTimeout, and neither keeps another request from being served meanwhile.
func TestSlowClientsCannotHoldASlot(t *testing.T) {
	var calls sync.WaitGroup
	r := start(t, Options{
		MaxConcurrent: 1, ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
		Handler: stub(func(ctx context.Context, req app.Request) app.Response {
			calls.Add(1)
			defer calls.Done()
			return okStub(ctx, req)
		}),
	})
	tests := []struct {
		name string
		// send writes to the connection until it fails or is done.
		send      func(c net.Conn)
		cutWithin time.Duration
		status    string // the status line the server answers with, "" for none
	}{
		{
			name: "headers byte by byte",
			send: func(c net.Conn) {
				for _, b := range []byte("POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Pad: " + strings.Repeat("p", 100) + "\r\n\r\n{}") {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			cutWithin: 1500 * time.Millisecond,
		},
		{
			name: "body never sent",
			send: func(c net.Conn) {
				_, _ = c.Write([]byte("POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"))
			},
			cutWithin: 1500 * time.Millisecond,
			status:    "HTTP/1.1 408",
		},
		{
			name: "body trickled",
			send: func(c net.Conn) {
				_, _ = c.Write([]byte("POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"))
				for range 200 {
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			cutWithin: 1500 * time.Millisecond,
			status:    "HTTP/1.1 408",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", r.addr)
			require.NoError(t, err)
			defer c.Close()
			begin := time.Now()
			go tt.send(c)

			// While the slow client is connected, another request is served at once.
			time.Sleep(100 * time.Millisecond)
			a := do(t, "POST", r.url+"/notify", strings.NewReader("{}"), nil)
			assert.Equal(t, 200, a.status, "the slow client holds no slot")

			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, _ := io.ReadAll(c) // until the server closes the connection
			took := time.Since(begin)
			assert.Less(t, took, tt.cutWithin, "cut off by the server")
			if tt.status != "" {
				assert.True(t, strings.HasPrefix(string(got), tt.status), "%q", got)
			} else {
				assert.NotContains(t, string(got), "HTTP/1.1 200", "never served")
			}
		})
	}
	calls.Wait()
	assert.Len(t, r.logs.lines(t, "request"), 3+2, "one line per answered request")
}

func TestConcurrencyLimit(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	r := start(t, Options{MaxConcurrent: 2, Handler: stub(func(ctx context.Context, req app.Request) app.Response {
		entered <- struct{}{}
		<-release
		return okStub(ctx, req)
	})})
	results := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := http.Post(r.url+"/notify", "application/json", strings.NewReader("{}"))
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the first two requests did not reach the handler")
		}
	}
	begin := time.Now()
	a := do(t, "POST", r.url+"/events", strings.NewReader("{}"), nil)
	assert.Equal(t, 503, a.status)
	assert.Equal(t, "busy", a.body["error"])
	assert.Equal(t, RetryAfterBusy, a.header.Get("Retry-After"))
	assert.Less(t, time.Since(begin), time.Second, "answered at once, not queued")
	assert.Equal(t, 200, do(t, "GET", r.url+"/healthz", nil, nil).status, "the health check takes no slot")

	close(release)
	assert.Equal(t, 200, <-results)
	assert.Equal(t, 200, <-results)
	assert.Equal(t, 200, do(t, "POST", r.url+"/notify", strings.NewReader("{}"), nil).status, "slots are given back")
}

func TestPanicAnswers500AndServerLives(t *testing.T) {
	const secretish = "panic-value-with-a-secret-0123456789"
	r := start(t, Options{Handler: stub(func(ctx context.Context, req app.Request) app.Response {
		if string(req.Body) == "boom" {
			panic(secretish)
		}
		if string(req.Body) == "nil-map" {
			var m map[string]int
			m["x"] = 1
		}
		return okStub(ctx, req)
	})})
	for _, body := range []string{"boom", "nil-map", "boom"} {
		a := do(t, "POST", r.url+"/notify", strings.NewReader(body), nil)
		assert.Equal(t, 500, a.status)
		assert.Equal(t, app.Internal().Body["error"], a.body["error"])
		assert.Equal(t, 200, do(t, "POST", r.url+"/notify", strings.NewReader("{}"), nil).status, "still serving")
	}
	assert.NotContains(t, r.logs.String(), secretish, "a panic is logged by its type only")
	lines := r.logs.lines(t, "internal error")
	require.Len(t, lines, 3)
	assert.Equal(t, "string", lines[0]["panic_type"])
}

func TestRequestContext(t *testing.T) {
	type seen struct {
		deadline time.Duration
		err      error
	}
	got := make(chan seen, 1)
	r := start(t, Options{RequestTimeout: 2 * time.Second, Handler: stub(func(ctx context.Context, req app.Request) app.Response {
		dl, ok := ctx.Deadline()
		if !ok {
			got <- seen{deadline: -1}
			return app.Response{Status: 200}
		}
		left := time.Until(dl)
		if string(req.Body) == "slow" {
			time.Sleep(400 * time.Millisecond) // the caller gives up meanwhile
		}
		got <- seen{deadline: left, err: ctx.Err()}
		return app.Response{Status: 200}
	})})

	do(t, "POST", r.url+"/notify", strings.NewReader("{}"), nil)
	s := <-got
	assert.Greater(t, s.deadline, 1500*time.Millisecond, "each call has the RequestTimeout deadline")
	assert.LessOrEqual(t, s.deadline, 2*time.Second)

	c := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := c.Post(r.url+"/notify", "application/json", strings.NewReader("slow"))
	require.Error(t, err, "the caller gave up")
	s = <-got
	assert.NoError(t, s.err, "a caller hanging up does not cancel the work")
}

func TestLogLines(t *testing.T) {
	const bearer = "Bearer webhook-secret-that-must-never-be-logged-0000"
	const body = `{"data":"token-body-that-must-never-be-logged"}`
	r := start(t, Options{Handler: okStub})
	do(t, "POST", r.url+"/events", strings.NewReader(body), map[string]string{"Authorization": bearer, "X-Request-Id": "req-7", "Cookie": "c=cookie-value"})
	do(t, "GET", r.url+"/nope", nil, nil)
	lines := r.logs.lines(t, "request")
	require.Len(t, lines, 2)
	l := lines[0]
	assert.Equal(t, "POST", l["method"])
	assert.Equal(t, "/events", l["path"])
	assert.Equal(t, 200.0, l["status"])
	assert.Equal(t, "req-7", l["request_id"])
	assert.Contains(t, l, "duration_ms")
	assert.Equal(t, 404.0, lines[1]["status"])
	out := r.logs.String()
	for _, s := range []string{"webhook-secret", "token-body", "cookie-value", "Authorization", "Cookie"} {
		assert.NotContains(t, out, s)
	}
}

func TestMisconfigured(t *testing.T) {
	r := start(t, Options{Misconfigured: true})
	tests := []struct {
		method, path string
		status       int
		key, value   string
	}{
		{"GET", "/healthz", 503, "status", "misconfigured"},
		{"POST", "/notify", 500, "error", "configuration"},
		{"POST", "/events", 500, "error", "configuration"},
		{"GET", "/events", 405, "error", "method_not_allowed"},
		{"GET", "/", 404, "error", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader("{}")
			}
			a := do(t, tt.method, r.url+tt.path, body, nil)
			assert.Equal(t, tt.status, a.status)
			assert.Equal(t, tt.value, a.body[tt.key])
		})
	}
	assert.Equal(t, app.Misconfigured().Body["message"], do(t, "POST", r.url+"/notify", strings.NewReader("{}"), nil).body["message"])
}

func TestServeNeedsAHandler(t *testing.T) {
	assert.Error(t, Serve(context.Background(), Options{}))
}

// TestShutdown: the stop lets the request in flight finish and refuses new
// connections; one that outlives the grace period has its context cancelled and
// still answers, and Serve returns within the grace period.
func TestShutdown(t *testing.T) {
	t.Run("request in flight finishes", func(t *testing.T) {
		entered := make(chan struct{})
		r := start(t, Options{Handler: stub(func(ctx context.Context, req app.Request) app.Response {
			close(entered)
			time.Sleep(500 * time.Millisecond)
			if ctx.Err() != nil {
				return app.Response{Status: 503}
			}
			return okStub(ctx, req)
		})})
		res := make(chan int, 1)
		go func() {
			resp, err := http.Post(r.url+"/notify", "application/json", strings.NewReader("{}"))
			if err != nil {
				res <- 0
				return
			}
			resp.Body.Close()
			res <- resp.StatusCode
		}()
		<-entered
		begin := time.Now()
		r.stop()
		time.Sleep(100 * time.Millisecond)
		_, err := net.DialTimeout("tcp", r.addr, time.Second)
		assert.Error(t, err, "no new connections once stopping")
		assert.Equal(t, 200, <-res)
		require.NoError(t, <-r.served)
		r.served <- nil // for the cleanup
		assert.Less(t, time.Since(begin), 2*time.Second)
		assert.Len(t, r.logs.lines(t, "stopped"), 1)
	})
	t.Run("grace period ends", func(t *testing.T) {
		entered := make(chan struct{})
		r := start(t, Options{ShutdownGrace: 500 * time.Millisecond, Handler: stub(func(ctx context.Context, req app.Request) app.Response {
			close(entered)
			<-ctx.Done() // a handler that needs longer than the grace period
			return app.Response{Status: 503, Body: map[string]any{"error": "cancelled"}}
		})})
		res := make(chan int, 1)
		go func() {
			resp, err := http.Post(r.url+"/notify", "application/json", strings.NewReader("{}"))
			if err != nil {
				res <- 0
				return
			}
			resp.Body.Close()
			res <- resp.StatusCode
		}()
		<-entered
		begin := time.Now()
		r.stop()
		require.NoError(t, <-r.served)
		r.served <- nil
		took := time.Since(begin)
		assert.Less(t, took, 700*time.Millisecond, "within the grace period")
		assert.Greater(t, took, 400*time.Millisecond, "the request had the grace period")
		assert.Equal(t, 503, <-res, "the cancelled request still answered")
	})
	t.Run("idle server stops at once", func(t *testing.T) {
		r := start(t, Options{Handler: okStub})
		assert.Equal(t, 200, do(t, "GET", r.url+"/healthz", nil, nil).status) // an idle keep-alive connection
		begin := time.Now()
		r.stop()
		require.NoError(t, <-r.served)
		r.served <- nil
		assert.Less(t, time.Since(begin), time.Second)
	})
}

func TestDefaults(t *testing.T) {
	o, err := Options{Handler: okStub}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, ":8080", o.Addr)
	assert.Equal(t, int64(1<<20), o.MaxBodyBytes)
	assert.Equal(t, 16, o.MaxConcurrent)
	assert.Equal(t, 10*time.Second, o.ShutdownGrace, "the contract's bound")
	assert.Greater(t, o.RequestTimeout, app.EventsBudget+2*time.Second, "the events budget fits in a request's deadline")
	assert.Equal(t, o.ReadTimeout+o.RequestTimeout+writeMargin, o.WriteTimeout)
	assert.Less(t, o.ReadHeaderTimeout, o.ReadTimeout)
	assert.Less(t, o.ReadHeaderTimeout, o.ShutdownGrace, "a slow client cannot outlast the grace period")
	assert.Greater(t, o.IdleTimeout, 90*time.Second, "longer than a Go proxy's idle connections")

	o, err = Options{Handler: okStub, ReadTimeout: time.Second, RequestTimeout: 2 * time.Second}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 8*time.Second, o.WriteTimeout)
}

// TestHeaderLimit: headers over MaxHeaderBytes are refused by net/http (431) and
// never reach the Handler.
func TestHeaderLimit(t *testing.T) {
	var called atomic.Bool
	r := start(t, Options{MaxHeaderBytes: 1 << 10, Handler: stub(func(context.Context, app.Request) app.Response {
		called.Store(true)
		return app.Response{Status: 200}
	})})
	c, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("POST /notify HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 64<<10) + "\r\nContent-Length: 2\r\n\r\n{}"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, line, "431")
	assert.False(t, called.Load())
}
