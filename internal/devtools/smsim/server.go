package smsim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/simfault"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
)

// Operation names, used in the request log, Count and Fault.Op.
const (
	OpIAMToken           = "iam.token"
	OpListSecrets        = "secrets.list"
	OpCreateSecret       = "secret.create"
	OpGetSecret          = "secret.get"
	OpDeleteSecret       = "secret.delete"
	OpGetMetadata        = "secret.metadata.get"
	OpUpdateMetadata     = "secret.metadata.update"
	OpGetByName          = "secret.get_by_name"
	OpListVersions       = "versions.list"
	OpCreateVersion      = "version.create"
	OpGetVersion         = "version.get"
	OpGetVersionMetadata = "version.metadata.get"
	OpListGroups         = "groups.list"
	OpCreateGroup        = "group.create"
	OpGetGroup           = "group.get"
	OpDeleteGroup        = "group.delete"
)

// writeOps change an instance; Writes counts them.
var writeOps = map[string]bool{
	OpCreateSecret: true, OpDeleteSecret: true, OpUpdateMetadata: true, OpCreateVersion: true,
	OpCreateGroup: true, OpDeleteGroup: true,
}

// route is a parsed request.
type route struct {
	op       string
	inst     *instance
	instance string // instance CRN
	params   map[string]string
	role     Role
	query    []string // allowed query parameters
	handle   func(s *Simulator, r *http.Request, rt *route, who string) response
}

type routeSpec struct {
	method  string
	pattern []string // literal segments or {name}
	op      string
	role    Role
	query   []string
	handle  func(s *Simulator, r *http.Request, rt *route, who string) response
}

var listQuery = []string{"offset", "limit", "sort", "search", "groups", "secret_types", "match_all_labels"}

// routes are the v2 operations served, with the role each needs (docs/services/secrets-manager.md §3).
var routes = []routeSpec{
	{http.MethodGet, []string{"secrets"}, OpListSecrets, Reader, listQuery, (*Simulator).handleList},
	{http.MethodPost, []string{"secrets"}, OpCreateSecret, Writer, nil, (*Simulator).handleCreate},
	{http.MethodGet, []string{"secrets", "{id}"}, OpGetSecret, SecretsReader, nil, (*Simulator).handleGet},
	{http.MethodDelete, []string{"secrets", "{id}"}, OpDeleteSecret, Manager, nil, (*Simulator).handleDelete},
	{http.MethodGet, []string{"secrets", "{id}", "metadata"}, OpGetMetadata, Reader, nil, (*Simulator).handleGetMetadata},
	{http.MethodPatch, []string{"secrets", "{id}", "metadata"}, OpUpdateMetadata, Writer, nil, (*Simulator).handleUpdateMetadata},
	{http.MethodGet, []string{"secrets", "{id}", "versions"}, OpListVersions, Reader, nil, (*Simulator).handleListVersions},
	{http.MethodPost, []string{"secrets", "{id}", "versions"}, OpCreateVersion, Writer, nil, (*Simulator).handleCreateVersion},
	{http.MethodGet, []string{"secrets", "{id}", "versions", "{version}"}, OpGetVersion, SecretsReader, nil, (*Simulator).handleGetVersion},
	{http.MethodGet, []string{"secrets", "{id}", "versions", "{version}", "metadata"}, OpGetVersionMetadata, Reader, nil, (*Simulator).handleGetVersionMetadata},
	{http.MethodGet, []string{"secret_groups"}, OpListGroups, Reader, nil, (*Simulator).handleListGroups},
	{http.MethodPost, []string{"secret_groups"}, OpCreateGroup, Manager, nil, (*Simulator).handleCreateGroup},
	{http.MethodGet, []string{"secret_groups", "{group}"}, OpGetGroup, Reader, nil, (*Simulator).handleGetGroup},
	{http.MethodDelete, []string{"secret_groups", "{group}"}, OpDeleteGroup, Manager, nil, (*Simulator).handleDeleteGroup},
	{http.MethodGet, []string{"secret_groups", "{group_name}", "secret_types", "{type}", "secrets", "{name}"}, OpGetByName, SecretsReader, nil, (*Simulator).handleGetByName},
}

// parseRoute maps a request to an operation. On failure it still returns what it could
// learn (for the request log) and the error to answer.
func (s *Simulator) parseRoute(r *http.Request) (*route, *apiError) {
	path := r.URL.EscapedPath()
	if path == "/identity/token" {
		if r.Method != http.MethodPost {
			return &route{op: OpIAMToken}, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed", r.Method)
		}
		return &route{op: OpIAMToken}, nil
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 4 {
		return &route{}, notFound("resource")
	}
	s.mu.Lock()
	inst := s.byPrefix["/"+segs[0]+"/"+segs[1]]
	s.mu.Unlock()
	if inst == nil {
		return &route{}, notFound("instance")
	}
	rt := &route{inst: inst, instance: inst.crn.String()}
	if segs[2] != "api" || segs[3] != "v2" {
		return rt, notFound("resource")
	}
	rest := segs[4:]
	var pathMatched *routeSpec
	for i := range routes {
		spec := &routes[i]
		if !matchPattern(spec.pattern, rest) {
			continue
		}
		if pathMatched == nil {
			pathMatched = spec
		}
		if spec.method != r.Method {
			continue
		}
		return bindRoute(spec, rt, rest)
	}
	if pathMatched != nil {
		bound, _ := bindRoute(pathMatched, rt, rest)
		return &route{op: bound.op, inst: inst, instance: rt.instance, params: bound.params},
			errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed", r.Method)
	}
	return rt, notFound("resource")
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

func bindRoute(spec *routeSpec, rt *route, segs []string) (*route, *apiError) {
	rt.op, rt.role, rt.query, rt.handle = spec.op, spec.role, spec.query, spec.handle
	rt.params = map[string]string{}
	for i, p := range spec.pattern {
		if !strings.HasPrefix(p, "{") {
			continue
		}
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return rt, badRequest("malformed escape in the path")
		}
		rt.params[strings.Trim(p, "{}")] = v
	}
	return rt, nil
}

// ServeHTTP routes IAM and Secrets Manager requests; see the package documentation.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	start := s.now()
	rt, rerr := s.parseRoute(r)
	entry := logEntry{Request: Request{
		Method: r.Method, EscapedPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Op: rt.op, Instance: rt.instance, SecretID: rt.params["id"], Time: start,
	}}

	// Read the request in full before any wait: the request has then been accepted.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		s.record(entry)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	if rt.instance != "" {
		s.arrivals[rt.instance] = append(s.arrivals[rt.instance], arrival)
	}
	latency := s.Latency()
	f := s.Take(rt.op, rt.instance)
	var limited *apiError
	if s.rateLimit > 0 && rt.inst != nil {
		if ok, after := rt.inst.rate.Allow(arrival, s.rateLimit, time.Second); !ok {
			limited = errorf(http.StatusTooManyRequests, codeRateLimited, "too many requests to this instance")
			limited.retryAfter = after
		}
	}
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
	switch {
	case rerr != nil:
		resp = rerr.response()
	case limited != nil:
		resp = limited.response()
	case len(body) > maxBody:
		resp = errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is larger than %d bytes", maxBody).response()
	case rt.op == OpIAMToken:
		resp = jsonResponse(s.iam.Handle(r))
	default:
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

// dispatch authenticates and authorises, checks the query, then runs the handler.
func (s *Simulator) dispatch(r *http.Request, rt *route) response {
	who, err := s.authorize(r, rt)
	if err != nil {
		return err.response()
	}
	if err := checkQuery(r.URL.RawQuery, rt.query); err != nil {
		return err.response()
	}
	return rt.handle(s, r, rt, who)
}

// authorize checks the token (401) and the role on the instance (403) and returns the
// caller's IAM id.
func (s *Simulator) authorize(r *http.Request, rt *route) (string, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", errorf(http.StatusUnauthorized, codeUnauthorized, "an IAM access token is required in the Authorization header, after \"Bearer \"")
	}
	apiKey, ok := s.iam.Resolve(tok)
	if !ok {
		return "", errorf(http.StatusUnauthorized, codeUnauthorized, "the IAM access token is invalid or expired")
	}
	k, ok := s.keys[apiKey]
	if !ok || k.grants[rt.instance] < rt.role {
		return "", errorf(http.StatusForbidden, codeForbidden, "the %s role on the instance is required for %s", rt.role, rt.op)
	}
	return k.iamID, nil
}

// checkQuery refuses unknown and repeated query parameters.
func checkQuery(raw string, allowed []string) *apiError {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return badRequest("malformed query string")
	}
	for k, v := range q {
		known := false
		for _, a := range allowed {
			if a == k {
				known = true
			}
		}
		if !known {
			return badRequest("unknown query parameter %q", k)
		}
		if len(v) > 1 {
			return badRequest("query parameter %q is given more than once", k)
		}
	}
	return nil
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
		switch f.Status {
		case http.StatusTooManyRequests:
			code = codeRateLimited
		case http.StatusPreconditionFailed:
			code = codeLocked
		}
		resp = errorf(f.Status, code, "injected fault: %s", http.StatusText(f.Status)).response()
	}
	if f.RetryAfter != "" {
		resp.header.Set("Retry-After", f.RetryAfter)
	}
	writeResponse(w, resp)
}
