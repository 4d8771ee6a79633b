// Package secretsmanager is certbackup's provider for IBM Cloud Secrets Manager (API
// v2): a source of certificates (imported_cert, public_cert, private_cert) and a backup
// that holds copies as imported_cert secrets. It is built on IBM's Go SDK
// (secrets-manager-go-sdk/v2) and go-sdk-core's IAM authenticator; Instance adapts one
// instance to engine.Source and engine.Target.
//
// Every call is bounded by a deadline, spaced by a per-instance rate limit (retries
// included), retried by go-sdk-core when that is safe, and never resent when it creates
// something (a secret, a version) unless the service answered 429: see operation.
//
// It must never put a private key, an API key or a bearer token in an error or a log
// line: errors are *Error values built from status codes and filtered messages, and
// certificate material travels in engine.Material, whose every printed form is
// redacted. The facts it relies on are in docs/services/secrets-manager.md, "What the
// provider relies on".
package secretsmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	sm "github.com/IBM/secrets-manager-go-sdk/v2/secretsmanagerv2"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
	"github.com/certbackup/certbackup/internal/provider/retrypolicy"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// Defaults of Config.
const (
	DefaultIAMURL            = ibmapi.DefaultIAMURL
	DefaultRequestsPerSecond = 20 // IBM: "keep the rate below 20 req/s" per instance
	DefaultSecretGroup       = "default"
	DefaultTimeout           = 2 * time.Minute // a call's deadline when its context has none
)

// PageSize is the page size of a listing: the API's largest.
const PageSize = 1000

// maxOffset is the API's largest list offset.
const maxOffset = 10_000_000

// listAttempts bounds how many times a listing starts over because the instance
// changed under it.
const listAttempts = 3

// Config configures a Client.
type Config struct {
	APIKey string
	// IAMURL defaults to DefaultIAMURL.
	IAMURL string
	// Endpoints overrides an instance's base URL (the part before /api/v2): keyed by
	// the instance CRN (compared as instance identities; wins), else by its region.
	// Values are https URLs, or http on a loopback address only.
	Endpoints map[string]string
	// Private selects https://<guid>.private.<region>.secrets-manager.appdomain.cloud
	// over https://<guid>.<region>.secrets-manager.appdomain.cloud.
	Private bool
	// HTTPClient carries IAM and every instance's requests (its transport is shared,
	// so a warm process reuses connections). Nil: a pooled client with a 30 s
	// per-attempt timeout.
	HTTPClient *http.Client
	// Logger receives one debug line per call (operation, CRN, status, attempts,
	// duration); never material or credentials.
	Logger *slog.Logger
	// MaxRetries per call (default 3) and the backoff bounds (default 500 ms .. 10 s).
	// A Retry-After longer than what is left of the deadline is not waited for: the
	// call fails at once with a rate-limited error instead.
	MaxRetries       int
	MinRetryInterval time.Duration
	MaxRetryInterval time.Duration
	// RequestsPerSecond per instance (default 20), for every request including
	// retries; see jitterAllowance for the margin kept below it.
	RequestsPerSecond int
	// SecretGroup is the NAME of the secret group copies are imported into (default
	// "default", the instance's default group).
	SecretGroup string
}

// Client talks to any number of Secrets Manager instances with one API key. It is safe
// for concurrent use.
type Client struct {
	cfg  Config
	conn *ibmapi.Conn
	log  *slog.Logger
	now  func() time.Time

	mu        sync.Mutex
	instances map[crn.Instance]*instanceState
	fresh     freshLabels // the labels of copies just created, for the proof's patch
}

// instanceState is what the client keeps per instance: its SDK service, its rate
// limit and the id of the configured secret group once looked up.
type instanceState struct {
	svc *sm.SecretsManagerV2
	lim *limiter

	groupMu sync.Mutex
	groupID string
}

// New checks cfg and builds a client. It makes no call.
func New(cfg Config) (*Client, error) {
	if cfg.RequestsPerSecond < 0 {
		return nil, errors.New("secretsmanager: RequestsPerSecond must not be negative")
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if cfg.SecretGroup == "" {
		cfg.SecretGroup = DefaultSecretGroup
	}
	conn, err := ibmapi.Dial(ibmapi.Settings{
		APIKey: cfg.APIKey, IAMURL: cfg.IAMURL, Endpoints: cfg.Endpoints, HTTPClient: cfg.HTTPClient,
		MaxRetries: cfg.MaxRetries, MinRetryInterval: cfg.MinRetryInterval, MaxRetryInterval: cfg.MaxRetryInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("secretsmanager: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, conn: conn, log: log, now: time.Now, instances: map[crn.Instance]*instanceState{}}, nil
}

// SecretGroup is the name of the group copies go into.
func (c *Client) SecretGroup() string { return c.cfg.SecretGroup }

// BaseURL is the base URL of the instance of instanceOrSecret (an instance or a
// secret CRN): the override for its instance CRN, else for its region, else IBM
// Cloud's public or private URL.
func (c *Client) BaseURL(instanceOrSecret string) (string, error) {
	p, err := crn.ParseSecretsManager(instanceOrSecret)
	if err != nil {
		return "", err
	}
	inst := p.InstanceCRN().String()
	for key, u := range c.cfg.Endpoints {
		if !crn.IsRegion(key) && crn.SameInstanceCRN(key, inst) {
			return strings.TrimRight(u, "/"), nil
		}
	}
	if u, ok := c.cfg.Endpoints[p.Region]; ok {
		return strings.TrimRight(u, "/"), nil
	}
	// The GUID becomes a host name label: only a UUID is accepted there.
	if !crn.IsSecretID(p.Instance) {
		return "", fmt.Errorf("%w: the instance id is not a UUID, so no URL can be built from it", crn.ErrInvalid)
	}
	guid := strings.ToLower(p.Instance)
	if c.cfg.Private {
		return "https://" + guid + ".private." + p.Region + ".secrets-manager.appdomain.cloud", nil
	}
	return "https://" + guid + "." + p.Region + ".secrets-manager.appdomain.cloud", nil
}

// state returns the client's state for the instance, made on first use.
func (c *Client) state(instance string) (*instanceState, error) {
	id, err := crn.ParseAnyInstance(instance)
	if err != nil {
		return nil, err
	}
	if id.Service != crn.SecretsManagerServiceName {
		return nil, fmt.Errorf("%w: not a Secrets Manager instance", crn.ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.instances[id]; ok {
		return st, nil
	}
	base, err := c.BaseURL(instance)
	if err != nil {
		return nil, err
	}
	svc, err := sm.NewSecretsManagerV2(&sm.SecretsManagerV2Options{URL: base, Authenticator: c.conn.Auth})
	if err != nil {
		return nil, errors.New("the SDK refused the instance's base URL")
	}
	lim := newLimiter(c.cfg.RequestsPerSecond)
	c.conn.Retrying(svc.Service, c.limitedClient(lim), checkRetry)
	st := &instanceState{svc: svc, lim: lim}
	c.instances[id] = st
	return st, nil
}

// limitedClient is the configured HTTP client with every request (each attempt) going
// through lim first. It shares the configured client's transport and connections.
func (c *Client) limitedClient(lim *limiter) *http.Client {
	hc := c.conn.HTTP
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{
		Transport:     &limitedTransport{base: base, lim: lim},
		Timeout:       hc.Timeout,
		CheckRedirect: hc.CheckRedirect,
		Jar:           hc.Jar,
	}
}

// operation is one kind of API call. Whether it may be resent after a failure is a
// property of the operation (creates), not of its name: an operation that creates
// something is never resent blindly, whatever it is called.
type operation struct {
	name    string // for errors and logs
	role    string // the least IAM service role it needs, named when it is refused
	creates bool   // a second send could create a second secret or version
}

var (
	opList     = operation{"list", "Reader", false}
	opMetadata = operation{"metadata", "Reader", false}
	opGroups   = operation{"groups", "Reader", false}
	opDownload = operation{"download", "SecretsReader", false}
	opImport   = operation{"import", "Writer", true}
	opReimport = operation{"reimport", "Writer", true}
	opUpdate   = operation{"update", "Writer", false}
	opDelete   = operation{"delete", "Manager", false}
)

// checkRetry is the providers' retry policy (retrypolicy.Check), and a request the
// rate limit could not send in time is not tried again.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, errRateWait) {
		return false, nil
	}
	return retrypolicy.Check(ctx, resp, err)
}

// sdkCall is one SDK method call; it returns the SDK's response and error.
type sdkCall func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error)

// do runs one operation against instance; subject (the instance or the secret CRN)
// names it in errors and logs.
func (c *Client) do(ctx context.Context, op operation, instance, subject string, call sdkCall) error {
	start := time.Now()
	tr := &trace{}
	status, err := c.doOnce(ctx, op, instance, subject, tr, call)
	attempts, _ := tr.read()
	c.log.LogAttrs(ctx, slog.LevelDebug, "secrets manager call",
		slog.String("op", op.name), slog.String("crn", subject), slog.Int("status", status),
		slog.Int("attempts", attempts), slog.Duration("duration", time.Since(start)), slog.Bool("ok", err == nil))
	return err
}

func (c *Client) doOnce(ctx context.Context, op operation, instance, subject string, tr *trace, call sdkCall) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Every call is bounded: an operator's terminal run without a deadline gets one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	st, err := c.state(instance)
	if err != nil {
		return 0, notSent(op, subject, err, "")
	}
	if err := c.conn.Token(ctx, service); err != nil {
		err.Op, err.CRN = op.name, subject
		return err.StatusCode, err
	}
	ctx = withTrace(ctx, tr)
	if op.creates {
		ctx = retrypolicy.Creating(ctx)
	}
	resp, err := call(ctx, st.svc)
	if err == nil {
		if resp == nil {
			return 0, nil
		}
		return resp.StatusCode, nil
	}
	e := c.classify(ctx, op, subject, tr, resp, err)
	return e.StatusCode, e
}

// classify turns a failed SDK call into an *Error.
func (c *Client) classify(ctx context.Context, op operation, subject string, tr *trace, resp *core.DetailedResponse, err error) *Error {
	attempts, acted := tr.read()
	e := apiError(op, subject)
	switch {
	case resp != nil && resp.StatusCode >= 200 && resp.StatusCode < 300:
		return e.Undecodable(resp.StatusCode, op.creates)
	case resp != nil && resp.StatusCode != 0:
		e.StatusCode = resp.StatusCode
		e.Retryable = ibmapi.RetryableStatus(resp.StatusCode)
		e.RetryAfter = retrypolicy.RetryAfter(resp.Headers)
		e.Ambiguous = op.creates && acted
		e.Code, e.Message = serviceMessage(resp.Result)
		if id := resp.Headers.Get("X-Correlation-Id"); id != "" && e.Message != "" {
			e.Message += " (trace " + sanitize(id) + ")"
		}
	default:
		e.Retryable = true
		e.NotSent = attempts == 0
		e.Ambiguous = op.creates && acted
		switch {
		case errors.Is(err, errRateWait):
			e.Err = safeerr.Own(fmt.Errorf("%w: %w", errRateWait, context.DeadlineExceeded))
		case ctx.Err() != nil:
			e.Err = ctx.Err()
		default:
			// Go's transport errors quote the host and URL, which may hold what an
			// operator pasted into the configuration: keep only their kind.
			e.Err = safeerr.NetworkError(err)
		}
	}
	return e
}

// serviceMessage reads the error code and message of an error body: the IBM API
// handbook's errors[0], else the first of error, message, errorMessage.
func serviceMessage(result any) (code, message string) {
	m, ok := result.(map[string]any)
	if !ok {
		return "", ""
	}
	if list, ok := m["errors"].([]any); ok && len(list) > 0 {
		if first, ok := list[0].(map[string]any); ok {
			code, _ = first["code"].(string)
			message, _ = first["message"].(string)
			return sanitize(code), sanitize(message)
		}
	}
	for _, k := range []string{"error", "message", "errorMessage"} {
		if s, ok := m[k].(string); ok {
			return "", sanitize(s)
		}
	}
	return "", ""
}
