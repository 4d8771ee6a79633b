package cmsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simfault"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
)

// Error codes of 4xx bodies. docs/services/certificate-manager.md §13 documents the
// {message, code} shape but no code values, so these are the simulator's own.
const (
	codeBadRequest         = "bad_request"
	codeInvalidCRN         = "invalid_crn"
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeUnsupportedMedia   = "unsupported_media_type"
	codeTooLarge           = "payload_too_large"
	codeRateLimited        = "rate_limit_exceeded"
	codeLimitExceeded      = "certificate_limit_exceeded"
	codeInvalidCertificate = "invalid_certificate"
	codeInvalidKey         = "invalid_private_key"
	codeKeyMismatch        = "key_mismatch"
	codeInvalidChain       = "invalid_intermediate"
	codeExpired            = "certificate_expired"
	codeDomainsChanged     = "domains_mismatch"
	codeNotImported        = "not_imported"
	codeNotOrdered         = "not_ordered"
)

// ErrNotFound is wrapped by Go API errors about an unknown instance, certificate or
// channel.
var ErrNotFound = errors.New("not found")

// ErrRejected is wrapped by Go API errors for requests the service refuses (invalid
// material, limits); the message says why.
var ErrRejected = errors.New("rejected")

// response is what a handler produces; ServeHTTP writes it, unless a fault replaces it.
type response struct {
	status int
	header http.Header
	body   []byte
}

// apiError is a 4xx answer. It is also the error of the Go API, so that both paths run
// the same checks.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func (e *apiError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.status == http.StatusNotFound
	case ErrRejected:
		return e.status != http.StatusNotFound
	}
	return false
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func (e *apiError) response() response {
	r := jsonResponse(e.status, map[string]string{"message": e.message, "code": e.code})
	if e.retryAfter > 0 {
		r.header.Set("Retry-After", retryAfterSeconds(e.retryAfter))
	}
	return r
}

func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		// Only simulator-built values are marshalled; failing here is a simulator bug.
		panic(fmt.Sprintf("simulator: marshal response: %v", err))
	}
	return response{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: b}
}

func emptyResponse(status int) response {
	return response{status: status, header: http.Header{}}
}

func notFound(what string) *apiError {
	return errorf(http.StatusNotFound, codeNotFound, "%s not found", what)
}

// route is a parsed request path.
type route struct {
	op       string
	region   string
	instance string // instance CRN: from the path, or the instance of the certificate
	cert     string // certificate CRN, for certificate-scoped operations
	channel  string // channel id
	role     Role   // required role; 0 = no authentication (public key)
	handle   func(s *Simulator, r *http.Request, rt *route) response
}

type routeSpec struct {
	method  string
	pattern []string // literal segments, or {instance}, {cert}, {channel}
	op      string
	role    Role
	handle  func(s *Simulator, r *http.Request, rt *route) response
}

// The operations of docs/services/certificate-manager.md §2.2, with the role each needs
// (§4.3; the order policy's role is undocumented, see the package doc, choice 20).
// Versions are mixed on purpose: they are what the real service serves.
var routes = []routeSpec{
	{http.MethodGet, []string{"api", "v3", "{instance}", "certificates"}, OpList, Reader, (*Simulator).handleList},
	{http.MethodPost, []string{"api", "v3", "{instance}", "certificates", "import"}, OpImport, Manager, (*Simulator).handleImport},
	{http.MethodGet, []string{"api", "v2", "certificate", "{cert}"}, OpDownload, Writer, (*Simulator).handleDownload},
	{http.MethodDelete, []string{"api", "v2", "certificate", "{cert}"}, OpDelete, Manager, (*Simulator).handleDelete},
	{http.MethodGet, []string{"api", "v1", "certificate", "{cert}", "metadata"}, OpMetadata, Reader, (*Simulator).handleMetadata},
	{http.MethodPut, []string{"api", "v1", "certificate", "{cert}"}, OpReimport, Manager, (*Simulator).handleReimport},
	{http.MethodPost, []string{"api", "v3", "certificate", "{cert}"}, OpUpdate, Writer, (*Simulator).handleUpdate},
	{http.MethodPost, []string{"api", "v1", "{instance}", "certificates", "order"}, OpOrder, Manager, (*Simulator).handleOrder},
	{http.MethodPost, []string{"api", "v1", "certificate", "{cert}", "renew"}, OpRenew, Manager, (*Simulator).handleRenew},
	{http.MethodPut, []string{"api", "v1", "certificate", "{cert}", "order", "policy"}, OpOrderPolicy, Manager, (*Simulator).handleOrderPolicy},
	{http.MethodGet, []string{"api", "v1", "instances", "{instance}", "notifications", "publicKey"}, OpPublicKey, 0, (*Simulator).handlePublicKey},
	{http.MethodGet, []string{"api", "v1", "instances", "{instance}", "notifications", "channels"}, OpChannelsList, Reader, (*Simulator).handleChannelsList},
	{http.MethodPut, []string{"api", "v1", "instances", "{instance}", "notifications", "channels"}, OpChannelsCreate, Manager, (*Simulator).handleChannelsCreate},
	{http.MethodPost, []string{"api", "v1", "instances", "{instance}", "notifications", "channels", "{channel}", "test"}, OpChannelsTest, Reader, (*Simulator).handleChannelsTest},
	{http.MethodDelete, []string{"api", "v1", "instances", "{instance}", "notifications", "{channel}"}, OpChannelsDelete, Manager, (*Simulator).handleChannelsDelete},
}

// Operation names, used in the request log, Count and Fault.Op.
const (
	OpIAMToken       = "iam.token"
	OpList           = "list"
	OpDownload       = "download"
	OpMetadata       = "metadata"
	OpImport         = "import"
	OpReimport       = "reimport"
	OpUpdate         = "update"
	OpDelete         = "delete"
	OpOrder          = "order"
	OpRenew          = "renew"
	OpOrderPolicy    = "order.policy"
	OpPublicKey      = "publickey"
	OpChannelsList   = "channels.list"
	OpChannelsCreate = "channels.create"
	OpChannelsTest   = "channels.test"
	OpChannelsDelete = "channels.delete"
)

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+$`)

// parseRoute maps a request to an operation. On failure it still returns what it could
// learn (for the request log) and the error to answer.
func parseRoute(r *http.Request) (*route, *apiError) {
	path := r.URL.EscapedPath()
	if path == "/identity/token" {
		if r.Method != http.MethodPost {
			return &route{op: OpIAMToken}, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed", r.Method)
		}
		return &route{op: OpIAMToken, handle: func(s *Simulator, r *http.Request, _ *route) response { return jsonResponse(s.iam.Handle(r)) }}, nil
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 2 || !regionRE.MatchString(segs[0]) {
		return &route{}, notFound("resource")
	}
	region, rest := segs[0], segs[1:]
	var pathMatched *routeSpec
	for i := range routes {
		spec := &routes[i]
		if !matchPattern(spec.pattern, rest) {
			continue
		}
		pathMatched = spec
		if spec.method != r.Method {
			continue
		}
		return bindRoute(spec, region, rest)
	}
	if pathMatched != nil {
		rt, _ := bindRoute(pathMatched, region, rest)
		return &route{op: rt.op, region: region, instance: rt.instance, cert: rt.cert},
			errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed", r.Method)
	}
	return &route{region: region}, notFound("resource")
}

func matchPattern(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return true
}

func bindRoute(spec *routeSpec, region string, segs []string) (*route, *apiError) {
	rt := &route{op: spec.op, region: region, role: spec.role, handle: spec.handle}
	for i, p := range spec.pattern {
		if !strings.HasPrefix(p, "{") {
			continue
		}
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return rt, errorf(http.StatusBadRequest, codeBadRequest, "malformed escape in the path")
		}
		switch p {
		case "{instance}":
			c, err := crn.ParseInstance(v)
			if err != nil {
				return rt, errorf(http.StatusBadRequest, codeInvalidCRN, "the instance CRN in the path is not a valid Certificate Manager instance CRN")
			}
			rt.instance = c.String()
		case "{cert}":
			c, err := crn.ParseCertificate(v)
			if err != nil {
				return rt, errorf(http.StatusBadRequest, codeInvalidCRN, "the certificate CRN in the path is not a valid Certificate Manager certificate CRN")
			}
			rt.cert = c.String()
			rt.instance = c.InstanceCRN().String()
		case "{channel}":
			rt.channel = v
		}
	}
	return rt, nil
}

// ServeHTTP routes IAM and Certificate Manager requests; see the package documentation.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	rt, rerr := parseRoute(r)
	entry := logEntry{Request: Request{
		Method: r.Method, EscapedPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Op: rt.op, Instance: rt.instance, Cert: rt.cert, Time: start,
	}}

	// Read the request in full before any wait: the request has then been accepted, and
	// net/http notices a client that hangs up only once the body has been read.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		entry.Status = 0
		s.record(entry)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	latency := s.Latency()
	f := s.Take(rt.op, rt.instance)
	s.mu.Unlock()
	simfault.Wait(r.Context(), latency)
	if f != nil {
		simfault.Wait(r.Context(), f.Delay)
	}
	if f != nil && !f.AfterOp && f.Replaces() {
		s.writeFault(w, f, &entry)
		return
	}

	var resp response
	if rerr != nil {
		resp = rerr.response()
	} else {
		resp = s.dispatch(r, rt)
	}
	entry.handled = resp.status

	if f != nil && f.AfterOp && f.Replaces() {
		s.writeFault(w, f, &entry)
		return
	}
	entry.Status = resp.status
	s.record(entry)
	writeResponse(w, resp)
}

func writeResponse(w http.ResponseWriter, resp response) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// dispatch authenticates and authorises (unless the operation is public: IAM, public
// key), then runs the handler.
func (s *Simulator) dispatch(r *http.Request, rt *route) response {
	if rt.role != 0 {
		if err := s.authorize(r, rt); err != nil {
			return err.response()
		}
	}
	return rt.handle(s, r, rt)
}

// authorize runs the checks in the documented order: token (401), instance in this
// region (404), role (403).
func (s *Simulator) authorize(r *http.Request, rt *route) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return errorf(http.StatusUnauthorized, codeUnauthorized, "an IAM access token is required in the Authorization header, after \"Bearer \"")
	}
	apiKey, ok := s.iam.Resolve(tok)
	if !ok {
		return errorf(http.StatusUnauthorized, codeUnauthorized, "the IAM access token is invalid or expired")
	}
	if _, err := s.instanceLocked(rt.region, rt.instance); err != nil {
		return err
	}
	if s.keys[apiKey][rt.instance] < rt.role {
		return errorf(http.StatusForbidden, codeForbidden, "the %s role on the instance is required for %s", rt.role, rt.op)
	}
	return nil
}

// instanceLocked finds the instance as the regional deployment of region sees it.
func (s *Simulator) instanceLocked(region, instanceCRN string) (*instance, *apiError) {
	inst, ok := s.instances[instanceCRN]
	if !ok || inst.region != region {
		return nil, notFound("instance")
	}
	return inst, nil
}

func (s *Simulator) writeFault(w http.ResponseWriter, f *Fault, entry *logEntry) {
	if f.Drop {
		entry.Status = 0
		s.record(*entry)
		simfault.DropConnection(w)
		return
	}
	entry.Status = f.Status
	s.record(*entry)
	var resp response
	switch {
	case f.Status >= 500:
		resp = response{status: f.Status, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			body: []byte(fmt.Sprintf("%d %s\n", f.Status, http.StatusText(f.Status)))}
	case entry.Op == OpIAMToken:
		resp = jsonResponse(f.Status, simiam.ErrorBody(simiam.CodeBadRequest, "injected fault: "+http.StatusText(f.Status)))
	default:
		code := codeBadRequest
		if f.Status == http.StatusTooManyRequests {
			code = codeRateLimited
		}
		resp = errorf(f.Status, code, "injected fault: %s", http.StatusText(f.Status)).response()
	}
	if f.RetryAfter != "" {
		resp.header.Set("Retry-After", f.RetryAfter)
	}
	writeResponse(w, resp)
}
