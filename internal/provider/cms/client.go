// Package cms is a client for the IBM Cloud Certificate Manager REST API, built on
// go-sdk-core (IAM authentication, requests, retries) with the real paths: mixed API
// versions per operation and each CRN escaped as one path segment.
//
// It must never put a private key, an API key or a bearer token in an error or a log
// line: errors are *Error values built from status codes and filtered messages, and
// certificate material travels in Data, whose every printed form is redacted.
package cms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
	"github.com/certbackup/certbackup/internal/provider/retrypolicy"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// DefaultIAMURL is IBM Cloud IAM.
const DefaultIAMURL = ibmapi.DefaultIAMURL

// PageSize is the page size the list operation asks for (what IBM's own clients use).
const PageSize = 200

// maxPages bounds a listing: 1000 certificates per instance is 5 pages of 200; a
// cursor that never ends is a service bug that must not become an endless loop.
const maxPages = 50

// Config configures a Client.
type Config struct {
	APIKey string
	// IAMURL defaults to DefaultIAMURL.
	IAMURL string
	// Endpoints overrides the base URL per region (region → URL); others use
	// https://{region}.certificate-manager.cloud.ibm.com.
	Endpoints map[string]string
	// Private selects https://private.{region}.certificate-manager.cloud.ibm.com.
	Private bool
	// HTTPClient is shared by IAM and every region, so that a warm container reuses
	// its connections. Nil: a pooled client with a 30 s per-attempt timeout.
	HTTPClient *http.Client
	// MaxRetries per call (default 3) and the backoff bounds (default 500 ms .. 10 s).
	// A Retry-After longer than what is left of the context's deadline is not waited
	// for: the call fails at once with a retryable error instead.
	MaxRetries       int
	MinRetryInterval time.Duration
	MaxRetryInterval time.Duration
	// Logger receives one debug line per call (operation, CRN, status, duration).
	Logger *slog.Logger
}

// Client talks to Certificate Manager instances in any region with one API key.
// It is safe for concurrent use.
type Client struct {
	cfg  Config
	conn *ibmapi.Conn
	log  *slog.Logger

	mu       sync.Mutex
	services map[string]*core.BaseService // base URL → service
}

// New checks cfg and builds a client. It makes no call.
func New(cfg Config) (*Client, error) {
	conn, err := ibmapi.Dial(ibmapi.Settings{
		APIKey: cfg.APIKey, IAMURL: cfg.IAMURL, Endpoints: cfg.Endpoints, HTTPClient: cfg.HTTPClient,
		MaxRetries: cfg.MaxRetries, MinRetryInterval: cfg.MinRetryInterval, MaxRetryInterval: cfg.MaxRetryInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, conn: conn, log: log, services: map[string]*core.BaseService{}}, nil
}

// BaseURL is the API base URL of instanceOrCert: the override for its instance CRN,
// else the override for its region, else the region's IBM Cloud URL.
func (c *Client) BaseURL(instanceOrCert string) (string, error) {
	parsed, err := crn.Parse(instanceOrCert)
	if err != nil {
		return "", err
	}
	for key, u := range c.cfg.Endpoints {
		if !crn.IsRegion(key) && crn.SameInstanceCRN(key, parsed.InstanceCRN().String()) {
			return strings.TrimRight(u, "/"), nil
		}
	}
	return c.baseURLForRegion(parsed.Region), nil
}

func (c *Client) baseURLForRegion(region string) string {
	if u, ok := c.cfg.Endpoints[region]; ok {
		return strings.TrimRight(u, "/")
	}
	if c.cfg.Private {
		return "https://private." + region + ".certificate-manager.cloud.ibm.com"
	}
	return "https://" + region + ".certificate-manager.cloud.ibm.com"
}

func (c *Client) service(base string) (*core.BaseService, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.services[base]; ok {
		return s, nil
	}
	s, err := core.NewBaseService(&core.ServiceOptions{URL: base, Authenticator: c.conn.Auth})
	if err != nil {
		return nil, fmt.Errorf("cms: service for %s: %w", base, err)
	}
	c.conn.Retrying(s, c.conn.HTTP, nil)
	c.services[base] = s
	return s, nil
}

// operation is one kind of API call. Whether it may be resent after a failure is a
// property of the operation (creates), not of its name: an operation that creates
// something is never resent blindly, whatever it is called.
type operation struct {
	name    string // for errors and logs
	method  string
	creates bool // a second send could create a second resource
}

var (
	opList           = operation{"list", http.MethodGet, false}
	opDownload       = operation{"download", http.MethodGet, false}
	opMetadata       = operation{"metadata", http.MethodGet, false}
	opImport         = operation{"import", http.MethodPost, true}
	opReimport       = operation{"reimport", http.MethodPut, false}
	opUpdate         = operation{"update", http.MethodPost, false}
	opDelete         = operation{"delete", http.MethodDelete, false}
	opPublicKey      = operation{"publickey", http.MethodGet, false}
	opChannelsList   = operation{"channels.list", http.MethodGet, false}
	opChannelsCreate = operation{"channels.create", http.MethodPut, true}
	opChannelsTest   = operation{"channels.test", http.MethodPost, false}
)

// call is one API operation. path is built by the caller with crn.PathEscape so that
// ':' and '/' inside a CRN travel as %3A and %2F, one path segment.
type call struct {
	op     operation
	crn    string
	path   string
	query  url.Values
	body   any
	noAuth bool
}

func (c *Client) do(ctx context.Context, k call, result any) error {
	start := time.Now()
	status, err := c.doOnce(ctx, k, result)
	c.log.LogAttrs(ctx, slog.LevelDebug, "certificate manager call",
		slog.String("op", k.op.name), slog.String("crn", k.crn), slog.Int("status", status),
		slog.Duration("duration", time.Since(start)), slog.Bool("ok", err == nil))
	return err
}

func (c *Client) doOnce(ctx context.Context, k call, result any) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Every call is bounded: an operator's terminal run without a deadline gets one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	base, err := c.BaseURL(k.crn)
	if err != nil {
		return 0, notSent(k.op.name, k.crn, err)
	}
	if !k.noAuth {
		if err := c.conn.Token(ctx, service); err != nil {
			return err.StatusCode, err
		}
	}
	if k.op.creates {
		ctx = retrypolicy.Creating(ctx)
	}
	u, err := url.Parse(base + k.path)
	if err != nil {
		return 0, notSent(k.op.name, k.crn, err)
	}
	rb := core.NewRequestBuilder(k.op.method).WithContext(ctx)
	rb.URL = u
	rb.AddHeader("Accept", "application/json")
	for name, vals := range k.query {
		for _, v := range vals {
			rb.AddQuery(name, v)
		}
	}
	if k.body != nil {
		if _, err := rb.SetBodyContentJSON(k.body); err != nil {
			return 0, notSent(k.op.name, k.crn, errors.New("encode request body"))
		}
		// go-sdk-core does not set it by itself, and the service rejects JSON without it.
		rb.AddHeader("Content-Type", "application/json")
	}
	req, err := rb.Build()
	if err != nil {
		return 0, notSent(k.op.name, k.crn, errors.New("build request"))
	}
	var svc *core.BaseService
	if k.noAuth {
		svc, err = c.noAuthService(base)
	} else {
		svc, err = c.service(base)
	}
	if err != nil {
		return 0, notSent(k.op.name, k.crn, err)
	}
	// Decode straight into the result (a 1000-certificate listing is five pages of
	// 200: decoding twice was most of the client's cost). Without a result the body is
	// still read, so that the connection can be reused. A *rawBody gets the body of a
	// 2xx response as bytes: go-sdk-core hands an *io.ReadCloser over unread, and it is
	// read here, within the call's context.
	target := result
	raw, wantRaw := result.(*rawBody)
	var body io.ReadCloser
	switch {
	case wantRaw:
		target = &body
	case target == nil:
		var discard json.RawMessage
		target = &discard
	}
	resp, err := svc.Request(req, target)
	if err != nil {
		if resp != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp.StatusCode, errUndecodable(k.op, k.crn, resp.StatusCode)
		}
		return c.classify(ctx, k, resp, err)
	}
	if wantRaw {
		raw.contentType = resp.Headers.Get("Content-Type")
		if body != nil {
			raw.data, err = io.ReadAll(body)
			_ = body.Close()
			if err != nil {
				// As when go-sdk-core reads it: a 2xx whose body could not be read.
				return resp.StatusCode, errUndecodable(k.op, k.crn, resp.StatusCode)
			}
		}
	}
	return resp.StatusCode, nil
}

// errUndecodable: the service answered 2xx, so it did what was asked, and the answer
// cannot be read (a create happened: the caller must look for it).
func errUndecodable(op operation, crn string, status int) *Error {
	return apiError(op.name, crn).Undecodable(status, op.creates)
}

// rawBody is a result for doOnce that receives a 2xx response's body undecoded.
type rawBody struct {
	data        []byte
	contentType string
}

// decode decodes the body into v as go-sdk-core would: an empty body leaves v as it
// is, and a body that is not JSON (by Content-Type or content) is an error; so is
// data after the JSON value, which go-sdk-core's decoder would ignore.
func (b *rawBody) decode(op operation, crn string, v any) error {
	if len(b.data) == 0 {
		return nil
	}
	if !core.IsJSONMimeType(b.contentType) || json.Unmarshal(b.data, v) != nil {
		return errUndecodable(op, crn, 0)
	}
	return nil
}

// noAuthService is for the public key endpoint, which IBM's samples call without any
// Authorization header: sending a token there would only widen its exposure.
func (c *Client) noAuthService(base string) (*core.BaseService, error) {
	key := "noauth:" + base
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.services[key]; ok {
		return s, nil
	}
	na, _ := core.NewNoAuthAuthenticator()
	s, err := core.NewBaseService(&core.ServiceOptions{URL: base, Authenticator: na})
	if err != nil {
		return nil, err
	}
	c.conn.Retrying(s, c.conn.HTTP, nil)
	c.services[key] = s
	return s, nil
}

func (c *Client) classify(ctx context.Context, k call, resp *core.DetailedResponse, err error) (int, error) {
	e := apiError(k.op.name, k.crn)
	if resp == nil || resp.StatusCode == 0 {
		e.Retryable = true
		e.Ambiguous = k.op.creates // sent, and no answer came back
		if ctxErr := ctx.Err(); ctxErr != nil {
			e.Err = ctxErr
		} else {
			// Go's transport errors quote the host and URL, which may hold what an
			// operator pasted into the configuration: keep only their kind.
			e.Err = safeerr.NetworkError(err)
		}
		return 0, e
	}
	e.StatusCode = resp.StatusCode
	e.Retryable = ibmapi.RetryableStatus(resp.StatusCode)
	e.Ambiguous = k.op.creates && resp.StatusCode >= 500
	e.RetryAfter = retrypolicy.RetryAfter(resp.Headers)
	if m, ok := resp.Result.(map[string]any); ok {
		if msg, ok := m["message"].(string); ok {
			e.Message = safeerr.Message(msg)
		}
		switch code := m["code"].(type) {
		case string:
			e.Code = safeerr.Message(code)
		case float64:
			e.Code = strconv.FormatFloat(code, 'f', -1, 64)
		}
	}
	return resp.StatusCode, e
}

func instancePath(version, instance, rest string) string {
	return "/api/" + version + "/" + crn.PathEscape(instance) + rest
}

func certPath(version, cert, rest string) string {
	return "/api/" + version + "/certificate/" + crn.PathEscape(cert) + rest
}

func notificationsPath(instance, rest string) string {
	return "/api/v1/instances/" + crn.PathEscape(instance) + "/notifications" + rest
}

// ListCertificates returns the metadata of every certificate of the instance,
// following the paging cursor until the last page. Each certificate appears once: the
// listing is ordered by a field that changes (expires_on), so a certificate renewed
// while the pages are read can come back on a later page too; its later, more recent
// entry wins, in the place of the first.
func (c *Client) ListCertificates(ctx context.Context, instance string) ([]Certificate, error) {
	var all []Certificate
	at := map[string]int{}
	err := c.ListCertificatePages(ctx, instance, func(page []Certificate) error {
		for _, cert := range page {
			if i, seen := at[cert.ID]; seen {
				all[i] = cert
				continue
			}
			at[cert.ID] = len(all)
			all = append(all, cert)
		}
		return nil
	})
	return all, err
}

// ListCertificatePages calls fn with each page of the listing, in order. A page's
// request is sent while the page before it is decoded and handed to fn (see
// peekCursor), so that decoding is off the listing's critical path, which is one round
// trip per page. When fn fails, or ctx ends, the request in flight is cancelled and
// waited for before ListCertificatePages returns.
func (c *Client) ListCertificatePages(ctx context.Context, instance string, fn func([]Certificate) error) error {
	if _, err := crn.ParseInstance(instance); err != nil {
		return notSent("list", instance, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := c.fetchPage(ctx, instance, "", "")
	defer func() {
		if next != nil {
			next.cancel()
			<-next.done
		}
	}()
	seen := map[string]bool{}
	for page := 0; ; page++ {
		body, err := next.wait()
		next = nil
		if err != nil {
			return err
		}
		// Ask for the next page at once, with the cursor as this page's body gives it
		// before decoding, under the same guards as the decoded cursor below.
		peekDoc, peekOrder, peeked := peekCursor(body)
		if peeked && (peekDoc != "" || peekOrder != "") && !seen[peekDoc+"\x00"+peekOrder] && page+1 < maxPages {
			next = c.fetchPage(ctx, instance, peekDoc, peekOrder)
		}
		var p listPage
		if err := body.decode(opList, instance, &p); err != nil {
			return err
		}
		docID, orderBy := p.NextPageInfo.StartWithDocID, p.NextPageInfo.StartWithOrderByValue
		if next != nil && (docID != peekDoc || orderBy != peekOrder) {
			// The peek was wrong (a certificate holding a "nextPageInfo" of its own):
			// that request is dropped and the decoded cursor is followed.
			next.cancel()
			<-next.done
			next = nil
		}
		if err := fn(p.Certificates); err != nil {
			return err
		}
		if docID == "" && orderBy == "" {
			return nil
		}
		cursor := docID + "\x00" + orderBy
		if seen[cursor] {
			return unusable("list", instance, "the paging cursor repeated itself")
		}
		seen[cursor] = true
		if page+1 >= maxPages {
			return unusable("list", instance, fmt.Sprintf("more than %d pages", maxPages))
		}
		if next == nil {
			next = c.fetchPage(ctx, instance, docID, orderBy)
		}
	}
}

// pageFetch is one list request running in its own goroutine.
type pageFetch struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the call has returned
	body   rawBody
	err    error
}

// fetchPage sends the list request for the page after the cursor (the first page
// without one) in a goroutine; wait, or cancel and receive from done, before
// returning.
func (c *Client) fetchPage(ctx context.Context, instance, docID, orderBy string) *pageFetch {
	q := url.Values{"page_size": {strconv.Itoa(PageSize)}}
	if docID != "" || orderBy != "" {
		q.Set("start_from_document_id", docID)
		q.Set("start_from_orderby_value", orderBy)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &pageFetch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = c.do(ctx, call{op: opList, crn: instance, path: instancePath("v3", instance, "/certificates"), query: q}, &f.body)
	}()
	return f
}

func (f *pageFetch) wait() (*rawBody, error) {
	<-f.done
	f.cancel()
	return &f.body, f.err
}

var nextPageInfoKey = []byte(`"nextPageInfo"`)

// peekCursor reads the cursor of a list page without decoding the page: the object
// after the last "nextPageInfo" key, about a microsecond where decoding 200
// certificates takes a millisecond (and decoding into a struct of the cursor alone,
// which still scans the whole body twice, half of that). It is a guess: the key could
// also be a field of a certificate, or be spelled otherwise; the caller compares it
// with the decoded cursor.
func peekCursor(b *rawBody) (docID, orderBy string, ok bool) {
	i := bytes.LastIndex(b.data, nextPageInfoKey)
	if i < 0 {
		return "", "", false
	}
	rest := bytes.TrimLeft(b.data[i+len(nextPageInfoKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return "", "", false
	}
	var npi struct {
		StartWithDocID        string `json:"startWithDocId"`
		StartWithOrderByValue string `json:"startWithOrderByValue"`
	}
	if err := json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&npi); err != nil {
		return "", "", false
	}
	return npi.StartWithDocID, npi.StartWithOrderByValue, true
}

// Download returns a certificate with its data (certificate, private key, intermediate).
func (c *Client) Download(ctx context.Context, cert string) (*CertificateWithData, error) {
	if _, err := crn.ParseCertificate(cert); err != nil {
		return nil, notSent("download", cert, err)
	}
	var out CertificateWithData
	if err := c.do(ctx, call{op: opDownload, crn: cert, path: certPath("v2", cert, "")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Metadata returns a certificate's metadata only.
func (c *Client) Metadata(ctx context.Context, cert string) (*Certificate, error) {
	if _, err := crn.ParseCertificate(cert); err != nil {
		return nil, notSent("metadata", cert, err)
	}
	var out Certificate
	if err := c.do(ctx, call{op: opMetadata, crn: cert, path: certPath("v1", cert, "/metadata")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Import creates a certificate in the instance.
func (c *Client) Import(ctx context.Context, instance string, req ImportRequest) (*Certificate, error) {
	if _, err := crn.ParseInstance(instance); err != nil {
		return nil, notSent("import", instance, err)
	}
	var out Certificate
	if err := c.do(ctx, call{op: opImport, crn: instance, path: instancePath("v3", instance, "/certificates/import"), body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reimport replaces a certificate's material in place; the service keeps the previous
// version.
func (c *Client) Reimport(ctx context.Context, cert string, data Data) (*Certificate, error) {
	if _, err := crn.ParseCertificate(cert); err != nil {
		return nil, notSent("reimport", cert, err)
	}
	var out Certificate
	if err := c.do(ctx, call{op: opReimport, crn: cert, path: certPath("v1", cert, ""), body: data}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateMetadata sets a certificate's name and description.
func (c *Client) UpdateMetadata(ctx context.Context, cert, name, description string) error {
	if _, err := crn.ParseCertificate(cert); err != nil {
		return notSent("update", cert, err)
	}
	body := map[string]string{"name": name, "description": description}
	return c.do(ctx, call{op: opUpdate, crn: cert, path: certPath("v3", cert, ""), body: body}, nil)
}

// Delete deletes a certificate.
func (c *Client) Delete(ctx context.Context, cert string) error {
	if _, err := crn.ParseCertificate(cert); err != nil {
		return notSent("delete", cert, err)
	}
	return c.do(ctx, call{op: opDelete, crn: cert, path: certPath("v2", cert, "")}, nil)
}

// PublicKey returns the instance's notification public key as PEM. The endpoint is
// called without a token, as IBM's samples do.
func (c *Client) PublicKey(ctx context.Context, instance string) (string, error) {
	if _, err := crn.ParseInstance(instance); err != nil {
		return "", notSent("publickey", instance, err)
	}
	var out publicKeyResponse
	q := url.Values{"keyFormat": {"pem"}}
	if err := c.do(ctx, call{op: opPublicKey, crn: instance, path: notificationsPath(instance, "/publicKey"), query: q, noAuth: true}, &out); err != nil {
		return "", err
	}
	if out.PublicKey == "" {
		return "", unusable("publickey", instance, "the response holds no publicKey")
	}
	return out.PublicKey, nil
}

// ListChannels lists the instance's notification channels.
func (c *Client) ListChannels(ctx context.Context, instance string) ([]Channel, error) {
	if _, err := crn.ParseInstance(instance); err != nil {
		return nil, notSent("channels.list", instance, err)
	}
	var out []Channel
	if err := c.do(ctx, call{op: opChannelsList, crn: instance, path: notificationsPath(instance, "/channels")}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateChannel adds a notification channel. The method (PUT) is the one IBM documented
// in 2018; the current API reference could not be read (docs/services/certificate-manager.md §2.2, §7).
func (c *Client) CreateChannel(ctx context.Context, instance string, ch Channel) (*Channel, error) {
	if _, err := crn.ParseInstance(instance); err != nil {
		return nil, notSent("channels.create", instance, err)
	}
	body := map[string]any{"type": ch.Type, "endpoint": ch.Endpoint, "is_active": ch.IsActive}
	var out Channel
	if err := c.do(ctx, call{op: opChannelsCreate, crn: instance, path: notificationsPath(instance, "/channels"), body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestChannel asks the instance to send test_notification_channel to a channel. The
// path is an assumption (UNVERIFIED: docs/services/certificate-manager.md §2.2); callers fall back to telling
// the operator to press "Test Connection" in the console.
func (c *Client) TestChannel(ctx context.Context, instance, channelID string) error {
	if _, err := crn.ParseInstance(instance); err != nil {
		return notSent("channels.test", instance, err)
	}
	if channelID == "" || strings.ContainsAny(channelID, "/?#") {
		return notSent("channels.test", instance, errors.New("invalid channel id"))
	}
	return c.do(ctx, call{op: opChannelsTest, crn: instance, path: notificationsPath(instance, "/channels/"+url.PathEscape(channelID)+"/test")}, nil)
}
