package owproxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// RunFunc runs one activation. It has the contract of Process.Run: status and
// body are the proxy's answer; err means there was none (time limit, bad
// payload), which the platform reports as a developer error.
type RunFunc func(ctx context.Context, params map[string]any) (status int, body []byte, err error)

// RunFunc adapts p.Run to a RunFunc with fixed metadata.
func (p *Process) RunFunc(meta RunMeta) RunFunc {
	return func(ctx context.Context, params map[string]any) (int, []byte, error) {
		return p.Run(ctx, params, meta)
	}
}

// RunFunc adapts pl.Run to a RunFunc with fixed metadata.
func (pl *Pool) RunFunc(meta RunMeta) RunFunc {
	return func(ctx context.Context, params map[string]any) (int, []byte, error) {
		return pl.Run(ctx, params, meta)
	}
}

// WebOptions describe the web action: its annotations and bound parameters.
type WebOptions struct {
	// ActionPath is the URL path of the action without extension, e.g.
	// /api/v1/web/guest/certbackup/notify. A request must be for that path,
	// optionally followed by an extension (.http, .json, .html, .svg,
	// .text; .http when absent) and a rest that becomes __ow_path. Empty: the
	// handler is the action, .http, and the request path is __ow_path ("/"
	// counts as "").
	ActionPath string
	// Params are the bound parameters (package and action defaults). They
	// have the lowest precedence.
	Params map[string]any
	// Final is the `final` annotation (set by `--web true`): a request
	// parameter that names a bound parameter with a value is rejected.
	Final bool
	// MaxBody is the largest request entity accepted; default DefaultMaxBody.
	MaxBody int64
	// CustomOptions is `web-custom-options`: OPTIONS requests reach the
	// action instead of being answered by the controller with CORS headers.
	CustomOptions bool
}

// Controller messages (apache/openwhisk Messages.scala).
const (
	msgParametersNotAllowed   = "Request defines parameters that are not allowed (e.g., reserved properties)."
	msgErrorProcessingRequest = "There was an error processing your request."
	msgResourceDoesNotExist   = "The requested resource does not exist."
	msgHTTPUnknownContentType = "Response did not specify a known content-type."
	msgHTTPContentTypeError   = "Response type in header did not match generated content type."
	msgPropertyNotFound       = "Response does not include requested property."
	// Not the controller's exact wording (akka-http rejections); no
	// detail, because a parser error quotes the input.
	msgMalformedContent = "The request content was malformed."
	msgMalformedQuery   = "The request's query string is invalid."
	msgMethodNotAllowed = "HTTP method not allowed, supported methods: GET, DELETE, POST, PUT, HEAD, OPTIONS, PATCH"
)

func msgInvalidMedia(mediaType string) string {
	return fmt.Sprintf("Response is not valid '%s'.", mediaType)
}

// reserved are the request-context parameter names a request may not set.
var reserved = map[string]bool{
	"__ow_method": true, "__ow_headers": true, "__ow_path": true,
	"__ow_user": true, "__ow_query": true, "__ow_body": true,
}

// NewWebAction returns the controller's web-action layer for a non-raw web
// action (docs/services/openwhisk.md §8.3–§8.5): it turns the HTTP request into parameters,
// runs the activation and turns the result into the HTTP response the
// extension asks for.
//
// The activation runs with a context detached from the request's
// cancellation: a client that hangs up does not stop an activation on the
// platform. Its time limit is RunMeta.Timeout of the RunFunc.
//
// Not reproduced: raw-http, require-whisk-auth, the 60 s blocking wait (202),
// result size limits.
func NewWebAction(run RunFunc, opts WebOptions) http.Handler {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	return &webAction{run: run, opts: opts}
}

type webAction struct {
	run  RunFunc
	opts WebOptions
}

func (wa *webAction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tid := NewID() // the "code" of error responses

	switch r.Method {
	case http.MethodGet, http.MethodDelete, http.MethodPost, http.MethodPut,
		http.MethodHead, http.MethodOptions, http.MethodPatch:
	default:
		terminate(w, http.StatusMethodNotAllowed, msgMethodNotAllowed, tid)
		return
	}
	transcode, owPath, ok := wa.route(r.URL.Path)
	if !ok {
		terminate(w, http.StatusNotFound, msgResourceDoesNotExist, tid)
		return
	}

	body, tooLarge, err := readBody(r, wa.opts.MaxBody)
	switch {
	case tooLarge > 0:
		terminate(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("Request larger than allowed: %d > %d bytes.", tooLarge, wa.opts.MaxBody), tid)
		return
	case err != nil:
		terminate(w, http.StatusBadRequest, msgMalformedContent, tid)
		return
	}

	if !wa.opts.CustomOptions {
		setCORS(w.Header(), r.Header)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
	}

	params, status, msg := wa.params(r, body, owPath)
	if msg != "" {
		terminate(w, status, msg, tid)
		return
	}

	activationID := NewID()
	ctx := ContextWithIDs(context.WithoutCancel(r.Context()), activationID, tid)
	runStatus, out, runErr := wa.run(ctx, params)
	w.Header().Set("x-openwhisk-activation-id", activationID)

	result, ok := activationResult(runStatus, out, runErr)
	if !ok {
		// Developer error: crash, time limit, output that is not JSON.
		terminate(w, http.StatusBadRequest, msgErrorProcessingRequest, tid)
		return
	}
	if obj, isObj := result.(map[string]any); isObj {
		if e, isAppError := obj["error"]; isAppError {
			// Application error: the value of "error" is what gets
			// transcoded, so {"error":{"statusCode":403,...}} is a 403.
			result = e
		}
	}
	transcode(w, result, tid)
}

// route splits the request path into the extension and __ow_path.
func (wa *webAction) route(path string) (transcoder, string, bool) {
	if wa.opts.ActionPath == "" {
		if path == "/" {
			path = ""
		}
		return transcoders[".http"], path, true
	}
	rest, found := strings.CutPrefix(path, wa.opts.ActionPath)
	if !found {
		return nil, "", false
	}
	if rest == "" || rest[0] == '/' {
		return transcoders[".http"], rest, true
	}
	if rest[0] != '.' {
		return nil, "", false // another action whose name starts like ours
	}
	ext, owPath := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		ext, owPath = rest[:i], rest[i:]
	}
	t, known := transcoders[ext]
	if !known {
		return nil, "", false // the controller looks for an action named "notify.xyz"
	}
	return t, owPath, true
}

// readBody reads at most limit bytes. tooLarge is the offending size (the
// declared length, or what was read past the limit) when over the limit.
func readBody(r *http.Request, limit int64) (body []byte, tooLarge int64, err error) {
	if r.ContentLength > limit {
		return nil, r.ContentLength, nil
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, int64(len(body)), nil
	}
	return body, 0, nil
}

func setCORS(h, req http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH")
	if asked := req.Get("Access-Control-Request-Headers"); asked != "" {
		h.Set("Access-Control-Allow-Headers", asked)
	} else {
		h.Set("Access-Control-Allow-Headers", "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent")
	}
}

// params builds the action arguments (WebActions.scala Context): bound
// parameters < request context < query < body. It returns a status and a
// message when the request must be rejected.
func (wa *webAction) params(r *http.Request, body []byte, owPath string) (map[string]any, int, string) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, http.StatusBadRequest, msgMalformedQuery
	}

	mediaType, mtParams, ctHeader := requestMediaType(r, body)
	var bodyFields map[string]any // merged as top-level parameters
	var owBody any                // else passed as __ow_body
	hasOwBody := false
	switch {
	case mediaType == "":
		// no entity at all
	case isJSONFamily(mediaType):
		if len(body) > 0 {
			v, err := decodeJSON(body)
			if err != nil {
				return nil, http.StatusBadRequest, msgMalformedContent
			}
			if obj, isObj := v.(map[string]any); isObj {
				bodyFields = obj
			} else {
				owBody, hasOwBody = v, true
			}
		}
	case mediaType == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, http.StatusBadRequest, msgMalformedContent
		}
		bodyFields = lastValues(form)
	case isBinaryMediaType(mediaType, mtParams):
		owBody, hasOwBody = base64.StdEncoding.EncodeToString(body), true
	default:
		owBody, hasOwBody = string(body), true
	}

	// Only the names the request itself sets are checked.
	immutable := map[string]bool{}
	if wa.opts.Final {
		for k, v := range wa.opts.Params {
			if v != nil {
				immutable[k] = true
			}
		}
	}
	for k := range query {
		if reserved[k] || immutable[k] {
			return nil, http.StatusBadRequest, msgParametersNotAllowed
		}
	}
	for k := range bodyFields {
		if reserved[k] || immutable[k] {
			return nil, http.StatusBadRequest, msgParametersNotAllowed
		}
	}

	params := maps.Clone(wa.opts.Params)
	if params == nil {
		params = map[string]any{}
	}
	params["__ow_method"] = strings.ToLower(r.Method)
	params["__ow_headers"] = requestHeaders(r, ctHeader)
	params["__ow_path"] = owPath
	for k, v := range lastValues(query) {
		params[k] = v
	}
	maps.Copy(params, bodyFields)
	if hasOwBody {
		params["__ow_body"] = owBody
	}
	return params, 0, ""
}

// requestMediaType is the media type of the request entity, "" when there is
// none. Like akka-http, a body without a (valid) Content-Type is
// application/octet-stream. ctHeader is the content-type for __ow_headers.
func requestMediaType(r *http.Request, body []byte) (mediaType string, params map[string]string, ctHeader string) {
	const octets = "application/octet-stream"
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if len(body) == 0 {
			return "", nil, ""
		}
		return octets, nil, octets
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return octets, nil, octets
	}
	return mt, params, ct
}

// requestHeaders is __ow_headers: lower-cased names, one value each (the
// last, as Scala's toMap keeps), host included, entity headers as akka-http
// models them.
func requestHeaders(r *http.Request, ctHeader string) map[string]any {
	h := map[string]any{}
	for k, vs := range r.Header {
		switch name := strings.ToLower(k); name {
		case "content-length", "content-type", "transfer-encoding", "timeout-access":
		default:
			if len(vs) > 0 {
				h[name] = vs[len(vs)-1]
			}
		}
	}
	if r.Host != "" {
		h["host"] = r.Host
	}
	if ctHeader != "" {
		h["content-type"] = ctHeader
	}
	return h
}

func lastValues(v url.Values) map[string]any {
	m := make(map[string]any, len(v))
	for k, vs := range v {
		if len(vs) > 0 {
			m[k] = vs[len(vs)-1]
		}
	}
	return m
}

func isJSONFamily(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// isBinaryMediaType approximates akka-http's media type registry: text/*, the
// JSON and XML families, JavaScript and forms are text; so is any type that
// names a charset; everything else (octet-stream, images, unknown types) is
// binary.
func isBinaryMediaType(mediaType string, params map[string]string) bool {
	switch {
	case strings.HasPrefix(mediaType, "text/"),
		isJSONFamily(mediaType),
		mediaType == "application/xml", strings.HasSuffix(mediaType, "+xml"),
		mediaType == "application/javascript", mediaType == "application/ecmascript",
		mediaType == "application/x-www-form-urlencoded":
		return false
	case params["charset"] != "":
		return false
	}
	return true
}

// decodeJSON decodes exactly one JSON value, keeping numbers exact (the
// controller's JSON numbers are BigDecimal).
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// activationResult interprets the proxy's answer as the invoker does: only a
// 200 with a JSON object or array is a result; anything else is a developer
// error (ok false).
func activationResult(status int, body []byte, err error) (any, bool) {
	if err != nil || status != http.StatusOK {
		return nil, false
	}
	v, err := decodeJSON(body)
	if err != nil {
		return nil, false
	}
	switch v.(type) {
	case map[string]any, []any:
		return v, true
	}
	return nil, false
}

// transcoder writes an activation result (or application error value) as
// the response for one extension (WebActions.scala resultAs*).
type transcoder func(w http.ResponseWriter, result any, tid string)

var transcoders = map[string]transcoder{
	".http": resultAsHTTP,
	".json": resultAsJSON,
	".html": resultAsHTML,
	".svg":  resultAsSVG,
	".text": resultAsText,
}

func resultAsJSON(w http.ResponseWriter, result any, tid string) {
	switch result.(type) {
	case map[string]any, []any:
		writeJSON(w, http.StatusOK, "application/json", result)
	default:
		terminate(w, http.StatusBadRequest, msgInvalidMedia("application/json"), tid)
	}
}

// projectString is the .html/.svg projection: field body, else field alt of
// an object, or the result itself; it must be a string.
func projectString(result any, alt string) (string, bool) {
	v := result
	if obj, ok := result.(map[string]any); ok {
		var found bool
		if v, found = obj["body"]; !found {
			v = obj[alt]
		}
	}
	s, ok := v.(string)
	return s, ok
}

func resultAsHTML(w http.ResponseWriter, result any, tid string) {
	s, ok := projectString(result, "html")
	if !ok {
		terminate(w, http.StatusBadRequest, msgInvalidMedia("text/html"), tid)
		return
	}
	writeBody(w, http.StatusOK, "text/html; charset=UTF-8", []byte(s))
}

func resultAsSVG(w http.ResponseWriter, result any, tid string) {
	s, ok := projectString(result, "svg")
	if !ok {
		terminate(w, http.StatusBadRequest, msgInvalidMedia("image/svg+xml"), tid)
		return
	}
	writeBody(w, http.StatusOK, "image/svg+xml", []byte(s))
}

func resultAsText(w http.ResponseWriter, result any, tid string) {
	v, found := result, true
	if obj, ok := result.(map[string]any); ok {
		if v, found = obj["body"]; !found {
			v, found = obj["text"]
		}
	}
	if !found {
		terminate(w, http.StatusNotFound, msgPropertyNotFound, tid)
		return
	}
	var text string
	switch x := v.(type) {
	case string:
		text = x
	case nil:
		text = "null"
	case bool:
		text = strconv.FormatBool(x)
	case json.Number:
		text = x.String()
	default:
		text = string(prettyJSON(x))
	}
	writeBody(w, http.StatusOK, "text/plain; charset=UTF-8", []byte(text))
}

type header struct{ name, value string }

// resultAsHTTP is the .http transcoder: statusCode, headers and body of the
// result object (docs/services/openwhisk.md §8.4).
func resultAsHTTP(w http.ResponseWriter, result any, tid string) {
	invalid := func() { terminate(w, http.StatusBadRequest, msgInvalidMedia("message/http"), tid) }
	obj, ok := result.(map[string]any)
	if !ok {
		invalid()
		return
	}
	var headers []header
	if hv, present := obj["headers"]; present {
		hm, ok := hv.(map[string]any)
		if !ok {
			invalid()
			return
		}
		for name, v := range hm {
			values, ok := headerValues(v)
			if !ok || !validHeaderName(name) {
				invalid()
				return
			}
			for _, value := range values {
				headers = append(headers, header{name, value})
			}
		}
	}
	code := 0
	if sc, present := obj["statusCode"]; present {
		if code, ok = statusCode(sc); !ok {
			invalid()
			return
		}
	}
	orDefault := func(def int) int {
		if code == 0 {
			return def
		}
		return code
	}

	switch body := obj["body"].(type) {
	case nil: // absent or null
		writeEmpty(w, orDefault(http.StatusNoContent), headers)
	case string:
		if body == "" {
			writeEmpty(w, orDefault(http.StatusNoContent), headers)
			return
		}
		httpStringBody(w, orDefault(http.StatusOK), headers, body, tid)
	default:
		httpJSONBody(w, orDefault(http.StatusOK), headers, body, tid)
	}
}

func headerValues(v any) ([]string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case json.Number:
		s = x.String()
	case []any:
		var out []string
		for _, inner := range x {
			vs, ok := headerValues(inner)
			if !ok {
				return nil, false
			}
			out = append(out, vs...)
		}
		return out, true
	default:
		return nil, false
	}
	// Stricter than the controller: a value that would split the response
	// is refused rather than sanitised.
	if strings.ContainsAny(s, "\r\n\x00") {
		return nil, false
	}
	return []string{s}, true
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// statusCode accepts a whole number or a numeric string naming a known status
// (akka-http rejects unregistered codes). 1xx is refused: it is not a final
// response.
func statusCode(v any) (int, bool) {
	var code int
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(x.String(), 64)
		if err != nil || f != math.Trunc(f) || f < 0 || f > 999 {
			return 0, false
		}
		code = int(f)
	case string:
		n, err := strconv.Atoi(x)
		if err != nil {
			return 0, false
		}
		code = n
	default:
		return 0, false
	}
	if code < 200 || code > 599 || http.StatusText(code) == "" {
		return 0, false
	}
	return code, true
}

func contentTypeOf(headers []header) (string, bool) {
	for _, h := range headers {
		if strings.EqualFold(h.name, "content-type") {
			return h.value, true
		}
	}
	return "", false
}

func setHeaders(w http.ResponseWriter, headers []header) {
	for _, h := range headers {
		if !strings.EqualFold(h.name, "content-type") {
			w.Header().Add(h.name, h.value)
		}
	}
}

func writeEmpty(w http.ResponseWriter, code int, headers []header) {
	setHeaders(w, headers) // a content-type is dropped: there is no content
	w.WriteHeader(code)
}

// httpStringBody: text as is, binary types base64-decoded; a JSON-family type
// with a base64-looking string is decoded too ("legacy" in the controller).
func httpStringBody(w http.ResponseWriter, code int, headers []header, body, tid string) {
	ct, found := contentTypeOf(headers)
	if !found {
		ct = "text/html"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		terminate(w, http.StatusBadRequest, msgHTTPUnknownContentType, tid)
		return
	}
	binary := isBinaryMediaType(mt, params)
	data := []byte(body)
	if binary || (isJSONFamily(mt) && isBase64Code(body)) {
		if data, err = strictBase64(body); err != nil {
			terminate(w, http.StatusBadRequest, msgHTTPContentTypeError, tid)
			return
		}
	}
	if !binary && params["charset"] == "" && mt != "application/json" {
		ct = mt + "; charset=UTF-8"
	}
	setHeaders(w, headers)
	writeBody(w, code, ct, data)
}

func httpJSONBody(w http.ResponseWriter, code int, headers []header, body any, tid string) {
	ct, found := contentTypeOf(headers)
	if !found {
		ct = "application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil || !isJSONFamily(mt):
		terminate(w, http.StatusBadRequest, msgHTTPContentTypeError, tid)
	case mt == "application/json":
		setHeaders(w, headers)
		writeJSON(w, code, "application/json", body)
	default:
		setHeaders(w, headers)
		writeJSON(w, code, mt+"; charset=UTF-8", body)
	}
}

var base64Pattern = regexp.MustCompile(`^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$`)

// isBase64Code is Exec.isBinaryCode: non-empty, a multiple of 4, base64 alphabet.
func isBase64Code(s string) bool {
	t := strings.TrimSpace(s)
	return len(t) > 0 && len(t)%4 == 0 && base64Pattern.MatchString(t)
}

// strictBase64 decodes like java.util.Base64's basic decoder, which rejects
// the line breaks Go's decoder skips.
func strictBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return base64.StdEncoding.DecodeString(s)
}

func writeBody(w http.ResponseWriter, code int, contentType string, data []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// prettyJSON renders like spray-json's PrettyPrinter, which the controller
// uses for JSON responses.
func prettyJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return []byte("null") // values come from decodeJSON and always encode
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	writeBody(w, code, contentType, prettyJSON(v))
}

// terminate is the controller's error response: {"error": msg, "code": tid}.
func terminate(w http.ResponseWriter, code int, msg, tid string) {
	writeJSON(w, code, "application/json", map[string]string{"error": msg, "code": tid})
}
