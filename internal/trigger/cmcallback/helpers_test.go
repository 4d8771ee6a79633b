package cmcallback

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// The source instance of the captured real payloads (docs/services/certificate-manager.md
// §11.4).
const (
	account   = "30f0a21f77994b9eb414b37300e2ced1"
	srcGUID   = "91a17928-da3c-4465-9c4b-f1a6b4dce684"
	srcCRN    = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + account + ":" + srcGUID + "::"
	srcPrefix = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + account + ":" + srcGUID + ":"
	srcCert   = srcPrefix + "certificate:071dfc45f85442e0c840196317e1afe6"
	srcCert2  = srcPrefix + "certificate:bd06f268c1b9ebf4d9aa403b556a132f"
	dummyCert = srcPrefix + "certificate:12345678-9012-3456-7890-123456789012"

	otherGUID     = "0c6b3a2e-1111-4222-8333-944444444444"
	otherCRN      = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + account + ":" + otherGUID + "::"
	otherCert     = "crn:v1:bluemix:public:cloudcerts:us-south:a/" + account + ":" + otherGUID + ":certificate:071dfc45f85442e0c840196317e1afe6"
	otherAcctCert = "crn:v1:bluemix:public:cloudcerts:us-south:a/ffffffffffffffffffffffffffffffff:" + srcGUID + ":certificate:071dfc45f85442e0c840196317e1afe6"
	otherRegCert  = "crn:v1:bluemix:public:cloudcerts:eu-de:a/" + account + ":" + srcGUID + ":certificate:071dfc45f85442e0c840196317e1afe6"
	stagingCert   = "crn:v1:staging:public:cloudcerts:us-south:a/" + account + ":" + srcGUID + ":certificate:071dfc45f85442e0c840196317e1afe6"
)

// testNow is the fixed clock of the tests: a few days before the captured certificate
// expires.
var testNow = time.Date(2021, 6, 1, 12, 0, 0, 0, time.UTC)

type testKeys struct {
	source, rotated, attacker *rsa.PrivateKey
	small                     *rsa.PrivateKey // 1024 bits: refused as a configured key
	ec                        *ecdsa.PrivateKey
}

// keys are generated once per test binary; no key material is committed.
var keys = sync.OnceValue(func() testKeys {
	gen := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return k
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKeys{source: gen(2048), rotated: gen(2048), attacker: gen(2048), small: gen(1024), ec: ec}
})

func pemSPKI(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(tb, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func pemPKCS1(pub *rsa.PublicKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRaw signs exactly the given header and payload bytes, so that tests control key
// order, duplicates and whitespace.
func signRaw(tb testing.TB, m jwt.SigningMethod, key any, header string, payload []byte) string {
	tb.Helper()
	ss := b64([]byte(header)) + "." + b64(payload)
	sig, err := m.Sign(ss, key)
	require.NoError(tb, err)
	return ss + "." + b64(sig)
}

const rs256Header = `{"alg":"RS256"}`

// signPayload signs payload (a map or raw JSON bytes) RS256 with key, header exactly as
// Certificate Manager sends it.
func signPayload(tb testing.TB, key *rsa.PrivateKey, payload any) string {
	tb.Helper()
	return signRaw(tb, jwt.SigningMethodRS256, key, rs256Header, toJSON(tb, payload))
}

func toJSON(tb testing.TB, payload any) []byte {
	tb.Helper()
	if b, ok := payload.([]byte); ok {
		return b
	}
	b, err := json.Marshal(payload)
	require.NoError(tb, err)
	return b
}

type obj = map[string]any

// lifecycle builds a lifecycle payload of the given version, shaped like the documented
// template of that version.
func lifecycle(version int, event string, certs ...obj) obj {
	if len(certs) == 0 {
		certs = []obj{certOf(version, srcCert)}
	}
	list := make([]any, len(certs))
	for i, c := range certs {
		list[i] = c
	}
	p := obj{
		"instance_crn":            srcCRN,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x",
		"event_type":              event,
		"certificates":            list,
		"version":                 version,
	}
	if version == 4 {
		p["latestVersion"] = 4
	}
	if strings.Contains(event, "about_to_expire") {
		p["expiry_date"] = 1623283200000
	}
	return p
}

// certOf is a certificate entry of the given payload version: v2 has no expires_on.
func certOf(version int, crn string) obj {
	c := obj{"cert_crn": crn, "name": "example.com", "domains": "example.com,*.example.com"}
	if version >= 3 {
		c["expires_on"] = 1623293628000
	}
	return c
}

func domainValidation(event string) obj {
	return obj{
		"instance_crn":             srcCRN,
		"certificate_manager_url":  "https://cloud.ibm.com/services/cloudcerts/x",
		"event_type":               event,
		"certificateCRN":           srcCert,
		"domain_validation_method": "dns-01",
		"domain":                   "*.example.com",
		"challenge":                obj{"txt_record_name": "_acme-challenge", "txt_record_val": "dGhlIGNoYWxsZW5nZQ"},
		"version":                  4,
		"latestVersion":            4,
	}
}

// with returns a copy of p with the given keys set (nil value: key removed).
func with(p obj, kv ...any) obj {
	q := maps.Clone(p)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(q, kv[i].(string))
			continue
		}
		q[kv[i].(string)] = kv[i+1]
	}
	return q
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fetcher is a fake KeyFunc that counts its calls.
type fetcher struct {
	mu    sync.Mutex
	pem   string
	err   error
	delay time.Duration
	calls atomic.Int64
}

func (f *fetcher) Fetch(ctx context.Context) (string, error) {
	f.calls.Add(1)
	f.mu.Lock()
	pem, err, delay := f.pem, f.err, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return pem, err
}

// RotateKey makes the fake endpoint serve another key from now on.
func (f *fetcher) RotateKey(pem string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pem, f.err = pem, nil
}

func (f *fetcher) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func staticVerifier(tb testing.TB) *Verifier {
	tb.Helper()
	v, err := NewVerifier(Config{
		SourceInstanceCRN:  srcCRN,
		StaticPublicKeyPEM: pemSPKI(tb, &keys().source.PublicKey),
		Now:                func() time.Time { return testNow },
	})
	require.NoError(tb, err)
	return v
}

func fetchingVerifier(tb testing.TB, f *fetcher, c *clock) *Verifier {
	tb.Helper()
	v, err := NewVerifier(Config{SourceInstanceCRN: srcCRN, Fetch: f.Fetch, Now: c.Now})
	require.NoError(tb, err)
	return v
}
