// Package openwhisk is the OpenWhisk (IBM Cloud Functions) runtime adapter. It turns an
// activation's parameters into a validated configuration and a runtime-neutral
// request for internal/app (the web action's __ow_method, __ow_headers, __ow_body and
// merged JSON body become app.Request), and app's answers back into an activation
// result: {statusCode, headers, body} for the web action, the reconcile's report for
// the alarm trigger. It translates and decides nothing else; everything OpenWhisk
// calls by its name stays in this package (and actionloop, the protocol beneath it).
//
// A warm container reuses one Action across activations, and through it one app.App
// per configuration: the IAM token, the source's public key, the HTTP connections and
// the cache of copy locations survive between activations as long as the
// configuration does not change.
package openwhisk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
)

// Meta is what the runtime tells about the activation.
type Meta struct {
	ActivationID string
	Deadline     time.Time // zero when the runtime gave none
}

// Action handles activations. Safe for concurrent use.
type Action struct {
	log  *slog.Logger
	deps app.Deps
	now  func() time.Time

	mu  sync.Mutex
	key string
	app *app.App
}

// Options configures an Action; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// HTTPClient is shared by every API call of every activation (connection reuse).
	HTTPClient *http.Client
	// RetryInterval bounds for the API client (tests use small ones).
	MinRetryInterval, MaxRetryInterval time.Duration
	Now                                func() time.Time
}

// New returns an Action.
func New(o Options) *Action {
	a := &Action{log: o.Logger, now: o.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	h := o.HTTPClient
	if h == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// As many idle connections per host as the reconcile runs calls at once: the
		// default two would make every extra call dial (and handshake) again.
		tr.MaxIdleConnsPerHost = ibmapi.MaxIdleConnsPerHost
		h = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	a.deps = app.Deps{Logger: a.log, HTTPClient: h, MinRetryInterval: o.MinRetryInterval, MaxRetryInterval: o.MaxRetryInterval, Now: a.now}
	return a
}

// appFor returns the App of cfg, reusing the warm one when the configuration is the same.
func (a *Action) appFor(cfg *config.Config) (*app.App, error) {
	key := cfg.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.app != nil && a.key == key {
		return a.app, nil
	}
	ap, err := app.New(cfg, a.deps)
	if err != nil {
		return nil, err
	}
	a.key, a.app = key, ap
	return ap, nil
}

// Handle runs one activation and returns its result.
func (a *Action) Handle(ctx context.Context, meta Meta, params map[string]any) (result map[string]any) {
	log := a.log.With(slog.String("activation_id", meta.ActivationID))
	web := isWeb(params) || modeOf(params) == config.ModeNotify
	defer func() {
		if p := recover(); p != nil {
			// Never echo p: it could hold anything the code was touching. And never
			// answer a crash with an empty result: a web action would turn it into 204,
			// which Certificate Manager takes for a delivered notification.
			result = failure(web, app.Internal())
			func() {
				defer func() { _ = recover() }() // the logger itself may be what failed
				log.Error("internal error", slog.String("panic_type", fmt.Sprintf("%T", p)))
			}()
		}
	}()
	cfg, err := config.Parse(params)
	if err == nil {
		var ap *app.App
		if ap, err = a.appFor(cfg); err == nil {
			ctx, cancel := budget(ctx, meta.Deadline, a.now(), cfg.Mode)
			defer cancel()
			if cfg.Mode == config.ModeNotify {
				return webResult(ap.Handle(ctx, requestOf(meta, params)))
			}
			return reconcileResult(ap.Reconcile(ctx, cfg.Mode, app.RunOptions(cfg, log)))
		}
	}
	// The error names parameters and rules, never values. A web caller may be anyone
	// who knows the URL and learns only that the action is misconfigured; an
	// invocation (the alarm trigger, an operator) is authenticated and gets the detail.
	log.Error("invalid configuration", slog.String("error", err.Error()))
	if web {
		return webResult(app.Misconfigured())
	}
	return map[string]any{"error": map[string]any{"error": "configuration", "message": err.Error()}}
}

// failure is an error result: a web answer, or an application error (which the
// activation record shows) for the other invocations.
func failure(web bool, r app.Response) map[string]any {
	if web {
		return webResult(r)
	}
	return map[string]any{"error": r.Body}
}

// budget leaves a margin before the activation's deadline so that the result is
// written before the platform kills the container, and caps a web activation at 50 s:
// the controller stops waiting for a web action after 60 s and answers 202.
func budget(ctx context.Context, deadline, now time.Time, mode string) (context.Context, context.CancelFunc) {
	end := deadline
	if mode == config.ModeNotify {
		if limit := now.Add(50 * time.Second); end.IsZero() || end.After(limit) {
			end = limit
		}
	}
	if end.IsZero() {
		return context.WithCancel(ctx)
	}
	left := end.Sub(now)
	margin := max(left/10, 2*time.Second)
	if margin > left/2 {
		margin = left / 2
	}
	return context.WithDeadline(ctx, end.Add(-margin))
}

func modeOf(params map[string]any) string {
	if m, ok := params["mode"].(string); ok && m != "" {
		return m
	}
	return config.ModeNotify
}

func isWeb(params map[string]any) bool {
	_, ok := params["__ow_method"]
	return ok
}

// requestOf translates a web activation into a request. The body is __ow_body when
// the platform passed it (raw HTTP, or a content type it does not merge), else the
// `data` parameter that the platform merged from a JSON body.
func requestOf(meta Meta, params map[string]any) app.Request {
	req := app.Request{Method: http.MethodPost, Path: app.PathNotify, Headers: http.Header{}, ID: meta.ActivationID}
	if m, ok := params["__ow_method"].(string); ok {
		req.Method = strings.ToUpper(m)
	}
	if h, ok := params["__ow_headers"].(map[string]any); ok {
		for k, v := range h {
			if s, ok := v.(string); ok {
				req.Headers.Set(k, s)
			}
		}
	}
	req.Body = bodyOf(params)
	return req
}

func bodyOf(params map[string]any) []byte {
	if v, ok := params["data"]; ok {
		b, err := json.Marshal(map[string]any{"data": v})
		if err != nil {
			return []byte("{")
		}
		return b
	}
	v, ok := params["__ow_body"]
	if !ok {
		return []byte("{}")
	}
	switch t := v.(type) {
	case string:
		if dec, err := base64.StdEncoding.DecodeString(t); err == nil {
			return dec
		}
		return []byte(t)
	case map[string]any, []any:
		if b, err := json.Marshal(t); err == nil {
			return b
		}
	}
	return []byte("null")
}

// webResult is the result of a web action with the .http extension.
func webResult(r app.Response) map[string]any {
	headers := map[string]any{}
	for k, v := range r.Headers {
		headers[k] = v
	}
	return map[string]any{"statusCode": r.Status, "headers": headers, "body": r.Body}
}

// reconcileResult is the report, as an application error when the run did not
// succeed (reconcile.Report.OK), so that the activation record shows it.
func reconcileResult(rep *reconcile.Report) map[string]any {
	b, err := json.Marshal(rep)
	var out map[string]any
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		return map[string]any{"error": map[string]any{"error": "internal", "message": "the report could not be encoded"}}
	}
	if !rep.OK() {
		return map[string]any{"error": out}
	}
	return out
}
