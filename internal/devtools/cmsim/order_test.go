package cmsim

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/pemutil"
)

// orderOver orders a certificate over HTTP with body merged into a valid order.
func (f *fixture) orderOver(t *testing.T, tok, inst string, body map[string]any) result {
	t.Helper()
	req := map[string]any{"name": "shop", "domains": []string{"shop.example.com"}, "domain_validation_method": "dns-01"}
	for k, v := range body {
		req[k] = v
	}
	f.clock.Advance(time.Minute) // orders and renewals are limited to 5 a minute
	return call(t, http.MethodPost, f.api("us-south", "/api/v1/{}/certificates/order", inst), tok, req)
}

// leafOf downloads a certificate and parses its leaf, checking key and chain.
func (f *fixture) leafOf(t *testing.T, tok, certCRN string) *x509.Certificate {
	t.Helper()
	dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", certCRN), tok, nil)
	require.Equal(t, 200, dl.status, "%s", dl)
	var cd CertificateWithData
	dl.json(t, &cd)
	b, err := pemutil.ParseBundle(cd.Data.Content, cd.Data.PrivKey, cd.Data.Intermediate)
	require.NoError(t, err, "key matches, intermediate signed the leaf")
	return b.Leaf
}

func TestOrderKeyAndSignatureAlgorithms(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	tests := []struct {
		name    string
		body    map[string]any
		status  int
		keyAlg  string // key_algorithm answered, for 200
		keyBits int
	}{
		{name: "defaults: RSA 2048, sha256WithRSAEncryption", status: 200, keyAlg: "rsaEncryption 2048 bit", keyBits: 2048},
		{name: "rsa 2048 as bluemix-go's example sends it",
			body:   map[string]any{"issuer": "Let's Encrypt", "algorithm": "sha256WithRSAEncryption", "key_algorithm": "rsaEncryption 2048 bit"},
			status: 200, keyAlg: "rsaEncryption 2048 bit", keyBits: 2048},
		{name: "rsa 4096", body: map[string]any{"key_algorithm": "rsaEncryption 4096 bit"}, status: 200, keyAlg: "rsaEncryption 4096 bit", keyBits: 4096},
		{name: "ECDSA was not offered", body: map[string]any{"key_algorithm": "id-ecPublicKey 256 bit"}, status: 400},
		{name: "rsa 1024", body: map[string]any{"key_algorithm": "rsaEncryption 1024 bit"}, status: 400},
		{name: "key algorithm is case-sensitive", body: map[string]any{"key_algorithm": "RSAEncryption 2048 bit"}, status: 400},
		{name: "other signature algorithm", body: map[string]any{"algorithm": "sha384WithRSAEncryption"}, status: 400},
		{name: "ecdsa signature", body: map[string]any{"algorithm": "ecdsa-with-SHA256"}, status: 400},
		{name: "algorithm is a string", body: map[string]any{"algorithm": 256}, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.sim.Snapshot(inst))
			res := f.orderOver(t, tok, inst, tc.body)
			require.Equal(t, tc.status, res.status, "%s", res)
			if tc.status != 200 {
				assert.Equal(t, codeBadRequest, res.errorCode(t))
				assert.Len(t, f.sim.Snapshot(inst), before, "a refused order stores nothing")
				return
			}
			var m Metadata
			res.json(t, &m)
			assert.Equal(t, "sha256WithRSAEncryption", m.Algorithm)
			assert.Equal(t, tc.keyAlg, m.KeyAlgorithm)
			leaf := f.leafOf(t, tok, m.ID)
			assert.Equal(t, x509.SHA256WithRSA, leaf.SignatureAlgorithm)
			pub, ok := leaf.PublicKey.(*rsa.PublicKey)
			require.True(t, ok, "RSA key")
			assert.Equal(t, tc.keyBits, pub.N.BitLen())

			f.clock.Advance(time.Minute)
			res = call(t, http.MethodPost, f.api("us-south", "/api/v1/certificate/{}/renew", m.ID), tok, map[string]bool{"rotate_keys": true})
			require.Equal(t, 200, res.status, "%s", res)
			var r Metadata
			res.json(t, &r)
			assert.Equal(t, m.Algorithm, r.Algorithm, "a renewal keeps the order's algorithms")
			assert.Equal(t, m.KeyAlgorithm, r.KeyAlgorithm)
			renewed := f.leafOf(t, tok, m.ID)
			assert.Equal(t, tc.keyBits, renewed.PublicKey.(*rsa.PublicKey).N.BitLen())
			assert.NotEqual(t, leaf.SerialNumber, renewed.SerialNumber)
		})
	}

	t.Run("the Go API orders fast ECDSA certificates and renews them alike", func(t *testing.T) {
		id, err := f.sim.Order(inst, "go", "go.example.com")
		require.NoError(t, err)
		require.NoError(t, f.sim.Renew(id))
		got, ok := f.sim.Get(id)
		require.True(t, ok)
		assert.Equal(t, "id-ecPublicKey 256 bit", got.KeyAlgorithm)
		assert.Equal(t, "ecdsa-with-SHA256", got.Algorithm)
		assert.Equal(t, 2, got.Versions)
	})
}

func TestOrderPolicy(t *testing.T) {
	f := newFixture(t, Options{AllowHTTPChannels: true}, "us-south", "eu-de")
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	for key, role := range map[string]Role{"reader": Reader, "writer": Writer} {
		f.sim.Grant(key, inst, role)
	}
	ordered, err := f.sim.Order(inst, "shop", "shop.example.com")
	require.NoError(t, err)
	imported := f.sim.Seed(inst, "imp", "", issue(t, "imp.example.com"))
	rcv := newReceiver(t)
	_, err = f.sim.AddChannel(inst, rcv.srv.URL, 4)
	require.NoError(t, err)

	policyURL := func(region, cert string) string {
		return f.api(region, "/api/v1/certificate/{}/order/policy", cert)
	}
	on := map[string]any{"auto_renew_enabled": true}
	tests := []struct {
		name   string
		key    string // API key; "" = no token
		method string
		url    string
		body   any
		ctype  string // "" = application/json, "-" = none
		status int
		code   string // error code, for 4xx
		want   bool   // the stored policy afterwards
	}{
		{name: "enable", key: managerKey, body: on, status: 200, want: true},
		{name: "disable", key: managerKey, body: map[string]any{"auto_renew_enabled": false}, status: 200, want: false},
		{name: "enable again", key: managerKey, body: `{"auto_renew_enabled":true}`, status: 200, want: true},
		{name: "absent is false: bluemix-go omits false", key: managerKey, body: `{}`, status: 200, want: false},
		{name: "null", key: managerKey, body: `{"auto_renew_enabled":null}`, status: 400, code: codeBadRequest},
		{name: "string", key: managerKey, body: `{"auto_renew_enabled":"true"}`, status: 400, code: codeBadRequest},
		{name: "number", key: managerKey, body: `{"auto_renew_enabled":1}`, status: 400, code: codeBadRequest},
		{name: "name is not part of the body", key: managerKey, body: map[string]any{"name": "p", "auto_renew_enabled": true}, status: 400, code: codeBadRequest},
		{name: "not JSON", key: managerKey, body: `{`, status: 400, code: codeBadRequest},
		{name: "trailing data", key: managerKey, body: `{} {}`, status: 400, code: codeBadRequest},
		{name: "no content type", key: managerKey, body: on, ctype: "-", status: 415, code: codeUnsupportedMedia},
		{name: "imported certificates have no order policy", key: managerKey, url: policyURL("us-south", imported), body: on, status: 400, code: codeNotOrdered},
		{name: "unknown certificate", key: managerKey, url: policyURL("us-south", certOf(inst, zeroID)), body: on, status: 404, code: codeNotFound},
		{name: "through another region", key: managerKey, url: policyURL("eu-de", ordered), body: on, status: 404, code: codeNotFound},
		{name: "writer", key: "writer", body: on, status: 403, code: codeForbidden},
		{name: "reader", key: "reader", body: on, status: 403, code: codeForbidden},
		{name: "no token", body: on, status: 401, code: codeUnauthorized},
		{name: "GET", key: managerKey, method: http.MethodGet, status: 405, code: codeMethodNotAllowed},
		{name: "POST", key: managerKey, method: http.MethodPost, body: on, status: 405, code: codeMethodNotAllowed},
	}
	tokens := map[string]string{managerKey: tok, "writer": f.token("writer"), "reader": f.token("reader")}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(time.Minute) // stay clear of the rate limit
			method, url, ctype := tc.method, tc.url, tc.ctype
			if method == "" {
				method = http.MethodPut
			}
			if url == "" {
				url = policyURL("us-south", ordered)
			}
			if ctype == "" {
				ctype = "application/json"
			}
			before, _ := f.sim.Get(ordered)
			res := call(t, method, url, tokens[tc.key], tc.body, ctype)
			require.Equal(t, tc.status, res.status, "%s", res)
			after, _ := f.sim.Get(ordered)
			if tc.status != 200 {
				assert.Equal(t, tc.code, res.errorCode(t))
				assert.Equal(t, before.OrderPolicy, after.OrderPolicy, "a refused update changes nothing")
				return
			}
			assert.JSONEq(t, `{"auto_renew_enabled":`+map[bool]string{true: "true", false: "false"}[tc.want]+`}`, string(res.body))
			require.NotNil(t, after.OrderPolicy)
			assert.Equal(t, tc.want, after.OrderPolicy.AutoRenewEnabled)
			assert.Equal(t, before.LastModified, after.LastModified, "the certificate itself is unchanged")
			md := call(t, http.MethodGet, f.api("us-south", "/api/v1/certificate/{}/metadata", ordered), tok, nil)
			var m Metadata
			md.json(t, &m)
			require.NotNil(t, m.OrderPolicy)
			assert.Equal(t, tc.want, m.OrderPolicy.AutoRenewEnabled, "metadata shows the policy")
		})
	}
	assert.Empty(t, rcv.tokens(t), "the service sends no event for a policy change")
	assert.Equal(t, len(tests), f.sim.Count(OpOrderPolicy, ""), "every call is logged as order.policy")

	t.Run("Go API", func(t *testing.T) {
		require.NoError(t, f.sim.SetAutoRenew(ordered, true))
		got, _ := f.sim.Get(ordered)
		assert.True(t, got.OrderPolicy.AutoRenewEnabled)
		assert.ErrorIs(t, f.sim.SetAutoRenew(imported, true), ErrRejected)
		assert.ErrorIs(t, f.sim.SetAutoRenew(certOf(inst, zeroID), true), ErrNotFound)
	})
}

func TestDownloadDataKeyID(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	first := issue(t, "k.example.com")
	id := f.sim.Seed(inst, "k", "", first)
	other := f.sim.Seed(inst, "k", "", first)

	download := func(cert string) (raw map[string]json.RawMessage, keyID string) {
		t.Helper()
		dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", cert), tok, nil)
		require.Equal(t, 200, dl.status, "%s", dl)
		dl.json(t, &raw)
		require.Contains(t, raw, "data_key_id")
		require.NoError(t, json.Unmarshal(raw["data_key_id"], &keyID), "a string")
		require.NotEmpty(t, keyID)
		return raw, keyID
	}
	_, k1 := download(id)
	_, again := download(id)
	assert.Equal(t, k1, again, "stable while the certificate is unchanged")
	_, k2 := download(other)
	assert.NotEqual(t, k1, k2, "each certificate has its own")
	got, _ := f.sim.Get(id)
	assert.Equal(t, k1, got.DataKeyID)

	second := issue(t, "k.example.com")
	res := call(t, http.MethodPut, f.api("us-south", "/api/v1/certificate/{}", id), tok, map[string]string{"content": second.CertPEM, "priv_key": second.KeyPEM})
	require.Equal(t, 200, res.status, "%s", res)
	_, k3 := download(id)
	assert.NotEqual(t, k1, k3, "a new version has a new data key")

	for name, url := range map[string]string{
		"metadata":         f.api("us-south", "/api/v1/certificate/{}/metadata", id),
		"reimport answers": "",
		"list":             f.api("us-south", "/api/v3/{}/certificates", inst),
	} {
		t.Run(name+" has none", func(t *testing.T) {
			body := res.body
			if url != "" {
				r := call(t, http.MethodGet, url, tok, nil)
				require.Equal(t, 200, r.status)
				body = r.body
			}
			assert.NotContains(t, string(body), "data_key_id")
		})
	}
}
