package codeengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/certbackup/certbackup/internal/app"
)

// Handler answers one request in the runtime-neutral terms of internal/app; *app.App is
// one. It is called from many goroutines at once, must honour ctx (which always carries
// a deadline) and must not keep req.Body after it returns. A panic is answered with
// app.Internal() and does not stop the server.
type Handler interface {
	Handle(ctx context.Context, req app.Request) app.Response
}

// PathHealth is the health check: GET (or HEAD) answers 200 {"status":"ok"} when the
// configuration is valid, 503 when it is not.
const PathHealth = "/healthz"

// Defaults of Options. The reasoning behind each is in the package doc ("Timeouts").
const (
	DefaultAddr              = ":8080"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxConcurrent     = 16
	DefaultRequestTimeout    = 30 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultShutdownGrace     = 10 * time.Second

	// bodyMargin is read beyond MaxBodyBytes, so that a body just over the limit
	// reaches the trigger's own size check (with its precise answer) while the server
	// still bounds what it holds in memory.
	bodyMargin = 4 << 10
	// writeMargin is what WriteTimeout leaves, after the longest read and the longest
	// handler, to write the answer.
	writeMargin = 5 * time.Second
	// RetryAfterBusy is the Retry-After of a 503 answered because every slot is taken.
	RetryAfterBusy = "1"
)

// Options configure Serve. Only Handler (or Misconfigured) is required; every zero
// value means the default.
type Options struct {
	// Addr is where to listen ("host:port"), when Listener is nil. Default ":8080".
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests pass one on
	// 127.0.0.1:0). Serve closes it.
	Listener net.Listener
	// Handler answers POST /notify and POST /events.
	Handler Handler
	// Misconfigured: the configuration is invalid. /healthz answers 503, the two
	// routes app.Misconfigured(), and Handler (which may be nil) is never called.
	Misconfigured bool
	// Logger receives one line per request and the server's own events. Default: none.
	Logger *slog.Logger

	// MaxBodyBytes bounds a request body (plus a small margin); more is 413.
	MaxBodyBytes int64
	// MaxConcurrent is how many requests the Handler serves at once; one more is
	// answered 503 with Retry-After at once, never queued.
	MaxConcurrent int
	// RequestTimeout is the deadline of the context each Handler call gets.
	RequestTimeout time.Duration

	// net/http's limits. WriteTimeout defaults to ReadTimeout + RequestTimeout + 5 s:
	// it runs from the end of the headers to the end of the answer.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int

	// ShutdownGrace bounds the time from the stop signal (ctx done) to Serve's return.
	ShutdownGrace time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Handler == nil && !o.Misconfigured {
		return o, errors.New("codeengine: Options.Handler is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	set(&o.RequestTimeout, DefaultRequestTimeout)
	set(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&o.ReadTimeout, DefaultReadTimeout)
	set(&o.WriteTimeout, o.ReadTimeout+o.RequestTimeout+writeMargin)
	set(&o.IdleTimeout, DefaultIdleTimeout)
	set(&o.ShutdownGrace, DefaultShutdownGrace)
	return o, nil
}

// Serve answers HTTP requests until ctx is done, then stops accepting, lets the
// requests in flight finish and returns nil, all within ShutdownGrace: at nine tenths
// of it (at most 1 s before its end) the contexts of the requests still running are
// cancelled, so that they answer (a 5xx, which Event Notifications retries) rather
// than being cut. It returns an error only when it cannot listen or serve.
func Serve(ctx context.Context, o Options) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", o.Addr, err)
		}
	}
	// The handlers' contexts outlive the stop signal: only abort ends them early.
	handlers, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	s := newServer(o, handlers)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	o.Logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.Bool("configuration_valid", !o.Misconfigured),
		slog.Int("max_concurrent", o.MaxConcurrent), slog.Int64("max_body_bytes", o.MaxBodyBytes))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	o.Logger.Info("stopping: no new connections; finishing the requests in flight",
		slog.Int64("in_flight", s.inflight.Load()), slog.Int64("grace_ms", o.ShutdownGrace.Milliseconds()))
	last := min(o.ShutdownGrace/10, time.Second)
	if err := shutdown(srv, o.ShutdownGrace-last); err != nil {
		o.Logger.Warn("requests still running near the end of the grace period; cancelling them",
			slog.Int64("in_flight", s.inflight.Load()))
		abort()
		if err := shutdown(srv, last); err != nil {
			o.Logger.Warn("closing the connections still open", slog.Int64("in_flight", s.inflight.Load()))
			_ = srv.Close()
		}
	}
	<-served // http.ErrServerClosed
	o.Logger.Info("stopped", slog.Int64("shutdown_ms", time.Since(start).Milliseconds()))
	return nil
}

func shutdown(srv *http.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.Shutdown(ctx)
}

// server is the http.Handler: routing, limits and translation, nothing else.
type server struct {
	h             Handler
	misconfigured bool
	log           *slog.Logger
	limit         int64 // bytes read at most from a body
	maxBody       int64
	slots         chan struct{}
	timeout       time.Duration
	handlers      context.Context // cancelled only at the end of the grace period
	inflight      atomic.Int64
}

func newServer(o Options, handlers context.Context) *server {
	return &server{
		h: o.Handler, misconfigured: o.Misconfigured, log: o.Logger,
		maxBody: o.MaxBodyBytes, limit: o.MaxBodyBytes + bodyMargin,
		slots: make(chan struct{}, o.MaxConcurrent), timeout: o.RequestTimeout, handlers: handlers,
	}
}

// ServeHTTP answers one request and logs one line about it: method, path, status,
// duration and request id. Never a header, never the body.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	id := requestID(r.Header.Get("X-Request-Id"))
	w.Header().Set("X-Request-Id", id)
	status := s.route(w, r, id)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), level, "request",
		slog.String("method", clip(r.Method, 16)), slog.String("path", clip(r.URL.Path, 200)),
		slog.Int("status", status), slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		slog.String("request_id", id))
}

func (s *server) route(w http.ResponseWriter, r *http.Request, id string) int {
	switch r.URL.Path {
	case PathHealth:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		if s.misconfigured {
			return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "misconfigured", "message": "the configuration is invalid; the logs say which parameter"})
		}
		return writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	case app.PathNotify, app.PathEvents:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, http.MethodPost)
		}
		if s.misconfigured {
			return writeResponse(w, app.Misconfigured())
		}
		return s.handle(w, r, id)
	default:
		return writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found", "message": "no such path"})
	}
}

// handle reads the whole body first and only then takes a slot, so that a client
// that sends slowly (or never) holds a connection until ReadTimeout, never a slot.
func (s *server) handle(w http.ResponseWriter, r *http.Request, id string) int {
	tooLarge := map[string]any{"error": "too_large", "message": fmt.Sprintf("the body is over %d bytes", s.maxBody)}
	if r.ContentLength > s.limit {
		w.Header().Set("Connection", "close")
		return writeJSON(w, http.StatusRequestEntityTooLarge, tooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.limit))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return writeJSON(w, http.StatusRequestEntityTooLarge, tooLarge)
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			return writeJSON(w, http.StatusRequestTimeout, map[string]any{"error": "timeout", "message": "the request body did not arrive in time"})
		default:
			w.Header().Set("Connection", "close")
			return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad_request", "message": "the request body could not be read"})
		}
	}
	select {
	case s.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", RetryAfterBusy)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "busy", "message": "too many requests in progress; retry later"})
	}
	defer func() { <-s.slots }()

	// The caller hanging up does not cancel the work: a copy that has started is
	// better finished (the next delivery or reconcile then has nothing to do). The
	// deadline and the end of the grace period do.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.timeout)
	defer cancel()
	defer context.AfterFunc(s.handlers, cancel)()
	return writeResponse(w, s.call(ctx, app.Request{
		Method: r.Method, Path: r.URL.Path, Headers: r.Header.Clone(), Body: body, ID: id,
	}))
}

// call runs the Handler; a panic becomes app.Internal(), logged by its type only
// (its value could hold anything the handler was touching).
func (s *server) call(ctx context.Context, req app.Request) (resp app.Response) {
	defer func() {
		if p := recover(); p != nil {
			resp = app.Internal()
			s.log.Error("internal error", slog.String("panic_type", fmt.Sprintf("%T", p)), slog.String("request_id", req.ID))
		}
	}()
	return s.h.Handle(ctx, req)
}

// reservedHeaders are the server's to write, whatever a Response says.
var reservedHeaders = map[string]bool{
	"Content-Length": true, "Content-Type": true, "Transfer-Encoding": true, "Connection": true, "X-Request-Id": true,
}

// writeResponse writes an app.Response: its status, its headers and its body as JSON.
// A response without a valid status is not a success: it becomes app.Internal().
func writeResponse(w http.ResponseWriter, r app.Response) int {
	if r.Status < 200 || r.Status > 599 {
		r = app.Internal()
	}
	for k, v := range r.Headers {
		if k = http.CanonicalHeaderKey(k); !reservedHeaders[k] {
			w.Header().Set(k, v)
		}
	}
	body := r.Body
	if body == nil {
		body = map[string]any{}
	}
	return writeJSON(w, r.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, body map[string]any) int {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(app.Internal().Body)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status)
		return status
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

func methodNotAllowed(w http.ResponseWriter, allow string) int {
	w.Header().Set("Allow", allow)
	return writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "method_not_allowed", "message": "use " + allow})
}

// requestID is the caller's X-Request-Id when it is a plain token of at most 128
// characters (Code Engine's proxies may set one), else a new random id.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := given[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return given
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clip bounds a caller-chosen string before it goes into a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
