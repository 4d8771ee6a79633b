package smsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// testCA is shared: making a CA per test would only cost time.
var testCA = testpki.MustNewCA("Secrets Manager Simulator Test")

// API keys of the fixture, one per role on the fixture's instance.
const (
	keyReader        = "key-reader"
	keySecretsReader = "key-secrets-reader"
	keyWriter        = "key-writer"
	keyManager       = "key-manager"
)

// fakeClock is a settable clock for token expiry and timestamps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

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

// fixture is a served simulator with one instance and a key per role on it.
type fixture struct {
	t      *testing.T
	srv    *Server
	sim    *Simulator
	clock  *fakeClock
	inst   string // instance CRN
	base   string // instance base URL
	tokens map[string]string
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &fakeClock{t: time.Now().Truncate(time.Millisecond)}, tokens: map[string]string{}}
	if opts.Now == nil {
		opts.Now = f.clock.Now
	}
	srv, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	f.srv, f.sim = srv, srv.Simulator
	f.inst = f.sim.AddInstance("us-south")
	f.base = srv.InstanceURL(f.inst)
	for key, role := range map[string]Role{keyReader: Reader, keySecretsReader: SecretsReader, keyWriter: Writer, keyManager: Manager} {
		f.sim.Grant(key, f.inst, role)
	}
	return f
}

// token gets (and caches) an access token for key through the IAM endpoint.
func (f *fixture) token(key string) string {
	f.t.Helper()
	if tok, ok := f.tokens[key]; ok {
		return tok
	}
	form := url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {key}}
	resp, err := http.Post(f.srv.IAMURL()+"/identity/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	defer resp.Body.Close()
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(f.t, json.NewDecoder(resp.Body).Decode(&out))
	f.tokens[key] = out.AccessToken
	return out.AccessToken
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
}

// String is the body for failure messages, unless it may hold a key or a token.
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

// errorMessage is errors[0].message of an error body.
func (r result) errorMessage(t *testing.T) string {
	t.Helper()
	var b errorBody
	r.json(t, &b)
	require.Len(t, b.Errors, 1, "body: %s", r)
	require.Equal(t, r.status, b.StatusCode)
	require.NotEmpty(t, b.Trace)
	return b.Errors[0].Message
}

// call sends a request to the instance (path after the base URL) as key ("" = no
// token). A body that is not a string or []byte is sent as JSON.
func (f *fixture) call(key, method, path, contentType string, body any) result {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(f.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	require.NoError(f.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+f.token(key))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) get(key, path string) result { return f.call(key, http.MethodGet, path, "", nil) }

func (f *fixture) postJSON(key, path string, body any) result {
	return f.call(key, http.MethodPost, path, "application/json", body)
}

// importBody is a valid create body for an imported certificate.
func importBody(name string, iss *testpki.Issued) map[string]any {
	return map[string]any{
		"secret_type": "imported_cert", "name": name,
		"certificate": iss.CertPEM, "intermediate": iss.Intermediate, "private_key": iss.KeyPEM,
	}
}

// create imports iss as name through the API and returns the secret id.
func (f *fixture) create(name string, iss *testpki.Issued, extra map[string]any) string {
	f.t.Helper()
	b := importBody(name, iss)
	for k, v := range extra {
		b[k] = v
	}
	r := f.postJSON(keyWriter, "/api/v2/secrets", b)
	require.Equal(f.t, http.StatusCreated, r.status, "body: %s", r)
	var out struct {
		ID string `json:"id"`
	}
	r.json(f.t, &out)
	return out.ID
}

// seed stores an imported certificate through the Go API.
func (f *fixture) seed(name string, iss *testpki.Issued) string {
	f.t.Helper()
	id, err := f.sim.Seed(f.inst, Seed{Name: name, Certificate: iss.CertPEM, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM})
	require.NoError(f.t, err)
	return id
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
