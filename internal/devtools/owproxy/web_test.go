package owproxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// fakeRun records the parameters of the last activation and answers with a
// fixed proxy response.
type fakeRun struct {
	calls        int
	params       map[string]any
	activationID string
	status       int
	body         string
	err          error
}

func (f *fakeRun) run(ctx context.Context, params map[string]any) (int, []byte, error) {
	f.calls++
	f.params = params
	ids, _ := ctx.Value(idsKey{}).(ids)
	f.activationID = ids.activation
	if f.status == 0 {
		return 200, []byte(`{}` + "\n"), f.err
	}
	return f.status, []byte(f.body), f.err
}

func errorOf(t *testing.T, body []byte) (msg, code string) {
	t.Helper()
	var e struct{ Error, Code string }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error response is not JSON: %q", body)
	}
	return e.Error, e.Code
}

func TestWebActionRequestToParams(t *testing.T) {
	const actionPath = "/api/v1/web/guest/certbackup/notify"
	bound := map[string]any{"region": "us-south", "unset": nil, "other": "d"}
	tests := []struct {
		name       string
		method     string
		target     string
		ctype      string
		body       string
		headers    map[string]string
		opts       WebOptions
		wantStatus int            // 0: the action ran (204 for the fake's {})
		wantError  string         // error message of a rejection
		want       map[string]any // parameters that must be present, exactly
		absent     []string       // parameters that must not be present
	}{
		{
			name: "JSON object merged, request context added", method: "POST", target: "/",
			ctype: "application/json", body: `{"data":"eyJ.jwt","n":12345678901234567890}`,
			headers: map[string]string{"X-Custom-Header": "v1"},
			want: map[string]any{"data": "eyJ.jwt", "n": json.Number("12345678901234567890"),
				"__ow_method": "post", "__ow_path": ""},
			absent: []string{"__ow_body", "__ow_query"},
		},
		{
			name: "JSON array becomes __ow_body", method: "POST", target: "/", ctype: "application/json",
			body: `[1,"a"]`, want: map[string]any{"__ow_body": []any{json.Number("1"), "a"}},
		},
		{
			name: "JSON string becomes __ow_body", method: "PUT", target: "/", ctype: "application/json; charset=utf-8",
			body: `"hello"`, want: map[string]any{"__ow_body": "hello", "__ow_method": "put"},
		},
		{
			name: "+json family merged", method: "POST", target: "/", ctype: "application/vnd.api+json",
			body: `{"a":1}`, want: map[string]any{"a": json.Number("1")},
		},
		{
			name: "empty JSON body", method: "POST", target: "/", ctype: "application/json",
			want: map[string]any{"__ow_method": "post"}, absent: []string{"__ow_body"},
		},
		{
			name: "invalid JSON", method: "POST", target: "/", ctype: "application/json",
			body: `{"password":"` + secret, wantStatus: 400, wantError: msgMalformedContent,
		},
		{
			name: "JSON with trailing data", method: "POST", target: "/", ctype: "application/json",
			body: `{} {}`, wantStatus: 400, wantError: msgMalformedContent,
		},
		{
			name: "form merged as strings, last value wins", method: "POST", target: "/",
			ctype: "application/x-www-form-urlencoded", body: "a=1&b=2&a=3",
			want: map[string]any{"a": "3", "b": "2"}, absent: []string{"__ow_body"},
		},
		{
			name: "text is __ow_body as is", method: "POST", target: "/", ctype: "text/plain",
			body: "line1\nline2", want: map[string]any{"__ow_body": "line1\nline2"},
		},
		{
			name: "binary is base64", method: "POST", target: "/", ctype: "application/octet-stream",
			body: "\x00\x01\xff", want: map[string]any{"__ow_body": "AAH/"},
		},
		{
			name: "body without content type is binary", method: "POST", target: "/",
			body: "abc", want: map[string]any{"__ow_body": "YWJj"},
		},
		{
			name: "query merged as strings", method: "GET", target: "/?x=1&y=two",
			want: map[string]any{"x": "1", "y": "two", "__ow_method": "get"}, absent: []string{"__ow_query", "__ow_body"},
		},
		{
			name: "body wins over query", method: "POST", target: "/?a=query", ctype: "application/json",
			body: `{"a":"body"}`, want: map[string]any{"a": "body"},
		},
		{
			name: "bound parameters under request parameters", method: "POST", target: "/", ctype: "application/json",
			body: `{"region":"eu-de"}`, opts: WebOptions{Params: bound},
			want: map[string]any{"region": "eu-de", "other": "d", "unset": nil},
		},
		{
			name: "final: body may not override a bound parameter", method: "POST", target: "/", ctype: "application/json",
			body: `{"region":"eu-de"}`, opts: WebOptions{Params: bound, Final: true},
			wantStatus: 400, wantError: msgParametersNotAllowed,
		},
		{
			name: "final: query may not override a bound parameter", method: "GET", target: "/?other=x",
			opts: WebOptions{Params: bound, Final: true}, wantStatus: 400, wantError: msgParametersNotAllowed,
		},
		{
			name: "final: a bound parameter without value may be set", method: "POST", target: "/", ctype: "application/json",
			body: `{"unset":"now","fresh":1}`, opts: WebOptions{Params: bound, Final: true},
			want: map[string]any{"unset": "now", "region": "us-south"},
		},
		{
			name: "reserved name in body", method: "POST", target: "/", ctype: "application/json",
			body: `{"__ow_headers":{}}`, wantStatus: 400, wantError: msgParametersNotAllowed,
		},
		{
			name: "reserved name in query", method: "GET", target: "/?__ow_user=admin",
			wantStatus: 400, wantError: msgParametersNotAllowed,
		},
		{
			name: "other __ow_ names are not reserved", method: "GET", target: "/?__ow_other=1",
			want: map[string]any{"__ow_other": "1"},
		},
		{
			name: "body over the limit", method: "POST", target: "/", ctype: "application/json",
			body: `{"a":"` + strings.Repeat("x", 100) + `"}`, opts: WebOptions{MaxBody: 100},
			wantStatus: 413, wantError: "Request larger than allowed: 108 > 100 bytes.",
		},
		{
			name: "extension and path", method: "POST", target: actionPath + ".http/a/b", ctype: "application/json",
			body: `{}`, opts: WebOptions{ActionPath: actionPath}, want: map[string]any{"__ow_path": "/a/b"},
		},
		{
			name: "no extension, path", method: "GET", target: actionPath + "/c",
			opts: WebOptions{ActionPath: actionPath}, want: map[string]any{"__ow_path": "/c"},
		},
		{
			name: "root path is empty __ow_path", method: "GET", target: "/", want: map[string]any{"__ow_path": ""},
		},
		{
			name: "path without action root is __ow_path", method: "GET", target: "/x/y", want: map[string]any{"__ow_path": "/x/y"},
		},
		{
			name: "unknown extension", method: "GET", target: actionPath + ".xml",
			opts: WebOptions{ActionPath: actionPath}, wantStatus: 404, wantError: msgResourceDoesNotExist,
		},
		{
			name: "another action", method: "GET", target: actionPath + "er",
			opts: WebOptions{ActionPath: actionPath}, wantStatus: 404, wantError: msgResourceDoesNotExist,
		},
		{
			name: "method not allowed", method: "TRACE", target: "/", wantStatus: 405, wantError: msgMethodNotAllowed,
		},
		{
			name: "OPTIONS answered by the controller", method: "OPTIONS", target: "/", wantStatus: 200,
		},
		{
			name: "OPTIONS reaches the action with web-custom-options", method: "OPTIONS", target: "/",
			opts: WebOptions{CustomOptions: true}, want: map[string]any{"__ow_method": "options"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.target, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			fake := &fakeRun{}
			rec := httptest.NewRecorder()
			NewWebAction(fake.run, tc.opts).ServeHTTP(rec, req)
			res := rec.Result()
			resBody, _ := io.ReadAll(res.Body)

			if tc.wantStatus != 0 {
				if res.StatusCode != tc.wantStatus {
					t.Fatalf("status = %d %s, want %d", res.StatusCode, resBody, tc.wantStatus)
				}
				if fake.calls != 0 {
					t.Errorf("the action ran for a rejected request")
				}
				if res.Header.Get("x-openwhisk-activation-id") != "" {
					t.Errorf("a rejected request has an activation id")
				}
				if tc.wantError != "" {
					msg, code := errorOf(t, resBody)
					if msg != tc.wantError || !hex32.MatchString(code) {
						t.Errorf("error = %q code %q, want %q", msg, code, tc.wantError)
					}
				}
				if strings.Contains(string(resBody), secret) {
					t.Errorf("the response echoes the request")
				}
				return
			}
			if fake.calls != 1 {
				t.Fatalf("action ran %d times; response %d %s", fake.calls, res.StatusCode, resBody)
			}
			for k, v := range tc.want {
				got, ok := fake.params[k]
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(v)
				if !ok || string(gotJSON) != string(wantJSON) {
					t.Errorf("param %s = %s (present %v), want %s", k, gotJSON, ok, wantJSON)
				}
			}
			for _, k := range tc.absent {
				if _, ok := fake.params[k]; ok {
					t.Errorf("param %s should be absent", k)
				}
			}
			headers, _ := fake.params["__ow_headers"].(map[string]any)
			for k := range headers {
				if k != strings.ToLower(k) {
					t.Errorf("header name %q is not lower-case", k)
				}
			}
			if headers["host"] == nil {
				t.Errorf("__ow_headers lacks host: %v", headers)
			}
			for k, v := range tc.headers {
				if headers[strings.ToLower(k)] != v {
					t.Errorf("__ow_headers[%s] = %v, want %v", strings.ToLower(k), headers[strings.ToLower(k)], v)
				}
			}
			if tc.ctype != "" && headers["content-type"] != tc.ctype {
				t.Errorf("__ow_headers content-type = %v", headers["content-type"])
			}
			if id := res.Header.Get("x-openwhisk-activation-id"); id != fake.activationID || !hex32.MatchString(id) {
				t.Errorf("activation id header %q, the action saw %q", id, fake.activationID)
			}
		})
	}
}

func TestWebActionCORS(t *testing.T) {
	req := httptest.NewRequest("OPTIONS", "/", nil)
	req.Header.Set("Access-Control-Request-Headers", "X-Foo")
	rec := httptest.NewRecorder()
	NewWebAction((&fakeRun{}).run, WebOptions{}).ServeHTTP(rec, req)
	h := rec.Result().Header
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Headers") != "X-Foo" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") {
		t.Errorf("CORS headers = %v", h)
	}
}

func TestWebActionResultToResponse(t *testing.T) {
	const actionPath = "/api/v1/web/guest/pkg/act"
	tests := []struct {
		name       string
		ext        string // ".http" when empty
		status     int    // proxy status; 200 when 0
		result     string // proxy body
		err        error
		wantStatus int
		wantCT     string            // Content-Type; "-" = must be absent
		wantBody   string            // exact, or JSON-equal when wantJSON
		wantJSON   bool              // compare bodies as JSON
		wantError  string            // controller error message instead of wantBody
		wantHdr    map[string]string // response headers
	}{
		{name: "statusCode, headers and JSON body",
			result:     `{"statusCode":201,"headers":{"X-A":"b","Content-Type":"application/json"},"body":{"ok":true}}`,
			wantStatus: 201, wantCT: "application/json", wantBody: `{"ok":true}`, wantJSON: true, wantHdr: map[string]string{"X-A": "b"}},
		{name: "string body defaults to 200 text/html", result: `{"body":"<p>hi</p>"}`,
			wantStatus: 200, wantCT: "text/html; charset=UTF-8", wantBody: "<p>hi</p>"},
		{name: "no body defaults to 204", result: `{"headers":{"Content-Type":"text/plain"}}`, wantStatus: 204, wantCT: "-"},
		{name: "empty string body is 204", result: `{"body":""}`, wantStatus: 204},
		{name: "null body with status", result: `{"statusCode":200,"body":null}`, wantStatus: 200, wantBody: ""},
		{name: "numeric string status", result: `{"statusCode":"404","body":"nope"}`, wantStatus: 404, wantBody: "nope"},
		{name: "whole-number float status", result: `{"statusCode":500.0,"body":{"e":1}}`, wantStatus: 500, wantBody: `{"e":1}`, wantJSON: true},
		{name: "status not a number", result: `{"statusCode":"abc"}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "status with fraction", result: `{"statusCode":200.5}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "status out of range", result: `{"statusCode":99}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "headers not an object", result: `{"headers":"x"}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "header value an object", result: `{"headers":{"X":{"a":1}}}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "header value splits the response", result: `{"headers":{"X":"a\r\nSet-Cookie: x=1"}}`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "multi-valued header", result: `{"headers":{"X-M":["1",2,true]}}`, wantStatus: 204,
			wantHdr: map[string]string{"X-M": "1,2,true"}},
		{name: "binary type is base64-decoded", result: `{"headers":{"Content-Type":"image/png"},"body":"iVBORw0KGgo="}`,
			wantStatus: 200, wantCT: "image/png", wantBody: "\x89PNG\r\n\x1a\n"},
		{name: "binary type with non-base64 body", result: `{"headers":{"Content-Type":"image/png"},"body":"not base64!"}`,
			wantStatus: 400, wantError: msgHTTPContentTypeError},
		{name: "JSON type with base64-looking string is decoded (legacy)", result: `{"headers":{"Content-Type":"application/json"},"body":"eyJhIjoxfQ=="}`,
			wantStatus: 200, wantCT: "application/json", wantBody: `{"a":1}`},
		{name: "JSON type with a JSON string passes as text", result: `{"headers":{"Content-Type":"application/json"},"body":"{\"a\":1}"}`,
			wantStatus: 200, wantCT: "application/json", wantBody: `{"a":1}`},
		{name: "JSON value with a text type", result: `{"headers":{"Content-Type":"text/plain"},"body":{"a":1}}`,
			wantStatus: 400, wantError: msgHTTPContentTypeError},
		{name: "JSON value with a +json type", result: `{"headers":{"Content-Type":"application/problem+json"},"body":{"a":1}}`,
			wantStatus: 200, wantCT: "application/problem+json; charset=UTF-8", wantBody: `{"a":1}`, wantJSON: true},
		{name: "unparsable content type", result: `{"headers":{"content-type":"bad type/"},"body":"x"}`,
			wantStatus: 400, wantError: msgHTTPUnknownContentType},
		{name: "array result is not message/http", result: `[1,2]`, wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "application error value is transcoded", result: `{"error":{"statusCode":403,"body":{"error":"forbidden"}}}`,
			wantStatus: 403, wantCT: "application/json", wantBody: `{"error":"forbidden"}`, wantJSON: true},
		{name: "application error string is not message/http", result: `{"error":"text"}`,
			wantStatus: 400, wantError: msgInvalidMedia("message/http")},
		{name: "developer error: command exited", status: 400, result: `{"error":"command exited"}`,
			wantStatus: 400, wantError: msgErrorProcessingRequest},
		{name: "developer error: not a dictionary", status: 502, result: `{"error":"The action did not return a dictionary or array."}`,
			wantStatus: 400, wantError: msgErrorProcessingRequest},
		{name: "developer error: time limit", err: ErrTimeLimit, wantStatus: 400, wantError: msgErrorProcessingRequest},
		{name: "developer error: null result", result: "null\n", wantStatus: 400, wantError: msgErrorProcessingRequest},
		{name: ".json returns the whole result", ext: ".json", result: `{"statusCode":201,"a":1}`,
			wantStatus: 200, wantCT: "application/json", wantBody: `{"statusCode":201,"a":1}`, wantJSON: true},
		{name: ".json application error object", ext: ".json", result: `{"error":{"x":1}}`,
			wantStatus: 200, wantBody: `{"x":1}`, wantJSON: true},
		{name: ".json application error string", ext: ".json", result: `{"error":"text"}`,
			wantStatus: 400, wantError: msgInvalidMedia("application/json")},
		{name: ".text projects body", ext: ".text", result: `{"body":"plain"}`, wantStatus: 200, wantCT: "text/plain; charset=UTF-8", wantBody: "plain"},
		{name: ".text without body or text", ext: ".text", result: `{"x":1}`, wantStatus: 404, wantError: msgPropertyNotFound},
		{name: ".html projects html", ext: ".html", result: `{"html":"<b>x</b>"}`, wantStatus: 200, wantCT: "text/html; charset=UTF-8", wantBody: "<b>x</b>"},
		{name: ".svg needs a string", ext: ".svg", result: `{"svg":1}`, wantStatus: 400, wantError: msgInvalidMedia("image/svg+xml")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeRun{status: tc.status, body: tc.result, err: tc.err}
			if fake.status == 0 {
				fake.status = 200
			}
			ext := tc.ext
			if ext == "" {
				ext = ".http"
			}
			rec := httptest.NewRecorder()
			NewWebAction(fake.run, WebOptions{ActionPath: actionPath}).ServeHTTP(rec, httptest.NewRequest("GET", actionPath+ext, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d %q, want %d", res.StatusCode, body, tc.wantStatus)
			}
			if id := res.Header.Get("x-openwhisk-activation-id"); id == "" || id != fake.activationID {
				t.Errorf("activation id header %q, the action saw %q", id, fake.activationID)
			}
			switch ct := res.Header.Get("Content-Type"); {
			case tc.wantCT == "-" && ct != "":
				t.Errorf("Content-Type %q on an empty response", ct)
			case tc.wantCT != "" && tc.wantCT != "-" && ct != tc.wantCT:
				t.Errorf("Content-Type = %q, want %q", ct, tc.wantCT)
			}
			for k, v := range tc.wantHdr {
				if got := strings.Join(res.Header.Values(k), ","); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			switch {
			case tc.wantError != "":
				msg, code := errorOf(t, body)
				if msg != tc.wantError || !hex32.MatchString(code) {
					t.Errorf("error = %q code %q, want %q", msg, code, tc.wantError)
				}
			case tc.wantJSON:
				var got, want any
				if json.Unmarshal(body, &got) != nil || json.Unmarshal([]byte(tc.wantBody), &want) != nil {
					t.Fatalf("body %q is not JSON", body)
				}
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				if string(g) != string(w) {
					t.Errorf("body = %s, want %s", g, w)
				}
			case string(body) != tc.wantBody:
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
		})
	}
}

// TestWebActionEndToEnd drives the real action binary through the web front,
// as the local demo does.
func TestWebActionEndToEnd(t *testing.T) {
	const actionPath = "/api/v1/web/guest/certbackup/notify"
	var logs syncBuffer
	pl := startPool(t, 2, Options{Stdout: &logs, Stderr: &logs})
	srv := httptest.NewServer(NewWebAction(pl.RunFunc(RunMeta{Namespace: "guest", ActionName: "guest/certbackup/notify"}),
		WebOptions{ActionPath: actionPath, Params: map[string]any{"SOURCE_REGION": "us-south"}, Final: true}))
	defer srv.Close()

	post := func(ext, body string) (*http.Response, []byte) {
		t.Helper()
		res, err := http.Post(srv.URL+actionPath+ext, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}

	t.Run("callback reaches the action with its parameters", func(t *testing.T) {
		res, body := post(".json", `{"data":"`+secret+`"}`)
		if res.StatusCode != 200 {
			t.Fatalf("status %d %s", res.StatusCode, body)
		}
		r := decodeEcho(t, body)
		if r.Params["data"] != secret || r.Params["SOURCE_REGION"] != "us-south" || r.Params["__ow_method"] != "post" {
			t.Errorf("params = %v", r.Params)
		}
		if r.Activation.ActionName != "/guest/certbackup/notify" {
			t.Errorf("action name = %q", r.Activation.ActionName)
		}
		if id := res.Header.Get("x-openwhisk-activation-id"); id != r.Activation.ID {
			t.Errorf("activation id header %q, the action saw %q", id, r.Activation.ID)
		}
	})
	t.Run("the action chooses the status", func(t *testing.T) {
		res, body := post("", `{"respond":{"statusCode":202,"body":{"accepted":true}}}`)
		if res.StatusCode != 202 || !strings.Contains(string(body), `"accepted": true`) {
			t.Errorf("got %d %s", res.StatusCode, body)
		}
	})
	t.Run("final parameter", func(t *testing.T) {
		res, body := post("", `{"SOURCE_REGION":"eu-de"}`)
		if msg, _ := errorOf(t, body); res.StatusCode != 400 || msg != msgParametersNotAllowed {
			t.Errorf("got %d %s", res.StatusCode, body)
		}
	})
	t.Run("crash is a developer error, the next request gets a fresh container", func(t *testing.T) {
		for range 2 { // both processes of the pool crash
			res, body := post("", `{"exit":1}`)
			if msg, _ := errorOf(t, body); res.StatusCode != 400 || msg != msgErrorProcessingRequest {
				t.Errorf("got %d %s", res.StatusCode, body)
			}
		}
		if res, body := post(".json", `{}`); res.StatusCode != 200 {
			t.Errorf("after the crash: %d %s", res.StatusCode, body)
		}
	})
	if strings.Contains(string(logs.Bytes()), secret) {
		t.Errorf("the request body reached the logs")
	}
}
