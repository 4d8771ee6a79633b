package openwhisk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/runtime/openwhisk"
)

// Fixed CRNs, so that a seed naming them means the same in the fuzzing coordinator and
// in every worker. Certificate ids are random: payloads say $CERT (a certificate of the
// source), $OTHER (one of another instance) and $SRC, replaced before signing.
const (
	fzAccount = "f0221f0221f0221f0221f0221f0221f0"
	fzSrc     = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + fzAccount + ":0f0f0f0f-0000-4000-8000-000000000001::"
	fzBackup  = "crn:v1:bluemix:public:cloudcerts:eu-de:a/" + fzAccount + ":0f0f0f0f-0000-4000-8000-000000000002::"
	fzOther   = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + fzAccount + ":0f0f0f0f-0000-4000-8000-000000000003::"
	fzAPIKey  = "fuzz-apikey-7c1d0b5e9a4f4e2b8d6c3a1f0e9d8c7b"
)

// Flags of a fuzz input.
const (
	fzShape  = 0x07 // how the token (or text) reaches the parameters, see fuzzParams
	fzWeb    = 0x08 // add the web request context (__ow_method, __ow_headers, __ow_path)
	fzSigned = 0x10 // replace the text by payload signed with the source's real key
	fzStatic = 0x20 // configure source_public_key instead of fetching it
	fzOthers = 0x40 // with fzSigned: sign with another instance's key instead
)

// fuzzWorld is one simulator for every input of a worker, behind a transport that
// refuses (and reports) any host but the simulator.
type fuzzWorld struct {
	sim     *cmsim.Simulator
	bound   map[string]any // as manifest.yaml binds them
	static  string         // the source's public key PEM
	cert    string         // a certificate of the source
	other   string         // a certificate of another instance
	keyPEM  string         // the private key of cert
	client  *http.Client
	mu      sync.Mutex
	strange []string // requests to another host
}

type guard struct {
	w    *fuzzWorld
	host string
	next http.RoundTripper
}

func (g guard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != g.host {
		g.w.mu.Lock()
		g.w.strange = append(g.w.strange, r.Method+" "+r.URL.Redacted())
		g.w.mu.Unlock()
		return nil, errors.New("fuzz: request to a host that is not the simulator")
	}
	return g.next.RoundTrip(r)
}

func newFuzzWorld(tb testing.TB) *fuzzWorld {
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(tb, err)
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	for _, c := range []string{fzSrc, fzBackup, fzOther} {
		require.NoError(tb, sim.AddInstanceCRN(c))
	}
	sim.AddAPIKey(fzAPIKey)
	sim.Grant(fzAPIKey, fzSrc, cmsim.Writer)
	sim.Grant(fzAPIKey, fzBackup, cmsim.Manager)
	issued := sim.CA().MustIssue("fuzz.example.com")
	w := &fuzzWorld{sim: sim, keyPEM: issued.KeyPEM}
	w.cert = sim.Seed(fzSrc, "fuzz", "", issued)
	w.other = sim.Seed(fzOther, "fuzz", "", sim.CA().MustIssue("other.example.com"))
	w.static, err = sim.PublicKeyPEM(fzSrc)
	require.NoError(tb, err)
	u, err := url.Parse(srv.URL)
	require.NoError(tb, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	w.client = &http.Client{Timeout: 10 * time.Second, Transport: guard{w: w, host: u.Host, next: tr}}
	ep, _ := json.Marshal(map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south"), "eu-de": sim.RegionURL(srv.URL, "eu-de")})
	w.bound = map[string]any{
		"mode": "notify", "apikey": fzAPIKey, "backup_apikey": "", "source_instance_crn": fzSrc,
		"backup_instance_crns": `["` + fzBackup + `"]`, "source_public_key": "",
		"iam_url": sim.IAMURL(srv.URL), "endpoints": string(ep), "private_endpoints": "",
	}
	return w
}

var reserved = []string{"__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"}

// fuzzParams builds the activation's parameters from text the way the web layer would
// (or a direct invoker could), by shape:
//
//	0 data = text                      4 data = text decoded as JSON (any type)
//	1 __ow_body = text (text/plain)    5 __ow_body = text decoded as JSON (any type)
//	2 __ow_body = base64(text) (binary) 6 data = text and __ow_body = base64(text)
//	3 text decoded as JSON: an object is merged (bound and reserved names skipped, as
//	  the final annotation refuses them), anything else is __ow_body
//	7 nothing but the bound parameters
//
// JSON that does not decode is used as a string.
func (w *fuzzWorld) fuzzParams(flags uint8, text string) map[string]any {
	p := map[string]any{}
	for k, v := range w.bound {
		p[k] = v
	}
	if flags&fzStatic != 0 {
		p["source_public_key"] = w.static
	}
	decoded := func() any {
		var v any
		if json.Unmarshal([]byte(text), &v) != nil {
			return text
		}
		return v
	}
	switch flags & fzShape {
	case 0:
		p["data"] = text
	case 1:
		p["__ow_body"] = text
	case 2:
		p["__ow_body"] = base64.StdEncoding.EncodeToString([]byte(text))
	case 3:
		v := decoded()
		if obj, ok := v.(map[string]any); ok {
			for k, x := range obj {
				if _, isBound := w.bound[k]; !isBound && !slices.Contains(reserved, k) {
					p[k] = x
				}
			}
		} else {
			p["__ow_body"] = v
		}
	case 4:
		p["data"] = decoded()
	case 5:
		p["__ow_body"] = decoded()
	case 6:
		p["data"] = text
		p["__ow_body"] = base64.StdEncoding.EncodeToString([]byte(text))
	}
	if flags&fzWeb != 0 {
		p["__ow_method"] = "post"
		p["__ow_headers"] = map[string]any{"content-type": "application/json", "host": "localhost"}
		p["__ow_path"] = ""
	}
	return p
}

// expand replaces the placeholders of a payload.
func (w *fuzzWorld) expand(payload []byte) []byte {
	r := strings.NewReplacer("$SRC", fzSrc, "$CERT", w.cert, "$OTHER", w.other)
	return []byte(r.Replace(string(payload)))
}

// FuzzHandle drives Action.Handle with arbitrary parameters as the web layer or an
// invoker could produce them, against the simulator. Unless the input is a payload
// signed with the source's real key, the only request the action may make is the fetch
// of the source's public key: no IAM token, no listing, no download, no write, no other
// host. Signed payloads may lead to a copy, but only from the source into the backup.
// Every result is a web response whose status is one the handler documents; the API
// key, the signed token and the private key never appear in the result or the logs.
func FuzzHandle(f *testing.F) {
	w := newFuzzWorld(f)
	const s = fzSigned
	payload := func(format string) []byte { return []byte(format) }
	issued := payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"latestVersion":4,"certificates":[{"cert_crn":"$CERT","name":"fuzz","domains":"fuzz.example.com","expires_on":1900000000000}]}`)
	for _, seed := range []struct {
		flags   uint8
		text    string
		payload []byte
	}{
		// Unsigned shapes of test/hostile.
		{0, "", nil}, {0, "a.b.c", nil}, {4, `12345`, nil}, {4, `{"data":"a.b.c"}`, nil}, {4, `["a.b.c"]`, nil},
		{4, `null`, nil}, {4, `true`, nil},
		{0, "eyJhbGciOiJub25lIn0.eyJpbnN0YW5jZV9jcm4iOiJ4In0.", nil},
		{0, "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl", nil},
		{0, "eyJhbGciOiJSUzI1NiIsImprdSI6Imh0dHA6Ly8xMjcuMC4wLjE6MS9qd2tzLmpzb24ifQ.e30.AAAA", nil},
		{1, `{"data":"a.b.c","data":"d.e.f"}`, nil}, {2, `{"data":"a.b.c","Data":"x"}`, nil},
		{1, `{"data":"a.b.c"} {"data":"x"}`, nil}, {1, "not json, not base64!", nil}, {1, "3q2+7w==", nil},
		{3, `[{"data":"a.b.c"}]`, nil}, {3, `"a.b.c"`, nil}, {3, `42`, nil}, {3, `{}`, nil},
		{3 | fzWeb, `{"data":"a.b.c","apikey":"x","iam_url":"http://evil.example","concurrency":"lots"}`, nil},
		{3 | fzWeb, `{"data":"a.b.c","prune":"true","max_concurrency":0}`, nil},
		{5, `{"data":"a.b.c"}`, nil}, {5, `42`, nil}, {6, "a.b.c", nil}, {7, "", nil}, {7 | fzWeb, "", nil},
		// Signed by the source: the control, and the payload shapes of test/hostile.
		{s, "", issued}, {s | 1, "", issued}, {s | 2 | fzWeb, "", issued}, {s | 3, "", issued}, {s | 5 | fzStatic, "", issued},
		{s | fzOthers, "", issued},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$OTHER"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$CERT"},{"cert_crn":"$OTHER"}]}`)},
		{s, "", payload(`{"instance_crn":"` + fzOther + `","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"` + strings.TrimSuffix(fzSrc, ":") + `certificate:../../x"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$CERT%2F..%2Fx"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","instance_crn":"` + fzOther + `","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":"$OTHER","cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":1,"certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_issued","version":"4","certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_renewed","version":4,"exp":1000000000,"certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_reimported","version":2,"nbf":99999999999,"certificates":[{"cert_crn":"$CERT"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"test_notification_channel","version":4,"certificates":[{"cert_crn":"` + strings.TrimSuffix(fzSrc, ":") + `certificate:12345678-9012-3456-7890-123456789012"}]}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"cert_domain_validation_required","version":4,"certificateCRN":"$OTHER","domain":"x","challenge":{"txt_record_name":"a","txt_record_val":"b"}}`)},
		{s, "", payload(`{"instance_crn":"$SRC","event_type":"something_new","version":3,"certificates":[{"cert_crn":"$OTHER"}]}`)},
	} {
		f.Add(seed.flags, seed.text, seed.payload)
	}

	f.Fuzz(func(t *testing.T, flags uint8, text string, payload []byte) {
		signedBySource := false
		var token string
		if flags&fzSigned != 0 {
			if len(payload) > 64<<10 {
				return // signing is the slow part; large payloads add nothing here
			}
			signer := fzSrc
			if flags&fzOthers != 0 {
				signer = fzOther
			} else {
				signedBySource = true
			}
			token = w.sim.Sign(signer, w.expand(payload))
			text = token
			switch flags & fzShape {
			case 1, 2, 3, 5:
				b, _ := json.Marshal(map[string]string{"data": token})
				text = string(b)
			case 4:
				b, _ := json.Marshal(token)
				text = string(b)
			}
		}
		params := w.fuzzParams(flags, text)

		w.sim.ResetLog()
		w.mu.Lock()
		w.strange = nil
		w.mu.Unlock()
		var logs bytes.Buffer
		a := openwhisk.New(openwhisk.Options{
			Logger:           slog.New(slog.NewJSONHandler(&logs, nil)),
			HTTPClient:       w.client,
			MinRetryInterval: time.Millisecond, MaxRetryInterval: 5 * time.Millisecond,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res := a.Handle(ctx, openwhisk.Meta{ActivationID: "fuzz", Deadline: time.Now().Add(60 * time.Second)}, params)

		require.NotNil(t, res, "Handle returned no result (a recovered panic?)")
		status, ok := res["statusCode"].(int)
		require.True(t, ok, "no statusCode in %v", res)
		_, ok = res["body"].(map[string]any)
		require.True(t, ok, "no body in %v", res)
		allowed := []int{400, 401, 403, 413, 500, 503}
		if signedBySource {
			allowed = append(allowed, 200)
		}
		require.Contains(t, allowed, status, "status %d (signed by the source: %v): %v", status, signedBySource, res["body"])

		w.mu.Lock()
		strange := w.strange
		w.mu.Unlock()
		require.Empty(t, strange, "requests to a host that is not configured")
		reqs := w.sim.Requests()
		for _, r := range reqs {
			what := fmt.Sprintf("%s %s?%s (op %q)", r.Method, r.EscapedPath, r.Query, r.Op)
			if !signedBySource || status != 200 {
				require.Equal(t, cmsim.OpPublicKey, r.Op, "a request other than the key fetch: %s", what)
				require.Equal(t, fzSrc, r.Instance, what)
				continue
			}
			require.NotEmpty(t, r.Op, "a request the API does not have: %s", what)
			switch r.Op {
			case cmsim.OpIAMToken:
			case cmsim.OpPublicKey, cmsim.OpDownload:
				require.True(t, r.Instance == fzSrc || r.Instance == fzBackup, what)
				if r.Op == cmsim.OpDownload && r.Instance == fzSrc {
					require.True(t, crn.CertificateBelongsTo(r.Cert, fzSrc), what)
				}
			case cmsim.OpList, cmsim.OpMetadata, cmsim.OpImport, cmsim.OpReimport, cmsim.OpUpdate, cmsim.OpDelete:
				require.Equal(t, fzBackup, r.Instance, "only the backup is listed or written: %s", what)
			default:
				t.Fatalf("unexpected operation: %s", what)
			}
		}
		require.Zero(t, w.sim.Writes(fzSrc), "a write into the source")
		require.Zero(t, w.sim.Writes(fzOther), "a write into another instance")

		out, err := json.Marshal(res)
		require.NoError(t, err)
		for what, text := range map[string]string{"result": string(out), "logs": logs.String()} {
			require.NotContains(t, text, fzAPIKey, "API key in the %s", what)
			require.NotContains(t, text, "PRIVATE KEY", "private key in the %s", what)
			require.NotContains(t, text, keyLine(w.keyPEM), "private key material in the %s", what)
			if token != "" {
				require.NotContains(t, text, token, "the token in the %s", what)
			}
		}
	})
}

// keyLine is a long line of the base64 body of a PEM block.
func keyLine(p string) string {
	for _, l := range strings.Split(p, "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			return l
		}
	}
	return "\x00no key line\x00"
}
