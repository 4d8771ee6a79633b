package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

// Cloud is one loopback IBM Cloud for the tests of the successor paths: a Certificate
// Manager simulator and a Secrets Manager simulator behind one server and one IAM, as
// certbackup's configuration has one iam_url for every instance whatever its service.
//
// Each simulator plays its own IAM and accepts only its own tokens. The Cloud's IAM
// (POST <URL>/identity/token) asks both for a token for the API key it is given and
// hands out one token of its own that stands for both; a request under <URL>/cm/ or
// <URL>/sm/ reaches its simulator with that simulator's own token put back and the
// prefix taken off. Everything else passes through untouched, so each simulator still
// checks every request (roles included), applies its faults and records it in its log.
type Cloud struct {
	CM  *cmsim.Simulator
	SM  *smsim.Simulator
	URL string

	srv *httptest.Server

	mu     sync.Mutex
	tokens map[string]map[string]string // our token -> "cm"/"sm" -> the simulator's token
	front  func(http.Handler) http.Handler
}

// FrontSM puts wrap in front of the Secrets Manager simulator (after the prefix and
// the token are translated), for what a simulator's faults cannot do: a gateway that
// holds a request it has accepted and hands it on after the client gave up, for
// example. nil removes it.
func (c *Cloud) FrontSM(wrap func(http.Handler) http.Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.front = wrap
}

// CloudOptions configure NewCloud; the zero value is usable.
type CloudOptions struct {
	CM cmsim.Options
	SM smsim.Options
}

// NewCloud starts both simulators behind one loopback server until the test ends.
func NewCloud(tb testing.TB, o CloudOptions) *Cloud {
	tb.Helper()
	cm, err := cmsim.New(o.CM)
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cloud{CM: cm, SM: smsim.New(o.SM), tokens: map[string]map[string]string{}}
	c.srv = httptest.NewServer(c)
	tb.Cleanup(c.srv.Close)
	c.URL = c.srv.URL
	return c
}

// IAMURL is the value of iam_url (IAM_URL).
func (c *Cloud) IAMURL() string { return c.URL }

// AddAPIKey registers key in both simulators.
func (c *Cloud) AddAPIKey(key string) {
	c.CM.AddAPIKey(key)
	c.SM.AddAPIKey(key)
}

// SMURL is the base URL of a Secrets Manager instance: the value of its `endpoints`
// override keyed by its CRN.
func (c *Cloud) SMURL(instanceCRN string) string {
	u, err := c.SM.InstanceURL(c.URL+"/sm", instanceCRN)
	if err != nil {
		panic("harness: " + err.Error())
	}
	return u
}

// CMURL is the base URL of the Certificate Manager region: the value of its
// `endpoints` override keyed by the region.
func (c *Cloud) CMURL(region string) string { return c.CM.RegionURL(c.URL+"/cm", region) }

// Endpoints is the `endpoints` parameter (as JSON) that reaches every given instance
// here: a Certificate Manager instance by its region, a Secrets Manager instance by
// its CRN, as the contract keys them.
func (c *Cloud) Endpoints(instances ...string) string {
	ep := map[string]string{}
	for _, inst := range instances {
		parts := strings.Split(inst, ":")
		if len(parts) < 6 {
			panic("harness: not an instance CRN")
		}
		switch parts[4] {
		case "cloudcerts":
			ep[parts[5]] = c.CMURL(parts[5])
		case "secrets-manager":
			ep[inst] = c.SMURL(inst)
		default:
			panic("harness: no simulator serves " + parts[4])
		}
	}
	b, _ := json.Marshal(ep)
	return string(b)
}

// ServeHTTP is the shared IAM and the two gateways.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/identity/token":
		c.token(w, r)
	case strings.HasPrefix(r.URL.Path, "/cm/"):
		c.forward(w, r, "cm", c.CM)
	case strings.HasPrefix(r.URL.Path, "/sm/"):
		c.mu.Lock()
		front := c.front
		c.mu.Unlock()
		var h http.Handler = c.SM
		if front != nil {
			h = front(h)
		}
		c.forward(w, r, "sm", h)
	default:
		http.NotFound(w, r)
	}
}

func (c *Cloud) forward(w http.ResponseWriter, r *http.Request, name string, h http.Handler) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/"+name)
	r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/"+name)
	r2.RequestURI = r2.URL.RequestURI()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		c.mu.Lock()
		up, known := c.tokens[tok]
		c.mu.Unlock()
		if known {
			r2.Header.Set("Authorization", "Bearer "+up[name])
		}
	}
	h.ServeHTTP(w, r2)
}

// token gets a token from each simulator for the same form. When only one knows the
// key, the token stands for that one (the other then answers 401, as for any unknown
// token); when neither does, the Certificate Manager simulator's refusal is the answer.
func (c *Cloud) token(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "read the request", http.StatusBadRequest)
		return
	}
	got := map[string]string{}
	var refusal *httptest.ResponseRecorder
	var lifetime any
	for _, up := range []struct {
		name string
		h    http.Handler
	}{{"cm", c.CM}, {"sm", c.SM}} {
		req := httptest.NewRequest(http.MethodPost, "/identity/token", strings.NewReader(string(body)))
		req.Header = r.Header.Clone()
		rec := httptest.NewRecorder()
		up.h.ServeHTTP(rec, req)
		var tok map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
			if refusal == nil {
				refusal = rec
			}
			continue
		}
		got[up.name], _ = tok["access_token"].(string)
		lifetime = tok["expires_in"]
	}
	if len(got) == 0 {
		for k, v := range refusal.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(refusal.Code)
		_, _ = w.Write(refusal.Body.Bytes())
		return
	}
	tok := "cloudtok-" + hexString(24)
	c.mu.Lock()
	c.tokens[tok] = got
	c.mu.Unlock()
	exp, _ := lifetime.(float64)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "refresh_token": "cloudref-" + hexString(24), "token_type": "Bearer",
		"expires_in": int64(exp), "expiration": time.Now().Unix() + int64(exp), "scope": "ibm openid",
	})
}

// Tokens lists every access token the Cloud and its simulators issued, for the secrets
// scan.
func (c *Cloud) Tokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for t, up := range c.tokens {
		out = append(out, t)
		for _, u := range up {
			out = append(out, u)
		}
	}
	return out
}

// SMPrivateKeys lists the private key of every version of every secret that still has
// its payload, in the given Secrets Manager instances, for the secrets scan.
func (c *Cloud) SMPrivateKeys(instances ...string) []string {
	var out []string
	for _, inst := range instances {
		secrets, err := c.SM.List(inst)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			for _, v := range s.Versions {
				if v.PrivateKey != "" {
					out = append(out, v.PrivateKey)
				}
			}
		}
	}
	return out
}

// CMPrivateKeys lists the private key of every certificate in the given Certificate
// Manager instances, for the secrets scan.
func (c *Cloud) CMPrivateKeys(instances ...string) []string {
	var out []string
	for _, inst := range instances {
		for _, s := range c.CM.Snapshot(inst) {
			if s.Data.PrivKey != "" {
				out = append(out, s.Data.PrivKey)
			}
		}
	}
	return out
}

func hexString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
