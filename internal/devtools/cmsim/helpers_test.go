package cmsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// testCA is shared: making a CA per test would only cost time.
var testCA = testpki.MustNewCA("Simulator Test")

const managerKey = "key-manager"

// fakeClock is a settable clock for token expiry, status and rate limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a simulator behind an httptest server with one instance per region and a
// Manager key on all of them.
type fixture struct {
	t     *testing.T
	sim   *Simulator
	srv   *httptest.Server
	clock *fakeClock
	inst  map[string]string // region -> instance CRN
}

func newFixture(t *testing.T, opts Options, regions ...string) *fixture {
	t.Helper()
	if opts.CA == nil {
		opts.CA = testCA
	}
	f := &fixture{t: t, inst: map[string]string{}}
	if opts.Now == nil {
		f.clock = newFakeClock()
		opts.Now = f.clock.Now
	}
	sim, err := New(opts)
	require.NoError(t, err)
	f.sim = sim
	f.srv = httptest.NewServer(sim)
	t.Cleanup(f.srv.Close)
	sim.AddAPIKey(managerKey)
	if len(regions) == 0 {
		regions = []string{"us-south"}
	}
	for _, r := range regions {
		f.inst[r] = sim.AddInstance(r)
		sim.Grant(managerKey, f.inst[r], Manager)
	}
	return f
}

// token gets an access token for key through the IAM endpoint.
func (f *fixture) token(key string) string {
	f.t.Helper()
	form := url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {key}}
	resp, err := http.Post(f.srv.URL+"/identity/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	defer resp.Body.Close()
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(f.t, json.NewDecoder(resp.Body).Decode(&out))
	return out.AccessToken
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
}

// String is the body for failure messages, unless it may hold a key or a token: test
// output must not carry them either.
func (r result) String() string {
	b := string(r.body)
	if strings.Contains(b, "PRIVATE KEY") || strings.Contains(b, "_token") {
		return fmt.Sprintf("<%d-byte body withheld>", len(b))
	}
	return b
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r)
}

func (r result) errorCode(t *testing.T) string {
	t.Helper()
	var e struct{ Message, Code string }
	r.json(t, &e)
	require.NotEmpty(t, e.Message)
	return e.Code
}

// call sends a request to rawURL (already escaped); body, when not nil, is sent as JSON
// with Content-Type application/json unless contentType says otherwise ("-" for none).
func call(t *testing.T, method, rawURL, token string, body any, contentType ...string) result {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		case string:
			rd = strings.NewReader(b)
		default:
			j, err := json.Marshal(b)
			require.NoError(t, err)
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, rawURL, rd)
	require.NoError(t, err)
	ct := "application/json"
	if len(contentType) > 0 {
		ct = contentType[0]
	}
	if body != nil && ct != "-" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// api builds the URL of a Certificate Manager path in region; each {} in path is
// replaced by the next CRN, escaped as IBM's clients do.
func (f *fixture) api(region, path string, crns ...string) string {
	for _, c := range crns {
		path = strings.Replace(path, "{}", crn.PathEscape(c), 1)
	}
	return f.sim.RegionURL(f.srv.URL, region) + path
}

func issue(t *testing.T, domains ...string) *testpki.Issued {
	t.Helper()
	iss, err := testCA.Issue(testpki.Options{Domains: domains})
	require.NoError(t, err)
	return iss
}

func importBody(name, desc string, iss *testpki.Issued) map[string]any {
	return map[string]any{"name": name, "description": desc, "data": map[string]string{
		"content": iss.CertPEM, "priv_key": iss.KeyPEM, "intermediate": iss.Intermediate,
	}}
}

// receiver is a Callback URL endpoint that records what it gets.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	ctypes []string
	status int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.ctypes = append(r.ctypes, req.Method+" "+req.Header.Get("Content-Type"))
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// tokens returns the JWTs received so far.
func (r *receiver) tokens(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		var env map[string]string
		require.NoError(t, json.Unmarshal(b, &env))
		require.Len(t, env, 1, "the body is exactly {\"data\": ...}")
		out = append(out, env["data"])
	}
	return out
}

// decodeJWT returns the raw header and payload bytes of a compact JWS.
func decodeJWT(t *testing.T, tok string) (header, payload []byte) {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	return h, p
}
