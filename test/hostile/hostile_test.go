// Package hostile is the hostile-request corpus of issue 6: requests an attacker on the
// internet (or a confused invoker) can send to the notify web action, and the marker
// attacks that a principal with only the Writer role on a backup can prepare for the
// next genuine notification (markerCases). Each is sent to the real action binary
// (built and zipped as ./deploy.sh build does, started over ActionLoop behind the
// web-action layer with the parameters bound as manifest.yaml binds them, `final:
// true`), against the Certificate Manager simulator.
//
// Every case asserts the HTTP status and, through the simulator's request log, that
// nothing was written, downloaded or listed; the only request a refused notification may
// cause is the fetch of the source's public key. A marker attack is a genuine
// notification: it is copied, and the certificates the attack prepared are left
// exactly as they were. Each group has a control that must be accepted and must make a
// copy: without them a broken stack (every request refused) would pass every negative
// case.
package hostile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/test/harness"
)

// Who produces the answer.
const (
	byAction     = iota // the activation ran; the action chose the status (web .http result)
	byController        // the web-action layer refused the request; no activation
	byRun               // invoked directly (Stack.Run): the result's statusCode
)

// Controller messages (apache/openwhisk Messages.scala, as internal/devtools/owproxy writes them).
const (
	msgNotAllowed = "Request defines parameters that are not allowed (e.g., reserved properties)."
	msgTooLarge   = "Request larger than allowed"
)

// request is what a case sends.
type request struct {
	method      string // default POST
	query       string // raw query string, without '?'
	body        []byte
	contentType string
	// run, when set, invokes the action directly with these parameters merged over the
	// bound ones, as a trigger or a caller with the namespace's credentials would.
	run map[string]any
	// copyOf is the source certificate a control expects in every backup afterwards.
	copyOf string
	// foreign are certificates in the backups that certbackup did not create, as the
	// case left them (a Writer's edits included): the notification must leave them
	// exactly so (markerCases).
	foreign map[string]cmsim.StoredCertificate
	// reported are the foreign certificates the answer must list as conflicts of copyOf.
	reported []string
}

type hostileCase struct {
	name string
	why  string
	// build makes the request. It runs before the simulator's log is reset, so it may
	// prepare state (seed certificates, send a first copy of a replayed token).
	build  func(t *testing.T, f *fixture) request
	status int
	by     int
	// class is the action's "error" field (byAction, byRun) or the start of the
	// controller's message (byController). "" for accepted requests.
	class string
	// action is the "action" field of an accepted notification.
	action string
	// control: accepted, and build's copyOf is now copied into every backup.
	control bool
	// markers must appear in no path or query the simulator received.
	markers []string
}

type response struct {
	status    int
	body      map[string]any
	raw       string
	activated bool
}

// fixture is everything the cases share: one stack for the whole table.
type fixture struct {
	s         *harness.Stack
	acct      string // the source's account
	srcGUID   string
	other     string // another instance, same account and region
	otherCert string
	// An instance of another account, and one of its certificates.
	otherAcct, otherAcctCert string
	attacker                 *rsa.PrivateKey
	ec                       *ecdsa.PrivateKey
	// static is configured as source_public_key in the Run cases, so that a token signed
	// with it in another algorithm fails only because of the algorithm.
	static    *rsa.PrivateKey
	staticPEM string
	sourcePEM string // what the source's public-key endpoint serves
	lure      *httptest.Server
	lureHits  atomic.Int64
	seq       int
	sent      []string // every token sent, for the secrets scan
	keyPEMs   []string // private keys of the seeded certificates
	caseToks  []string // tokens of the running case
	// writer is a principal with the Writer role, and nothing more, on every backup:
	// it can edit names and descriptions there, not import or delete (markerCases).
	writer string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{s: harness.NewStack(t, harness.Options{Backups: 2, NoChannel: true})}
	src, err := crn.ParseInstance(f.s.Source)
	require.NoError(t, err)
	f.acct, f.srcGUID = src.Account, src.Instance

	f.other = f.s.Sim.AddInstance(src.Region)
	f.otherCert = f.s.Sim.Seed(f.other, "web", "", f.s.Sim.CA().MustIssue("www.other.example"))
	oa := src
	oa.Account, oa.Instance = "0ther0ther0ther0ther0ther0ther00", "6a0a2c1e-0b1d-4c6e-8f00-1234567890ab"
	f.otherAcct = oa.String()
	require.NoError(t, f.s.Sim.AddInstanceCRN(f.otherAcct))
	f.otherAcctCert = f.s.Sim.Seed(f.otherAcct, "web", "", f.s.Sim.CA().MustIssue("www.otheracct.example"))

	f.writer = "writer-" + f.srcGUID
	for _, b := range f.s.Backups {
		f.s.Sim.Grant(f.writer, b, cmsim.Writer)
	}

	f.attacker, f.ec, f.static = newRSA(t), newEC(t), newRSA(t)
	f.staticPEM = publicPEM(t, &f.static.PublicKey)
	f.sourcePEM, err = f.s.Sim.PublicKeyPEM(f.s.Source)
	require.NoError(t, err)

	// The lure serves what an attacker's key server would (a JWKS with the attacker's key,
	// its certificate), so that following jku/x5u/kid would make the forgery verify.
	certDER := selfSigned(t, f.attacker)
	f.lure = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.lureHits.Add(1)
		if strings.HasSuffix(r.URL.Path, ".pem") {
			_, _ = w.Write(pemBlock("CERTIFICATE", certDER))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk(&f.attacker.PublicKey)}})
	}))
	t.Cleanup(f.lure.Close)
	return f
}

// fresh seeds a new certificate in the source (the Go API: not logged, no event).
func (f *fixture) fresh(t *testing.T) string {
	t.Helper()
	f.seq++
	issued := f.s.Sim.CA().MustIssue(fmt.Sprintf("h%d.hostile.example", f.seq))
	f.keyPEMs = append(f.keyPEMs, issued.KeyPEM)
	return f.s.Sim.Seed(f.s.Source, fmt.Sprintf("hostile-%d", f.seq), "", issued)
}

// certID is a certificate CRN of the source with an arbitrary id text.
func (f *fixture) certID(id string) string {
	return strings.TrimSuffix(f.s.Source, ":") + "certificate:" + id
}

// event is a v4 payload as Certificate Manager sends it.
func event(instance, eventType string, certs ...string) map[string]any {
	list := []map[string]any{}
	for _, c := range certs {
		list = append(list, map[string]any{"cert_crn": c, "name": "web", "domains": "www.example.com", "expires_on": 1900000000000})
	}
	return map[string]any{
		"instance_crn": instance, "event_type": eventType, "version": 4, "latestVersion": 4,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x", "certificates": list,
	}
}

func (f *fixture) issued(certs ...string) map[string]any {
	return event(f.s.Source, "cert_issued", certs...)
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// token records a token this case sends (for the secrets scans) and returns it.
func (f *fixture) token(tok string) string {
	f.sent = append(f.sent, tok)
	f.caseToks = append(f.caseToks, tok)
	return tok
}

// signAs signs payload with instance's real notification key.
func (f *fixture) signAs(instance string, payload any) string {
	return f.token(f.s.Sim.Sign(instance, payload))
}

// sign signs payload as the source does.
func (f *fixture) sign(payload any) string { return f.signAs(f.s.Source, payload) }

func jsonBody(t *testing.T, v any) request {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return request{body: b, contentType: "application/json"}
}

func notify(t *testing.T, tok string) request {
	return jsonBody(t, map[string]any{"data": tok})
}

func raw(body, contentType string) request {
	return request{body: []byte(body), contentType: contentType}
}

func pemBlock(typ string, der []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "-----BEGIN %s-----\n%s\n-----END %s-----\n", typ, base64.StdEncoding.EncodeToString(der), typ)
	return b.Bytes()
}

// send delivers r as the internet (or Stack.Run) would.
func (f *fixture) send(t *testing.T, r request) response {
	t.Helper()
	if r.run != nil {
		status, out := f.s.Run(r.run)
		require.Equal(t, http.StatusOK, status, "the proxy answers 200; the result carries the status: %v", out)
		rawOut, _ := json.Marshal(out)
		code, _ := out["statusCode"].(float64)
		body, _ := out["body"].(map[string]any)
		return response{status: int(code), body: body, raw: string(rawOut), activated: true}
	}
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	u := f.s.WebURL
	if r.query != "" {
		u += "?" + r.query
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(r.body))
	require.NoError(t, err)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return response{status: resp.StatusCode, body: body, raw: string(b), activated: resp.Header.Get("X-Openwhisk-Activation-Id") != ""}
}

func TestHostileCorpus(t *testing.T) {
	t.Parallel() // its own stack: the package's other tests run beside it
	f := newFixture(t)
	cases := corpus()
	require.GreaterOrEqual(t, len(cases), 30)
	names := map[string]bool{}
	controls := 0
	for _, tc := range cases {
		require.False(t, names[tc.name], "duplicate case name %q", tc.name)
		names[tc.name] = true
		require.NotEmpty(t, tc.why, "case %q must say why it matters", tc.name)
		if tc.control {
			controls++
		}
		t.Run(tc.name, func(t *testing.T) {
			f.caseToks = nil
			r := tc.build(t, f)
			f.s.Sim.ResetLog()
			lureBefore := f.lureHits.Load()

			resp := f.send(t, r)

			require.Equal(t, tc.status, resp.status, "why: %s\nresponse: %.600s", tc.why, resp.raw)
			errField, _ := resp.body["error"].(string)
			switch tc.by {
			case byController:
				assert.False(t, resp.activated, "the web-action layer answers; the action must not run")
				assert.True(t, strings.HasPrefix(errField, tc.class), "controller message %q, want %q", errField, tc.class)
			case byAction:
				assert.True(t, resp.activated, "the action ran and chose the status")
				assert.Equal(t, tc.class, errField)
			case byRun:
				assert.Equal(t, tc.class, errField)
			}
			if tc.action != "" {
				assert.Equal(t, tc.action, resp.body["action"])
			}

			reqs := f.s.Sim.Requests()
			if tc.control {
				assertCopied(t, f, r.copyOf, r.foreign)
				assertForeignUntouched(t, f, r, resp)
			} else {
				assert.Zero(t, f.s.Sim.Writes(""), "nothing written")
				if tc.status != http.StatusOK {
					assert.Zero(t, f.s.Sim.Count(cmsim.OpDownload, ""), "nothing downloaded")
					assert.Zero(t, f.s.Sim.Count(cmsim.OpList, ""), "nothing listed")
					for _, q := range reqs {
						// A refused request may at most (re)fetch the source's public key, from
						// the configured endpoint, for the configured instance.
						assert.Equal(t, cmsim.OpPublicKey, q.Op, "unexpected request %s %s", q.Method, q.EscapedPath)
						assert.Equal(t, f.s.Source, q.Instance, "key fetched for another instance: %s", q.EscapedPath)
					}
				}
				if tc.status == http.StatusOK && tc.action != "replicate" {
					assert.Zero(t, f.s.Sim.Count(cmsim.OpDownload, ""), "an event that copies nothing downloads nothing")
					assert.Zero(t, f.s.Sim.Count(cmsim.OpList, ""), "and lists nothing")
				}
				if tc.by == byController || tc.status == http.StatusInternalServerError {
					assert.Empty(t, reqs, "no API call at all")
				}
			}
			for _, q := range reqs {
				for _, m := range tc.markers {
					assert.NotContains(t, q.EscapedPath, m, "hostile text reached a request path")
					assert.NotContains(t, q.Query, m, "hostile text reached a query")
				}
			}
			assert.Equal(t, lureBefore, f.lureHits.Load(), "the action followed a URL from the token header")
			for _, leak := range harness.FindSecrets(resp.raw, []string{f.s.APIKey}, f.keyPEMs, f.caseToks) {
				t.Errorf("secret in the response: %s %s", leak.Kind, leak.Excerpt)
			}
		})
	}
	assert.GreaterOrEqual(t, controls, 7, "a control per group")
	assert.Zero(t, f.lureHits.Load(), "the lure server was never contacted")
	for _, leak := range harness.FindSecrets(f.s.AllLogs(), []string{f.s.APIKey}, f.keyPEMs, f.sent) {
		t.Errorf("secret in the action's logs: %s %s", leak.Kind, leak.Excerpt)
	}
	t.Logf("%d hostile cases, %d controls", len(cases), controls)
}

// assertCopied: the control was accepted and cert is now in every backup, byte for byte,
// as one copy that certbackup proves is its own. Certificates in foreign are not
// copies, whatever their marker says (assertForeignUntouched checks them).
func assertCopied(t *testing.T, f *fixture, cert string, foreign map[string]cmsim.StoredCertificate) {
	t.Helper()
	require.NotEmpty(t, cert, "a control names the certificate it copies")
	src, ok := f.s.Sim.Get(cert)
	require.True(t, ok)
	assert.Positive(t, f.s.Sim.Count(cmsim.OpDownload, f.s.Source), "the source was read")
	for _, b := range f.s.Backups {
		assert.Positive(t, f.s.Sim.Writes(b), "a write into %s", b)
		var copies []cmsim.StoredCertificate
		for _, c := range f.s.Sim.Snapshot(b) {
			if _, notOurs := foreign[c.ID]; cms.IsCopyDescription(c.Description, cert) && !notOurs {
				copies = append(copies, c)
			}
		}
		if assert.Len(t, copies, 1, "one copy in %s", b) {
			assert.Equal(t, src.Data, copies[0].Data, "byte for byte")
			assert.Len(t, harness.ProvenCopies(f.s.Sim, match.NewOwner(f.s.APIKey), b, cert), 1, "the copy's marker is proven")
		}
	}
}

func corpus() []hostileCase {
	var all []hostileCase
	for _, group := range [][]hostileCase{
		signatureCases(), staticKeyCases(), trustCases(), pathCases(),
		bodyCases(), payloadCases(), overrideCases(), paramTypeCases(), markerCases(),
	} {
		all = append(all, group...)
	}
	return all
}

// signatureCases: forgeries of every classic shape. The payload always names a real
// certificate of the source, so that only the signature check stands between the
// request and a copy.
func signatureCases() []hostileCase {
	lureTok := func(t *testing.T, f *fixture, key, value string) string {
		return f.token(jws(t, map[string]any{"alg": "RS256", key: value}, f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha256Hash)))
	}
	return []hostileCase{
		{
			name: "signature/control valid RS256 from the source",
			why:  "the path works end to end: a genuine notification is verified and copied",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				r := notify(t, f.sign(f.issued(c)))
				r.copyOf = c
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "signature/wrong signing key",
			why:  "a well-formed RS256 token signed by anyone but the source must not verify",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.token(jws(t, rs256Header(), f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha256Hash))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/alg none",
			why:  "the unsecured JWS (RFC 7515 alg none) is the oldest JWT bypass",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.token(jws(t, map[string]any{"alg": "none"}, f.issued(f.fresh(t)), nil)))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/alg NONE with the source's signature kept",
			why:  "case variants of none, with a real signature attached, must not switch verification off",
			build: func(t *testing.T, f *fixture) request {
				good := f.sign(f.issued(f.fresh(t)))
				return notify(t, f.token(splice(good, 0, segment(t, map[string]any{"alg": "NONE"}))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/HS256 keyed with the source's public key PEM",
			why:  "algorithm confusion: the public key is public, so an HMAC keyed with it is forgeable by anyone",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.token(jws(t, map[string]any{"alg": "HS256", "typ": "JWT"}, f.issued(f.fresh(t)), hmac256([]byte(f.sourcePEM)))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/RS512",
			why:  "only RS256 is allowed; another RSA algorithm must be refused before any key is used",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.token(jws(t, map[string]any{"alg": "RS512"}, f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha512Hash))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/ES256",
			why:  "an ECDSA token must not be verified with any key",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.token(jws(t, map[string]any{"alg": "ES256"}, f.issued(f.fresh(t)), ecdsa256(f.ec))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/tampered payload with the original signature",
			why:  "a genuine token for one certificate must not be re-pointed at another",
			build: func(t *testing.T, f *fixture) request {
				good := f.sign(f.issued(f.fresh(t)))
				return notify(t, f.token(splice(good, 1, segment(t, f.issued(f.fresh(t))))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/tampered header with the original signature",
			why:  "the header is signed too: adding a kid to a genuine token breaks it",
			build: func(t *testing.T, f *fixture) request {
				good := f.sign(f.issued(f.fresh(t)))
				return notify(t, f.token(splice(good, 0, segment(t, map[string]any{"alg": "RS256", "kid": "1"}))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/signature stripped",
			why:  "a genuine header and payload without their signature",
			build: func(t *testing.T, f *fixture) request {
				good := f.sign(f.issued(f.fresh(t)))
				return notify(t, f.token(splice(good, 2, "")))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/jku to the attacker's key server",
			why:  "the key must come from configuration, never from a URL in the token",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, lureTok(t, f, "jku", f.lure.URL+"/jwks.json"))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/x5u to the attacker's certificate",
			why:  "as jku, for an X.509 URL",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, lureTok(t, f, "x5u", f.lure.URL+"/cert.pem"))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/kid naming the attacker's key URL",
			why:  "a kid is not a locator; the action has one pinned key",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, lureTok(t, f, "kid", f.lure.URL+"/jwks.json#attacker"))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/embedded jwk",
			why:  "CVE-2018-0114 shape: a key carried inside the token verifies nothing",
			build: func(t *testing.T, f *fixture) request {
				h := map[string]any{"alg": "RS256", "jwk": jwk(&f.attacker.PublicKey)}
				return notify(t, f.token(jws(t, h, f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha256Hash))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/embedded x5c",
			why:  "a certificate chain in the header must not be trusted",
			build: func(t *testing.T, f *fixture) request {
				h := map[string]any{"alg": "RS256", "x5c": []string{base64.StdEncoding.EncodeToString(selfSigned(t, f.attacker))}}
				return notify(t, f.token(jws(t, h, f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha256Hash))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/another instance's genuine notification",
			why:  "a real Certificate Manager token of another instance (another tenant) is not ours",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.signAs(f.other, event(f.other, "cert_issued", f.otherCert)))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/another instance's key claiming to be the source",
			why:  "instance_crn in the payload must not choose the key",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.signAs(f.other, f.issued(f.fresh(t))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "signature/a backup instance's key claiming to be the source",
			why:  "the backups are instances the API key can read keys of; their keys are not the source's",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.signAs(f.s.Backups[0], f.issued(f.fresh(t))))
			},
			status: 401, by: byAction, class: "bad_signature",
		},
	}
}

// staticKeyCases run with source_public_key set to a key the test holds, so that tokens
// in other algorithms are signed with the configured key itself: only the algorithm
// allow-list can refuse them.
func staticKeyCases() []hostileCase {
	withKey := func(f *fixture, tok string) map[string]any {
		return map[string]any{"source_public_key": f.staticPEM, "data": tok}
	}
	return []hostileCase{
		{
			name: "static key/control RS256 with the configured key",
			why:  "proves the configured key verifies, so the refusals below are about the algorithm",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				return request{run: withKey(f, f.token(jws(t, rs256Header(), f.issued(c), rsaPKCS1(f.static, sha256Hash)))), copyOf: c}
			},
			status: 200, by: byRun, action: "replicate", control: true,
		},
		{
			name: "static key/RS512 with the configured key",
			why:  "RS512 by the right key is still not what Certificate Manager sends",
			build: func(t *testing.T, f *fixture) request {
				return request{run: withKey(f, f.token(jws(t, map[string]any{"alg": "RS512"}, f.issued(f.fresh(t)), rsaPKCS1(f.static, sha512Hash))))}
			},
			status: 401, by: byRun, class: "bad_signature",
		},
		{
			name: "static key/PS256 with the configured key",
			why:  "RSA-PSS by the right key: another algorithm, refused",
			build: func(t *testing.T, f *fixture) request {
				return request{run: withKey(f, f.token(jws(t, map[string]any{"alg": "PS256"}, f.issued(f.fresh(t)), rsaPSS256(f.static))))}
			},
			status: 401, by: byRun, class: "bad_signature",
		},
		{
			name: "static key/HS256 keyed with the configured PEM",
			why:  "algorithm confusion against a static key, byte for byte the configured PEM",
			build: func(t *testing.T, f *fixture) request {
				return request{run: withKey(f, f.token(jws(t, map[string]any{"alg": "HS256"}, f.issued(f.fresh(t)), hmac256([]byte(f.staticPEM)))))}
			},
			status: 401, by: byRun, class: "bad_signature",
		},
	}
}

// trustCases: genuine signatures by the source over payloads that reach outside it.
func trustCases() []hostileCase {
	return []hostileCase{
		{
			name: "trust/control certificate of the source",
			why:  "a genuine notification naming the source's own certificate is copied",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				r := notify(t, f.sign(f.issued(c)))
				r.copyOf = c
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "trust/payload names another instance",
			why:  "instance_crn must be the configured source, even under the source's signature",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(event(f.other, "cert_issued", f.otherCert)))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/payload names another instance with the source's certificate",
			why:  "only the instance check stands here: the certificate itself is the source's",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(event(f.other, "cert_issued", f.fresh(t))))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/payload names the source in upper case",
			why:  "the instance is compared byte for byte, not folded",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(event(strings.ToUpper(f.s.Source), "cert_issued", f.fresh(t))))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/certificate of another instance",
			why:  "the source's key must not let the action read another instance's certificate",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(f.issued(f.otherCert)))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/certificate of another account",
			why:  "nor one of another account",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(f.issued(f.otherAcctCert)))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/source instance id under another account",
			why:  "instance GUID and certificate id match the source, the account scope does not",
			build: func(t *testing.T, f *fixture) request {
				c, err := crn.ParseCertificate(f.fresh(t))
				require.NoError(t, err)
				c.Account = "ffffffffffffffffffffffffffffffff"
				return notify(t, f.sign(f.issued(c.String())))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/source instance id in another region",
			why:  "the region chooses the endpoint the action calls; it must be the source's",
			build: func(t *testing.T, f *fixture) request {
				c, err := crn.ParseCertificate(f.fresh(t))
				require.NoError(t, err)
				c.Region = "eu-de"
				return notify(t, f.sign(f.issued(c.String())))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/one own and one foreign certificate",
			why:  "all or nothing: a foreign entry refuses the whole notification before any download",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(f.issued(f.fresh(t), f.otherCert)))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/unknown event type with a foreign certificate",
			why:  "unknown events are acknowledged, but their CRNs are still checked",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(event(f.s.Source, "cert_exfiltrated", f.otherCert)))
			},
			status: 403, by: byAction, class: "forbidden",
		},
		{
			name: "trust/domain validation for a foreign certificate",
			why:  "certificateCRN of the domain-validation shape is checked like cert_crn",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(map[string]any{
					"instance_crn": f.s.Source, "event_type": "cert_domain_validation_required", "version": 4,
					"certificateCRN": f.otherCert, "domain": "www.example.com", "domain_validation_method": "dns-01",
					"challenge": map[string]any{"txt_record_name": "_acme-challenge.www.example.com", "txt_record_val": "x"},
				}))
			},
			status: 403, by: byAction, class: "forbidden",
		},
	}
}

// pathCases: certificate CRNs of the source, signed by the source, whose id tries to
// leave the URL path segment the client builds from it. Each id carries ESCAPEx so that
// any encoding of it in a request path is found.
func pathCases() []hostileCase {
	c := []hostileCase{{
		name: "path/control plain certificate id",
		why:  "the same construction with a plain id is accepted",
		build: func(t *testing.T, f *fixture) request {
			c := f.fresh(t)
			r := notify(t, f.sign(f.issued(c)))
			r.copyOf = c
			return r
		},
		status: 200, by: byAction, action: "replicate", control: true,
	}}
	for _, p := range []struct{ name, id, why string }{
		{"dot-dot-slash", "../../ESCAPEx", "../ would climb out of /api/v2/certificate/"},
		{"encoded slash", "..%2F..%2FESCAPEx", "a pre-encoded %2F must not be decoded into a separator nor double-encoded into a path"},
		{"backslash", `..\..\ESCAPEx`, "some servers treat \\ as /"},
		{"space", "ESCAPEx abc", "a space splits request lines of naive clients"},
		{"unicode", "ESCAPEx\u00fc\u2215\uff0e\uff0e", "non-ASCII, a division slash and full-width dots (normalisation tricks)"},
		{"question mark", "ESCAPEx?page_size=1", "? would start a query"},
		{"hash", "ESCAPEx#frag", "# would start a fragment"},
		{"extra colon", "ESCAPEx:certificate:x", "an eleventh CRN field"},
		{"newline", "ESCAPEx\r\nX-Injected: 1", "header injection"},
	} {
		c = append(c, hostileCase{
			name: "path/" + p.name,
			why:  p.why,
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(f.issued(f.certID(p.id))))
			},
			status: 403, by: byAction, class: "forbidden",
			markers: []string{"ESCAPEx", p.id, crn.PathEscape(p.id), url.PathEscape(p.id)},
		})
	}
	c = append(c, hostileCase{
		name: "path/slash in the instance field",
		why:  "the instance GUID is part of the path too: guid/../other must not name the other instance",
		build: func(t *testing.T, f *fixture) request {
			o, err := crn.ParseCertificate(f.otherCert)
			require.NoError(t, err)
			bad := fmt.Sprintf("crn:v1:bluemix:public:cloudcerts:%s:a/%s:%s/../%s:certificate:%s", o.Region, f.acct, f.srcGUID, o.Instance, o.CertificateID)
			return notify(t, f.sign(f.issued(bad)))
		},
		status: 403, by: byAction, class: "forbidden",
		markers: []string{"%2F..%2F", "/../"},
	})
	return c
}

// bodyCases: what the web layer hands the action for bodies that are not
// {"data":"<JWT>"} as application/json.
func bodyCases() []hostileCase {
	valid := func(t *testing.T, f *fixture) string { return f.sign(f.issued(f.fresh(t))) }
	bad := func(s string) func(*testing.T, *fixture) request {
		return func(*testing.T, *fixture) request { return raw(s, "application/json") }
	}
	return []hostileCase{
		{
			name: "body/control text/plain JSON body",
			why:  "a text body arrives as __ow_body and is parsed strictly; a genuine one is copied",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				r := raw(fmt.Sprintf(`{"data":%q}`, f.sign(f.issued(c))), "text/plain")
				r.copyOf = c
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{
			name: "body/control octet-stream JSON body",
			why:  "a binary body arrives base64-encoded in __ow_body; a genuine one is copied",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				r := raw(fmt.Sprintf(`{"data":%q}`, f.sign(f.issued(c))), "application/octet-stream")
				r.copyOf = c
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		{name: "body/missing data", why: "an empty object carries no token", build: bad(`{}`), status: 400, by: byAction, class: "malformed"},
		{name: "body/empty body", why: "no entity at all", build: bad(``), status: 400, by: byAction, class: "malformed"},
		{name: "body/empty data", why: "an empty token", build: bad(`{"data":""}`), status: 400, by: byAction, class: "malformed"},
		{name: "body/data is a number", why: "data must be a string", build: bad(`{"data":12345}`), status: 400, by: byAction, class: "malformed"},
		{
			name: "body/data is an object holding a genuine token",
			why:  "a nested object must not be searched for a token",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, map[string]any{"data": map[string]any{"data": valid(t, f)}})
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/data is an array holding a genuine token",
			why:  "nor an array",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, map[string]any{"data": []any{valid(t, f)}})
			},
			status: 400, by: byAction, class: "malformed",
		},
		{name: "body/data is null", why: "null is not a token", build: bad(`{"data":null}`), status: 400, by: byAction, class: "malformed"},
		{name: "body/data is true", why: "a boolean is not a token", build: bad(`{"data":true}`), status: 400, by: byAction, class: "malformed"},
		{
			name: "body/huge data under the request limit",
			why:  "almost a megabyte of token-shaped garbage costs parsing only: no key fetch, no API call",
			build: func(t *testing.T, f *fixture) request {
				junk := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20-200) + ".AAAA"
				return jsonBody(t, map[string]any{"data": junk})
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/over the size limit",
			why:  "the platform refuses entities over 1 MiB before any activation",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, map[string]any{"data": valid(t, f), "pad": strings.Repeat("x", 1<<20)})
			},
			status: 413, by: byController, class: msgTooLarge,
		},
		{
			name: "body/JSON array",
			why:  "a non-object JSON body becomes __ow_body; an array holding the body is not the body",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, []any{map[string]any{"data": valid(t, f)}})
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/JSON string holding a genuine token",
			why:  "a bare token is not the documented body",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, valid(t, f))
			},
			status: 400, by: byAction, class: "malformed",
		},
		{name: "body/JSON number", why: "a number body", build: bad(`42`), status: 400, by: byAction, class: "malformed"},
		{name: "body/JSON null", why: "a null body", build: bad(`null`), status: 400, by: byAction, class: "malformed"},
		{
			name: "body/duplicate data keys in JSON, forged one last",
			why:  "the platform keeps the last of duplicate keys: the genuine first token must not be the one verified",
			build: func(t *testing.T, f *fixture) request {
				forged := f.token(jws(t, rs256Header(), f.issued(f.fresh(t)), rsaPKCS1(f.attacker, sha256Hash)))
				return raw(fmt.Sprintf(`{"data":%q,"data":%q}`, valid(t, f), forged), "application/json")
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		{
			name: "body/duplicate data keys in a text body",
			why:  "where the action parses the body itself, two tokens are ambiguous and refused, even both genuine",
			build: func(t *testing.T, f *fixture) request {
				return raw(fmt.Sprintf(`{"data":%q,"data":%q}`, valid(t, f), valid(t, f)), "text/plain")
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/duplicate data keys in a binary body",
			why:  "the same through base64 __ow_body",
			build: func(t *testing.T, f *fixture) request {
				return raw(fmt.Sprintf(`{"data":%q,"data":%q}`, valid(t, f), valid(t, f)), "application/octet-stream")
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/case-folded duplicate data keys in a text body",
			why:  "encoding/json matches keys case-insensitively; Data and data are duplicates",
			build: func(t *testing.T, f *fixture) request {
				return raw(fmt.Sprintf(`{"Data":"x.y.z","data":%q}`, valid(t, f)), "text/plain")
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/text body that is not JSON",
			why:  "__ow_body that is neither base64 nor JSON",
			build: func(*testing.T, *fixture) request {
				return raw("data=eyJhbGciOiJub25lIn0.e30.", "text/plain")
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/binary garbage",
			why:  "octet-stream bytes that decode to no JSON",
			build: func(*testing.T, *fixture) request {
				return request{body: []byte{0xff, 0xfe, 0x00, '{', 0x80, '"'}, contentType: "application/octet-stream"}
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/two JSON objects in a text body",
			why:  "trailing data must not be ignored (the second token could be read by another parser)",
			build: func(t *testing.T, f *fixture) request {
				return raw(fmt.Sprintf(`{"data":%q} {"data":"x.y.z"}`, valid(t, f)), "text/plain")
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "body/deeply nested JSON in a text body",
			why:  "nesting beyond the decoder's depth is refused, not a crash",
			build: func(t *testing.T, f *fixture) request {
				return raw(`{"x":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+fmt.Sprintf(`,"data":%q}`, valid(t, f)), "text/plain")
			},
			status: 400, by: byAction, class: "malformed",
		},
	}
}

// payloadCases: genuine signatures over payloads that are malformed, out of date or
// of an unsupported version; and the non-hostile replay.
func payloadCases() []hostileCase {
	rawSigned := func(format string, args func(f *fixture, c string) []any) func(*testing.T, *fixture) request {
		return func(t *testing.T, f *fixture) request {
			return notify(t, f.sign([]byte(fmt.Sprintf(format, args(f, f.fresh(t))...))))
		}
	}
	now := time.Now()
	return []hostileCase{
		{
			name: "payload/control replay of a genuine token",
			why:  "not hostile: Certificate Manager may deliver twice; a replay converges to the same copy with no write",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				r := notify(t, f.sign(f.issued(c)))
				first := f.send(t, r)
				require.Equal(t, 200, first.status, "first delivery: %s", first.raw)
				assertCopied(t, f, c, nil)
				return r
			},
			status: 200, by: byAction, action: "replicate",
		},
		{
			name: "payload/control test event",
			why:  "the channel test is verified and answered, and its dummy certificate is never downloaded",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(event(f.s.Source, "test_notification_channel", f.certID("12345678-9012-3456-7890-123456789012"))))
			},
			status: 200, by: byAction, action: "test",
		},
		{
			name: "payload/duplicate instance_crn",
			why:  "a parser keeping the last key would see another instance than one keeping the first",
			build: rawSigned(`{"instance_crn":%q,"instance_crn":%q,"event_type":"cert_issued","version":4,"certificates":[{"cert_crn":%q}]}`,
				func(f *fixture, c string) []any { return []any{f.other, f.s.Source, c} }),
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "payload/duplicate cert_crn",
			why:  "the same inside a certificate entry: one parser copies ours, another reads the foreign one",
			build: rawSigned(`{"instance_crn":%q,"event_type":"cert_issued","version":4,"certificates":[{"cert_crn":%q,"cert_crn":%q}]}`,
				func(f *fixture, c string) []any { return []any{f.s.Source, f.otherCert, c} }),
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "payload/case-folded duplicate event_type",
			why:  "encoding/json folds key case: Event_type and event_type are the same field to it",
			build: rawSigned(`{"instance_crn":%q,"Event_type":"test_notification_channel","event_type":"cert_issued","version":4,"certificates":[{"cert_crn":%q}]}`,
				func(f *fixture, c string) []any { return []any{f.s.Source, c} }),
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "payload/version 1",
			why:  "v1 has no event type; it is not guessed",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(with(f.issued(f.fresh(t)), "version", 1)))
			},
			status: 400, by: byAction, class: "unsupported_version",
		},
		{
			name: "payload/version 5",
			why:  "a future version is not read as v4",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(with(f.issued(f.fresh(t)), "version", 5)))
			},
			status: 400, by: byAction, class: "unsupported_version",
		},
		{
			name: "payload/version as the string 4",
			why:  "types are exact; \"4\" is not 4",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(with(f.issued(f.fresh(t)), "version", "4")))
			},
			status: 400, by: byAction, class: "malformed",
		},
		{
			name: "payload/expired exp",
			why:  "a token that says it expired an hour ago is refused, even genuine",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(with(f.issued(f.fresh(t)), "exp", now.Add(-time.Hour).Unix())))
			},
			status: 401, by: byAction, class: "expired",
		},
		{
			name: "payload/nbf in the future",
			why:  "a token not valid for another hour is refused",
			build: func(t *testing.T, f *fixture) request {
				return notify(t, f.sign(with(f.issued(f.fresh(t)), "nbf", now.Add(time.Hour).Unix())))
			},
			status: 401, by: byAction, class: "expired",
		},
	}
}

// overrideCases: requests that try to set a parameter bound by the manifest, or a
// reserved one. The final annotation refuses them before any activation, even with a
// genuine token.
func overrideCases() []hostileCase {
	var c []hostileCase
	for _, p := range []struct {
		param string
		value any
		why   string
	}{
		{"apikey", "attacker-key", "the attacker's key would make the action write with the attacker's rights, or probe ours"},
		{"endpoints", `{"us-south":"https://evil.example"}`, "would send our API key and token to the attacker's host"},
		{"iam_url", "https://evil.example", "would send our API key to the attacker's IAM"},
		{"source_instance_crn", "crn:v1:bluemix:public:cloudcerts:us-south:a/evil:evil::", "would move the trust root"},
		{"source_public_key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", "bound as \"\" (fetch): still final, or an attacker pins their key"},
		{"backup_instance_crns", "crn:v1:bluemix:public:cloudcerts:us-south:a/evil:evil::", "would copy our keys into the attacker's instance"},
		{"mode", "reconcile", "would run a full sync (or prune) from the internet"},
		{"__ow_method", "get", "reserved request context"},
		{"__ow_body", `{"data":"x"}`, "reserved request context"},
	} {
		c = append(c, hostileCase{
			name: "override/body " + p.param,
			why:  p.why,
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, map[string]any{"data": f.sign(f.issued(f.fresh(t))), p.param: p.value})
			},
			status: 400, by: byController, class: msgNotAllowed,
		})
	}
	c = append(c,
		hostileCase{
			name: "override/query iam_url",
			why:  "query parameters are parameters too",
			build: func(t *testing.T, f *fixture) request {
				r := notify(t, f.sign(f.issued(f.fresh(t))))
				r.query = "iam_url=" + url.QueryEscape("https://evil.example")
				return r
			},
			status: 400, by: byController, class: msgNotAllowed,
		},
		hostileCase{
			name: "override/form apikey",
			why:  "so are form fields",
			build: func(t *testing.T, f *fixture) request {
				form := url.Values{"data": {f.sign(f.issued(f.fresh(t)))}, "apikey": {"attacker-key"}}
				return raw(form.Encode(), "application/x-www-form-urlencoded")
			},
			status: 400, by: byController, class: msgNotAllowed,
		},
		hostileCase{
			// prune, dry_run, concurrency and max_concurrency are not bound on notify, so
			// the final annotation lets a caller send them. In notify mode the action
			// ignores them: junk there must neither preempt the signature check (next case)
			// nor break a genuine delivery (this control).
			name: "override/unbound reconcile parameter with a bad value, genuine token",
			why:  "the reconcile's switches are ignored in notify mode; a genuine notification is still copied",
			build: func(t *testing.T, f *fixture) request {
				cert := f.fresh(t)
				r := jsonBody(t, map[string]any{"data": f.sign(f.issued(cert)), "concurrency": "lots", "prune": "true"})
				r.copyOf = cert
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
		hostileCase{
			name: "override/unbound reconcile parameter with a bad value, forged token",
			why:  "junk in parameters the manifest does not bind must not turn a forgery into a configuration error",
			build: func(t *testing.T, f *fixture) request {
				return jsonBody(t, map[string]any{"data": "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "concurrency": "lots"})
			},
			status: 401, by: byAction, class: "bad_signature",
		},
		hostileCase{
			name: "override/control form body",
			why:  "the same form without the bound parameter is accepted: the refusals above are the final annotation's",
			build: func(t *testing.T, f *fixture) request {
				cert := f.fresh(t)
				form := url.Values{"data": {f.sign(f.issued(cert))}}
				r := raw(form.Encode(), "application/x-www-form-urlencoded")
				r.copyOf = cert
				return r
			},
			status: 200, by: byAction, action: "replicate", control: true,
		},
	)
	return c
}

// paramTypeCases: parameters of the wrong type, through a direct invocation (the web
// layer cannot produce all of them).
func paramTypeCases() []hostileCase {
	run := func(params map[string]any) func(*testing.T, *fixture) request {
		return func(*testing.T, *fixture) request { return request{run: params} }
	}
	withToken := func(extra ...any) func(*testing.T, *fixture) request {
		return func(t *testing.T, f *fixture) request {
			p := map[string]any{"data": f.sign(f.issued(f.fresh(t)))}
			for i := 0; i < len(extra); i += 2 {
				p[extra[i].(string)] = extra[i+1]
			}
			return request{run: p}
		}
	}
	return []hostileCase{
		{
			name: "params/control __ow_body object",
			why:  "a non-web invocation with the body as an object is accepted and copied",
			build: func(t *testing.T, f *fixture) request {
				c := f.fresh(t)
				return request{run: map[string]any{"__ow_body": map[string]any{"data": f.sign(f.issued(c))}}, copyOf: c}
			},
			status: 200, by: byRun, action: "replicate", control: true,
		},
		{name: "params/data number", why: "data must be a string", build: run(map[string]any{"data": 4}), status: 400, by: byRun, class: "malformed"},
		{name: "params/data object", why: "data must be a string", build: run(map[string]any{"data": map[string]any{"a": "b"}}), status: 400, by: byRun, class: "malformed"},
		{name: "params/data array", why: "data must be a string", build: run(map[string]any{"data": []any{"a.b.c"}}), status: 400, by: byRun, class: "malformed"},
		{name: "params/data null", why: "a present null is not absent", build: run(map[string]any{"data": nil}), status: 400, by: byRun, class: "malformed"},
		{
			name: "params/data over the limit", why: "checked by length before any parsing",
			build: run(map[string]any{"data": strings.Repeat("a", 1<<20+1)}), status: 413, by: byRun, class: "too_large",
		},
		{name: "params/__ow_body number", why: "not a body", build: run(map[string]any{"__ow_body": 42}), status: 400, by: byRun, class: "malformed"},
		{name: "params/__ow_body not base64 nor JSON", why: "text that is neither", build: run(map[string]any{"__ow_body": "not json, not base64!"}), status: 400, by: byRun, class: "malformed"},
		{
			name: "params/__ow_body base64 of non-JSON", why: "decodes to bytes that are not JSON",
			build: run(map[string]any{"__ow_body": base64.StdEncoding.EncodeToString([]byte{0xde, 0xad, 0xbe, 0xef})}), status: 400, by: byRun, class: "malformed",
		},
		{
			name: "params/__ow_body over twice the limit", why: "a raw string is bounded before decoding",
			build: run(map[string]any{"__ow_body": strings.Repeat("A", 2<<20+4)}), status: 413, by: byRun, class: "too_large",
		},
		{
			name: "params/__ow_body base64 decoding over the limit", why: "the decoded body is bounded too",
			build: run(map[string]any{"__ow_body": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(" "), 1<<20+1))}), status: 413, by: byRun, class: "too_large",
		},
		{
			name: "params/apikey is a number", why: "a wrong type is a configuration error naming the parameter, with no API call",
			build: withToken("apikey", 12345), status: 500, by: byRun, class: "configuration",
		},
		{
			name: "params/iam_url over plain http", why: "the API key must never travel in clear to a non-loopback host",
			build: withToken("iam_url", "http://iam.example.com"), status: 500, by: byRun, class: "configuration",
		},
		{
			name: "params/endpoints over plain http", why: "nor the bearer token",
			build: withToken("endpoints", `{"us-south":"http://certs.example.com"}`), status: 500, by: byRun, class: "configuration",
		},
		{
			name: "params/source_public_key not RSA", why: "a pinned key that cannot verify RS256 is a configuration error, not a silent fetch",
			build: func(t *testing.T, f *fixture) request {
				return request{run: map[string]any{"data": f.sign(f.issued(f.fresh(t))), "source_public_key": publicPEM(t, &f.ec.PublicKey)}}
			},
			status: 500, by: byRun, class: "configuration",
		},
	}
}
