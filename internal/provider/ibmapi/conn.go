package ibmapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/certbackup/certbackup/internal/provider/retrypolicy"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// DefaultIAMURL is IBM Cloud IAM.
const DefaultIAMURL = "https://iam.cloud.ibm.com"

// MaxIdleConnsPerHost is the idle connections kept per host: the reconcile's largest
// concurrency (reconcile.MaxConcurrency). Fewer, and each extra connection is closed
// and redialled (a TLS handshake) every call.
const MaxIdleConnsPerHost = 64

// Defaults of Settings.
const (
	DefaultMaxRetries       = 3
	DefaultMinRetryInterval = 500 * time.Millisecond
	DefaultMaxRetryInterval = 10 * time.Second
	DefaultAttemptTimeout   = 30 * time.Second // per attempt, of the default HTTP client
)

func init() {
	// go-sdk-core logs through a process-wide logger; our own structured log says what
	// happened, so its free-text lines are switched off.
	core.SetLoggingLevel(core.LevelNone)
}

// Settings are what a client's configuration says about its connection.
type Settings struct {
	APIKey string
	// IAMURL defaults to DefaultIAMURL.
	IAMURL string
	// Endpoints are base URLs by region or instance CRN; each must pass
	// ValidateEndpoint.
	Endpoints map[string]string
	// HTTPClient carries IAM and every instance's requests. Nil: a pooled client with
	// a 30 s per-attempt timeout.
	HTTPClient *http.Client
	// MaxRetries per call and the backoff bounds (defaults 3, 500 ms .. 10 s).
	MaxRetries       int
	MinRetryInterval time.Duration
	MaxRetryInterval time.Duration
}

// Conn is a checked connection: its settings with the defaults filled in, the HTTP
// client and the IAM authenticator every service shares. It is safe for concurrent use.
type Conn struct {
	Settings
	Auth *core.IamAuthenticator
	HTTP *http.Client
}

// Dial checks s and builds the connection. It makes no call. Its errors name what is
// wrong and never quote a value (the key may have been pasted anywhere).
func Dial(s Settings) (*Conn, error) {
	if s.APIKey == "" {
		return nil, errors.New("an API key is required")
	}
	if s.IAMURL == "" {
		s.IAMURL = DefaultIAMURL
	}
	if err := ValidateEndpoint(s.IAMURL); err != nil {
		return nil, fmt.Errorf("IAM URL: %w", err)
	}
	for key, u := range s.Endpoints {
		if err := ValidateEndpoint(u); err != nil {
			return nil, fmt.Errorf("endpoint for %s: %w", key, err)
		}
	}
	s.MaxRetries = or(s.MaxRetries, DefaultMaxRetries)
	s.MinRetryInterval = or(s.MinRetryInterval, DefaultMinRetryInterval)
	s.MaxRetryInterval = or(s.MaxRetryInterval, DefaultMaxRetryInterval)
	hc := s.HTTPClient
	if hc == nil {
		hc = core.DefaultHTTPClient()
		hc.Timeout = DefaultAttemptTimeout
		if tr, ok := hc.Transport.(*http.Transport); ok {
			tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		}
	}
	atLeastTLS12(hc)
	auth, err := core.NewIamAuthenticatorBuilder().
		SetApiKey(s.APIKey).
		SetURL(strings.TrimRight(s.IAMURL, "/")).
		SetClient(hc).
		Build()
	if err != nil {
		// The builder's message may quote the key; keep only our own words.
		return nil, errors.New("the API key is not valid for IAM (empty or quoted)")
	}
	return &Conn{Settings: s, Auth: auth, HTTP: hc}, nil
}

// atLeastTLS12 does to hc's transport what go-sdk-core's SetHTTPClient does, which it
// cannot do through a wrapping transport (Secrets Manager's rate limit): TLS 1.2 at least,
// before any request (the IAM token's included).
func atLeastTLS12(hc *http.Client) {
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		return
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else if tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Retrying makes svc send through hc (the connection's client, or one wrapping its
// transport) with go-sdk-core's retries, bounded by the settings and decided by check
// (retrypolicy.Check when nil), so that a create is never resent blindly.
func (c *Conn) Retrying(svc *core.BaseService, hc *http.Client, check retryablehttp.CheckRetry) {
	if check == nil {
		check = retrypolicy.Check
	}
	svc.EnableRetries(c.MaxRetries, c.MaxRetryInterval)
	svc.SetHTTPClient(hc)
	if rt, ok := svc.Client.Transport.(*retryablehttp.RoundTripper); ok {
		rt.Client.RetryWaitMin = c.MinRetryInterval
		rt.Client.CheckRetry = check
	}
}

// Token gets (or reuses) the IAM token, bounded by ctx: go-sdk-core's token request
// ignores the context, so it runs in a goroutine that the caller stops waiting for
// when its deadline comes. A failure is an *Error for service (not sent: the call it
// was for never left); the caller sets its Op and CRN.
func (c *Conn) Token(ctx context.Context, service string) *Error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Auth.GetToken()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		return tokenError(service, err)
	case <-ctx.Done():
		return &Error{Service: service, Op: "authenticate", Retryable: true, Err: ctx.Err(), NotSent: true, Message: "waiting for an IAM token"}
	}
}

// tokenError is IAM's refusal (its own error shape: errorCode, errorMessage) or the
// kind of network failure.
func tokenError(service string, err error) *Error {
	e := &Error{Service: service, Op: "authenticate", Retryable: true, NotSent: true, Message: "IAM did not issue a token"}
	var ae *core.AuthenticationError
	if !errors.As(err, &ae) || ae.Response == nil {
		e.Err = errors.New("the IAM token request failed (network)")
		return e
	}
	status := ae.Response.StatusCode
	e.StatusCode, e.Retryable = status, RetryableStatus(status)
	// IAM answers 400 to an API key it does not know: the credentials are refused.
	e.Forbidden = status >= 400 && status < 500 && status != http.StatusTooManyRequests
	if m, ok := ae.Response.Result.(map[string]any); ok {
		if code, ok := m["errorCode"].(string); ok {
			e.Code = safeerr.Message(code)
		}
		if msg, ok := m["errorMessage"].(string); ok {
			e.Message = "IAM: " + safeerr.Message(msg)
		}
	}
	return e
}

// ValidateEndpoint accepts https URLs, and http only on a loopback address, so that a
// misconfiguration can never send the API key or a token in clear over a network.
func ValidateEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("it is not an absolute URL")
	}
	if u.User != nil {
		return errors.New("the URL must not carry credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("it uses http on a non-loopback host; only https is allowed there")
	default:
		return errors.New("its scheme must be https")
	}
}
