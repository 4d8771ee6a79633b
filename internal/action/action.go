// Package action is the handler that the OpenWhisk binary (and any other runtime) calls
// with the activation's parameters: it validates the configuration, verifies the
// Certificate Manager notification, replicates, and maps the outcome to a web-action
// response {statusCode, headers, body}. In reconcile and verify modes it runs the full
// sync and returns the report.
//
// A warm container reuses one Action across activations: the IAM token, the source's
// public key, the HTTP connections and the cache of copy locations survive between
// activations as long as the configuration does not change.
//
// Nothing it logs or returns holds a private key, an API key, a bearer token or the
// notification token: logs carry CRNs, event types and outcomes.
package action

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/internal/trigger/cmcallback"
)

// Meta is what the runtime tells about the activation.
type Meta struct {
	ActivationID string
	Deadline     time.Time // zero when the runtime gave none
}

// Action handles activations. Safe for concurrent use.
type Action struct {
	log  *slog.Logger
	http *http.Client
	now  func() time.Time

	retryMin, retryMax time.Duration

	mu    sync.Mutex
	state *state
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
	a := &Action{log: o.Logger, http: o.HTTPClient, now: o.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// As many idle connections per host as the reconcile runs calls at once: the
		// default two would make every extra call dial (and handshake) again.
		tr.MaxIdleConnsPerHost = cms.MaxIdleConnsPerHost
		a.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.retryMin, a.retryMax = o.MinRetryInterval, o.MaxRetryInterval
	return a
}

// state is what a warm container keeps for one configuration.
type state struct {
	key      string
	source   *cms.Client
	backup   *cms.Client
	verifier *cmcallback.Verifier
	engine   *replicate.Engine
}

func (a *Action) stateFor(cfg *config.Config) (*state, error) {
	key := cfg.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != nil && a.state.key == key {
		return a.state, nil
	}
	newClient := func(apikey string) (*cms.Client, error) {
		return cms.New(cms.Config{
			APIKey: apikey, IAMURL: cfg.IAMURL, Endpoints: cfg.Endpoints, Private: cfg.PrivateEndpoints,
			HTTPClient: a.http, Logger: a.log,
			MinRetryInterval: a.retryMin, MaxRetryInterval: a.retryMax,
		})
	}
	src, err := newClient(cfg.APIKey)
	if err != nil {
		return nil, err
	}
	bk := src
	if cfg.BackupAPIKey != "" {
		if bk, err = newClient(cfg.BackupAPIKey); err != nil {
			return nil, err
		}
	}
	sourceCRN := cfg.SourceInstanceCRN
	v, err := cmcallback.NewVerifier(cmcallback.Config{
		SourceInstanceCRN:  sourceCRN,
		StaticPublicKeyPEM: cfg.SourcePublicKey,
		Now:                a.now,
		Fetch: func(ctx context.Context) (string, error) {
			return src.PublicKey(ctx, sourceCRN)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrInvalid, &config.ParamError{Param: "source_public_key", Problem: err.Error()})
	}
	targets := make([]replicate.Target, len(cfg.BackupInstanceCRNs))
	for i, b := range cfg.BackupInstanceCRNs {
		targets[i] = replicate.Instance{Client: bk, CRN: b}
	}
	st := &state{
		key: key, source: src, backup: bk, verifier: v,
		engine: &replicate.Engine{
			Source:  replicate.Instance{Client: src, CRN: sourceCRN},
			Targets: targets,
			Logger:  a.log,
			Cache:   replicate.NewCopyCache(),
		},
	}
	a.state = st
	return st, nil
}

// Handle runs one activation and returns its result.
func (a *Action) Handle(ctx context.Context, meta Meta, params map[string]any) (result map[string]any) {
	start := a.now()
	log := a.log.With(slog.String("activation_id", meta.ActivationID))
	defer func() {
		if p := recover(); p != nil {
			// Never echo p: it could hold anything the code was touching. And never
			// answer a crash with an empty result: a web action would turn it into 204,
			// which Certificate Manager takes for a delivered notification.
			failure := map[string]any{"error": "internal", "message": "internal error in the action; see its logs"}
			if isWeb(params) || modeOf(params) == config.ModeNotify {
				result = web(http.StatusInternalServerError, failure)
			} else {
				result = map[string]any{"error": failure}
			}
			func() {
				defer func() { _ = recover() }() // the logger itself may be what failed
				log.Error("internal error", slog.String("panic_type", fmt.Sprintf("%T", p)))
			}()
		}
	}()
	cfg, err := config.Parse(params)
	if err != nil {
		log.Error("invalid configuration", slog.String("error", err.Error()))
		if isWeb(params) || modeOf(params) == config.ModeNotify {
			return web(http.StatusInternalServerError, map[string]any{"error": "configuration", "message": err.Error()})
		}
		return map[string]any{"error": map[string]any{"error": "configuration", "message": err.Error()}}
	}
	ctx, cancel := budget(ctx, meta.Deadline, a.now(), cfg.Mode)
	defer cancel()

	switch cfg.Mode {
	case config.ModeNotify:
		return a.notify(ctx, log, cfg, params, start)
	default:
		return a.reconcile(ctx, log, cfg)
	}
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

// web is the result of a web action with the .http extension.
func web(status int, body map[string]any) map[string]any {
	return map[string]any{
		"statusCode": status,
		"headers":    map[string]any{"Content-Type": "application/json"},
		"body":       body,
	}
}

// tokenFrom finds the JWT: the `data` parameter when the JSON body was merged into the
// parameters, else inside __ow_body (raw or non-JSON content types).
func tokenFrom(params map[string]any) (string, error) {
	if v, ok := params["data"]; ok {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: data must be a string", cmcallback.ErrMalformed)
		}
		if len(s) > cmcallback.MaxBodySize {
			return "", cmcallback.ErrTooLarge
		}
		if s == "" {
			return "", fmt.Errorf("%w: data is empty", cmcallback.ErrMalformed)
		}
		return s, nil
	}
	v, ok := params["__ow_body"]
	if !ok {
		return "", fmt.Errorf("%w: no data in the request", cmcallback.ErrMalformed)
	}
	var body []byte
	switch t := v.(type) {
	case string:
		if len(t) > 2*cmcallback.MaxBodySize {
			return "", cmcallback.ErrTooLarge
		}
		if dec, err := base64.StdEncoding.DecodeString(t); err == nil {
			body = dec
		} else {
			body = []byte(t)
		}
	case map[string]any, []any:
		b, err := json.Marshal(t)
		if err != nil {
			return "", fmt.Errorf("%w: unreadable body", cmcallback.ErrMalformed)
		}
		body = b
	default:
		return "", fmt.Errorf("%w: the body is not a JSON object", cmcallback.ErrMalformed)
	}
	return cmcallback.ExtractToken(body)
}

func (a *Action) notify(ctx context.Context, log *slog.Logger, cfg *config.Config, params map[string]any, start time.Time) map[string]any {
	token, err := tokenFrom(params)
	if err != nil {
		return a.rejected(log, err)
	}
	st, err := a.stateFor(cfg)
	if err != nil {
		log.Error("invalid configuration", slog.String("error", err.Error()))
		return web(http.StatusInternalServerError, map[string]any{"error": "configuration", "message": err.Error()})
	}
	n, err := st.verifier.Verify(ctx, token)
	if err != nil {
		return a.rejected(log, err)
	}
	log = log.With(slog.String("event_type", n.EventType), slog.String("instance_crn", n.InstanceCRN))
	body := map[string]any{"event_type": n.EventType, "instance_crn": n.InstanceCRN}
	switch cmcallback.Classify(n.EventType) {
	case cmcallback.Test:
		log.Info("test notification received")
		body["action"] = "test"
		body["message"] = "test notification verified; nothing to copy"
		return web(http.StatusOK, body)
	case cmcallback.AcknowledgeOnly:
		log.Info("notification acknowledged; no copy needed")
		body["action"] = "acknowledged"
		body["message"] = "this event does not change certificate material; nothing copied"
		return web(http.StatusOK, body)
	case cmcallback.Unknown:
		log.Warn("unknown event type acknowledged")
		body["action"] = "acknowledged"
		body["message"] = "unknown event type; acknowledged so that delivery never breaks, nothing copied"
		return web(http.StatusOK, body)
	}
	certs := n.CertificatesToCopy()
	// The engine's own lines carry this activation's id and event too; the copy shares
	// the container's cache of copy locations.
	eng := *st.engine
	eng.Logger = log
	var pairs []replicate.PairResult
	for _, c := range certs {
		log.Info("replicating", slog.String("source_crn", c.CRN))
		pairs = append(pairs, eng.ReplicateCertificate(ctx, c.CRN)...)
	}
	summary := map[string]int{}
	failed := false
	for _, p := range pairs {
		summary[string(p.Outcome)]++
		if p.Outcome == replicate.Failed {
			failed = true
		}
	}
	body["action"] = "replicate"
	body["results"] = pairs
	body["summary"] = summary
	body["duration_ms"] = a.now().Sub(start).Milliseconds()
	status := http.StatusOK
	if failed {
		status = http.StatusBadGateway
		body["message"] = "at least one copy failed; the periodic reconcile will retry it"
	} else {
		body["message"] = "every certificate is in every backup"
	}
	log.Info("notification handled", slog.Int("status", status), slog.Int("certificates", len(certs)), slog.Int("pairs", len(pairs)))
	return web(status, body)
}

func (a *Action) rejected(log *slog.Logger, err error) map[string]any {
	status := cmcallback.HTTPStatus(err)
	class := "rejected"
	switch {
	case errors.Is(err, cmcallback.ErrTooLarge):
		class = "too_large"
	case errors.Is(err, cmcallback.ErrBadSignature):
		class = "bad_signature"
	case errors.Is(err, cmcallback.ErrExpired):
		class = "expired"
	case errors.Is(err, cmcallback.ErrWrongInstance), errors.Is(err, cmcallback.ErrForeignCertificate):
		class = "forbidden"
	case errors.Is(err, cmcallback.ErrUnsupportedVersion):
		class = "unsupported_version"
	case errors.Is(err, cmcallback.ErrKeyUnavailable):
		class = "key_unavailable"
	case errors.Is(err, cmcallback.ErrMalformed):
		class = "malformed"
	}
	log.Warn("notification rejected", slog.Int("status", status), slog.String("reason", class), slog.String("error", err.Error()))
	return web(status, map[string]any{"error": class, "message": err.Error()})
}
