package cmsim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/pemutil"
)

func TestImport(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	url := f.api("us-south", "/api/v3/{}/certificates/import", inst)
	good := issue(t, "www.example.com", "example.com")
	other := issue(t, "other.example.com")
	expired, err := testCA.Issue(testpki.Options{Domains: []string{"old.example.com"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	require.NoError(t, err)
	withData := func(content, key, inter string) map[string]any {
		return map[string]any{"name": "n", "data": map[string]string{"content": content, "priv_key": key, "intermediate": inter}}
	}
	tests := []struct {
		name        string
		body        any
		contentType string
		status      int
		code        string
		message     string
	}{
		{name: "full bundle", body: importBody("www", "desc", good), status: 200},
		{name: "certificate only", body: map[string]any{"name": "n", "data": map[string]string{"content": good.CertPEM}}, status: 200},
		{name: "no content type", body: importBody("www", "", good), contentType: "-", status: 415, code: codeUnsupportedMedia},
		{name: "text/plain", body: importBody("www", "", good), contentType: "text/plain", status: 415, code: codeUnsupportedMedia},
		{name: "json with charset", body: importBody("www", "", good), contentType: "application/json; charset=utf-8", status: 200},
		{name: "missing name", body: map[string]any{"data": map[string]string{"content": good.CertPEM}}, status: 400, code: codeBadRequest},
		{name: "blank name", body: importBody("  ", "", good), status: 400, code: codeBadRequest},
		{name: "name of 256", body: importBody(strings.Repeat("n", 256), "", good), status: 200},
		{name: "name of 257", body: importBody(strings.Repeat("n", 257), "", good), status: 400, code: codeBadRequest},
		{name: "description of 1024", body: importBody("n", strings.Repeat("d", 1024), good), status: 200},
		{name: "description of 1025", body: importBody("n", strings.Repeat("d", 1025), good), status: 400, code: codeBadRequest},
		{name: "description counted in UTF-16 units", body: importBody("n", strings.Repeat("😀", 513), good), status: 400, code: codeBadRequest},
		{name: "no data", body: map[string]any{"name": "n"}, status: 400, code: codeInvalidCertificate},
		{name: "bad PEM", body: withData("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "", ""), status: 400, code: codeInvalidCertificate},
		{name: "key as content", body: withData(good.KeyPEM, "", ""), status: 400, code: codeInvalidCertificate},
		{name: "two certificates as content", body: withData(good.CertPEM+other.CertPEM, "", ""), status: 400, code: codeInvalidCertificate},
		{name: "bad key", body: withData(good.CertPEM, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ""), status: 400, code: codeInvalidKey},
		{name: "key mismatch", body: withData(good.CertPEM, other.KeyPEM, ""), status: 400, code: codeKeyMismatch, message: keyMismatchMessage},
		{name: "intermediate that did not sign", body: withData(good.CertPEM, good.KeyPEM, good.CertPEM), status: 400, code: codeInvalidChain},
		{name: "expired", body: importBody("old", "", expired), status: 400, code: codeExpired},
		{name: "unknown field", body: map[string]any{"name": "n", "data": map[string]string{"content": good.CertPEM, "private_key": good.KeyPEM}}, status: 400, code: codeBadRequest},
		{name: "not JSON", body: "{", status: 400, code: codeBadRequest},
		{name: "trailing data", body: `{"name":"n","data":{"content":"x"}} {}`, status: 400, code: codeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res result
			if tc.contentType != "" {
				res = call(t, http.MethodPost, url, tok, tc.body, tc.contentType)
			} else {
				res = call(t, http.MethodPost, url, tok, tc.body)
			}
			require.Equal(t, tc.status, res.status, "%s", res)
			if tc.status != 200 {
				assert.Equal(t, tc.code, res.errorCode(t))
				if tc.message != "" {
					var e struct{ Message string }
					res.json(t, &e)
					assert.Equal(t, tc.message, e.Message)
				}
				assert.NotContains(t, string(res.body), "PRIVATE KEY", "no key material in an error body")
				assert.NotContains(t, string(res.body), "BEGIN", "no PEM in an error body")
				return
			}
			var m Metadata
			res.json(t, &m)
			assert.True(t, strings.HasPrefix(m.ID, strings.TrimSuffix(inst, ":")+"certificate:"))
			assert.Regexp(t, `:certificate:[0-9a-f]{32}$`, m.ID)
			assert.True(t, m.Imported)
			assert.Equal(t, "valid", m.Status)
			assert.False(t, m.HasPrevious)
		})
	}

	t.Run("metadata derived from the certificate", func(t *testing.T) {
		res := call(t, http.MethodPost, url, tok, importBody("www", "desc", good))
		require.Equal(t, 200, res.status)
		var m Metadata
		res.json(t, &m)
		want := pemutil.MetadataOf(good.Cert)
		assert.Equal(t, []string{"www.example.com", "example.com"}, m.Domains)
		assert.Equal(t, want.Issuer, m.Issuer)
		assert.Equal(t, want.SerialNumber, m.SerialNumber)
		assert.Equal(t, good.Cert.NotBefore.UnixMilli(), m.BeginsOn)
		assert.Equal(t, good.Cert.NotAfter.UnixMilli(), m.ExpiresOn)
		assert.Equal(t, "ecdsa-with-SHA256", m.Algorithm)
		assert.Equal(t, "id-ecPublicKey 256 bit", m.KeyAlgorithm)
		assert.Equal(t, "www", m.Name)
		assert.Equal(t, "desc", m.Description)
		assert.Equal(t, f.clock.Now().UnixMilli(), m.LastModified)
		assert.Nil(t, m.IssuanceInfo)

		dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", m.ID), tok, nil)
		require.Equal(t, 200, dl.status)
		var cd CertificateWithData
		dl.json(t, &cd)
		assert.Equal(t, m, cd.Metadata)
		assert.Equal(t, Data{Content: good.CertPEM, PrivKey: good.KeyPEM, Intermediate: good.Intermediate}, cd.Data)
	})

	t.Run("download omits absent key and intermediate", func(t *testing.T) {
		id := f.sim.Seed(inst, "nokey", "", &testpki.Issued{CertPEM: good.CertPEM})
		dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", id), tok, nil)
		require.Equal(t, 200, dl.status)
		var raw map[string]any
		dl.json(t, &raw)
		assert.Equal(t, map[string]any{"content": good.CertPEM}, raw["data"])
	})

	t.Run("expired certificate cannot be downloaded but its metadata can", func(t *testing.T) {
		id := f.sim.Seed(inst, "old", "", expired)
		dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", id), tok, nil)
		assert.Equal(t, 400, dl.status)
		assert.Equal(t, codeExpired, dl.errorCode(t))
		md := call(t, http.MethodGet, f.api("us-south", "/api/v1/certificate/{}/metadata", id), tok, nil)
		require.Equal(t, 200, md.status)
		var m Metadata
		md.json(t, &m)
		assert.Equal(t, "expired", m.Status)
	})
}

func TestReimportHistory(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	first := issue(t, "a.example.com", "b.example.com")
	id := f.sim.Seed(inst, "a", "d", first)
	url := f.api("us-south", "/api/v1/certificate/{}", id)

	second := issue(t, "b.example.com", "a.example.com") // same set, other order
	f.clock.Advance(time.Second)
	res := call(t, http.MethodPut, url, tok, map[string]string{"content": second.CertPEM, "priv_key": second.KeyPEM, "intermediate": second.Intermediate})
	require.Equal(t, 200, res.status, "%s", res)
	var m Metadata
	res.json(t, &m)
	assert.Equal(t, id, m.ID, "the CRN stays")
	assert.True(t, m.HasPrevious)
	assert.Equal(t, "a", m.Name)
	assert.Equal(t, "d", m.Description)
	assert.Equal(t, pemutil.SerialString(second.Cert), m.SerialNumber)
	assert.Equal(t, f.clock.Now().UnixMilli(), m.LastModified)

	got, ok := f.sim.Get(id)
	require.True(t, ok)
	assert.Equal(t, 2, got.Versions)
	assert.Equal(t, second.CertPEM, got.Data.Content)
	assert.Equal(t, 1, f.sim.Writes(inst))

	tests := []struct {
		name   string
		body   any
		ctype  string
		status int
		code   string
	}{
		{"data wrapper as on import", map[string]any{"data": map[string]string{"content": second.CertPEM}}, "", 400, codeBadRequest},
		{"name is not part of a reimport", map[string]any{"name": "x", "content": second.CertPEM}, "", 400, codeBadRequest},
		{"other domains", map[string]string{"content": issue(t, "c.example.com").CertPEM}, "", 400, codeDomainsChanged},
		{"key mismatch", map[string]string{"content": second.CertPEM, "priv_key": first.KeyPEM}, "", 400, codeKeyMismatch},
		{"no content type", map[string]string{"content": second.CertPEM}, "-", 415, codeUnsupportedMedia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(time.Minute) // stay clear of the rate limit
			var res result
			if tc.ctype != "" {
				res = call(t, http.MethodPut, url, tok, tc.body, tc.ctype)
			} else {
				res = call(t, http.MethodPut, url, tok, tc.body)
			}
			require.Equal(t, tc.status, res.status, "%s", res)
			assert.Equal(t, tc.code, res.errorCode(t))
		})
	}
	got, _ = f.sim.Get(id)
	assert.Equal(t, 2, got.Versions, "failed reimports leave no version")

	t.Run("ordered certificates are renewed, not reimported", func(t *testing.T) {
		oid, err := f.sim.Order(inst, "o", "o.example.com")
		require.NoError(t, err)
		again := issue(t, "o.example.com")
		res := call(t, http.MethodPut, f.api("us-south", "/api/v1/certificate/{}", oid), tok, map[string]string{"content": again.CertPEM})
		assert.Equal(t, 400, res.status)
		assert.Equal(t, codeNotImported, res.errorCode(t))
	})
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	iss := issue(t, "r.example.com")
	id := f.sim.Seed(inst, "r", "", iss)
	body := map[string]string{"content": iss.CertPEM, "priv_key": iss.KeyPEM}
	ordered, err := f.sim.Order(inst, "o", "o.example.com")
	require.NoError(t, err)

	type op struct {
		name   string
		method string
		url    string
		body   any
	}
	ops := []op{
		{"reimport", http.MethodPut, f.api("us-south", "/api/v1/certificate/{}", id), body},
		{"update", http.MethodPost, f.api("us-south", "/api/v3/certificate/{}", id), map[string]string{"name": "r2"}},
		{"order policy", http.MethodPut, f.api("us-south", "/api/v1/certificate/{}/order/policy", ordered), map[string]bool{"auto_renew_enabled": true}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			f.clock.Advance(2 * time.Minute)
			for i := range 5 {
				res := call(t, o.method, o.url, tok, o.body)
				require.Equal(t, 200, res.status, "call %d: %s", i+1, res)
				f.clock.Advance(time.Second)
			}
			res := call(t, o.method, o.url, tok, o.body)
			require.Equal(t, 429, res.status)
			assert.Equal(t, "55", res.header.Get("Retry-After"), "five calls a second apart; the sixth comes 5 s after the first, which leaves the window at 60 s")
			assert.Equal(t, codeRateLimited, res.errorCode(t))

			f.clock.Advance(54 * time.Second)
			assert.Equal(t, 429, call(t, o.method, o.url, tok, o.body).status)
			f.clock.Advance(time.Second)
			assert.Equal(t, 200, call(t, o.method, o.url, tok, o.body).status)
		})
	}
	t.Run("the limit is per certificate", func(t *testing.T) {
		other := f.sim.Seed(inst, "r", "", iss)
		res := call(t, http.MethodPut, f.api("us-south", "/api/v1/certificate/{}", other), tok, body)
		assert.Equal(t, 200, res.status)
	})
	t.Run("channel creation, 5 per minute per instance", func(t *testing.T) {
		url := f.api("us-south", "/api/v1/instances/{}/notifications/channels", inst)
		ch := map[string]any{"type": "url", "endpoint": "https://127.0.0.1:1/hook", "is_active": false}
		for range 5 {
			require.Equal(t, 200, call(t, http.MethodPut, url, tok, ch).status)
		}
		res := call(t, http.MethodPut, url, tok, ch)
		assert.Equal(t, 429, res.status)
		assert.NotEmpty(t, res.header.Get("Retry-After"))
	})
	t.Run("Go API is not limited", func(t *testing.T) {
		for range 8 {
			require.NoError(t, f.sim.Reimport(id, iss.CertPEM, iss.KeyPEM, ""))
		}
	})
}

func TestUpdateAndDelete(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	id := f.sim.Seed(inst, "n", "old description", issue(t, "u.example.com"))
	url := f.api("us-south", "/api/v3/certificate/{}", id)

	res := call(t, http.MethodPost, url, tok, map[string]string{"name": "renamed", "description": "new"})
	require.Equal(t, 200, res.status)
	assert.Empty(t, res.body, "bluemix-go expects no body")
	got, _ := f.sim.Get(id)
	assert.Equal(t, "renamed", got.Name)
	assert.Equal(t, "new", got.Description)

	res = call(t, http.MethodPost, url, tok, map[string]string{"name": "renamed"})
	require.Equal(t, 200, res.status)
	got, _ = f.sim.Get(id)
	assert.Equal(t, "", got.Description, "an omitted description clears it")

	assert.Equal(t, 400, call(t, http.MethodPost, url, tok, map[string]string{"description": "x"}).status, "name is required")
	assert.Equal(t, 415, call(t, http.MethodPost, url, tok, map[string]string{"name": "x"}, "text/plain").status)

	del := f.api("us-south", "/api/v2/certificate/{}", id)
	res = call(t, http.MethodDelete, del, tok, nil)
	require.Equal(t, 200, res.status)
	_, ok := f.sim.Get(id)
	assert.False(t, ok)
	assert.Equal(t, 404, call(t, http.MethodDelete, del, tok, nil).status)
	assert.Equal(t, 404, call(t, http.MethodGet, f.api("us-south", "/api/v1/certificate/{}/metadata", id), tok, nil).status)
	assert.Equal(t, 3, f.sim.Writes(inst), "two updates and one delete")
}

// seedMany stores n certificates; names repeat and expiry dates collide on purpose so
// the tie breaker matters.
func seedMany(t *testing.T, f *fixture, inst string, n int) {
	t.Helper()
	shared := map[int]*testpki.Issued{}
	for i := range n {
		// 50 distinct certificates (and so 50 expiry dates) shared by 1000 entries.
		iss, ok := shared[i%50]
		if !ok {
			var err error
			iss, err = testCA.Issue(testpki.Options{Domains: []string{fmt.Sprintf("d%d.example.com", i%50)},
				NotAfter: time.Now().Add(time.Duration(24+i%50) * time.Hour)})
			require.NoError(t, err)
			shared[i%50] = iss
		}
		f.sim.Seed(inst, fmt.Sprintf("cert-%03d", i%300), "", iss)
	}
}

func TestListPaging(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	start := time.Now()
	seedMany(t, f, inst, 1000)
	t.Logf("seeded 1000 certificates in %v", time.Since(start))
	base := f.api("us-south", "/api/v3/{}/certificates", inst)

	t.Run("default page of 100", func(t *testing.T) {
		res := call(t, http.MethodGet, base, tok, nil)
		require.Equal(t, 200, res.status)
		var l ListResponse
		res.json(t, &l)
		assert.Len(t, l.Certificates, 100)
		assert.Equal(t, 100, l.TotalScannedDocs)
		assert.NotEmpty(t, l.NextPageInfo.StartWithDocID)
	})

	walk := func(t *testing.T, firstURL string, next func(NextPageInfo) string) ([]Metadata, int) {
		t.Helper()
		var all []Metadata
		url, pages := firstURL, 0
		for {
			res := call(t, http.MethodGet, url, tok, nil)
			require.Equal(t, 200, res.status, "%s", res)
			var l ListResponse
			res.json(t, &l)
			pages++
			assert.Equal(t, len(l.Certificates), l.TotalScannedDocs, "totalScannedDocs is the page's count")
			assert.NotContains(t, string(res.body), `"data"`, "list items are metadata only")
			all = append(all, l.Certificates...)
			if l.NextPageInfo.StartWithDocID == "" && l.NextPageInfo.StartWithOrderByValue == "" {
				return all, pages
			}
			require.Len(t, l.Certificates, 200, "only a short page ends the list")
			url = next(l.NextPageInfo)
			require.Less(t, pages, 10)
		}
	}
	check := func(t *testing.T, all []Metadata, less func(a, b Metadata) bool) {
		t.Helper()
		require.Len(t, all, 1000)
		seen := map[string]bool{}
		for _, c := range all {
			assert.False(t, seen[c.ID], "duplicate %s", c.ID)
			seen[c.ID] = true
		}
		assert.True(t, sort.SliceIsSorted(all, func(i, j int) bool { return less(all[i], all[j]) }))
	}

	t.Run("bluemix-go style with && and page_number=1", func(t *testing.T) {
		all, pages := walk(t, base+"?page_size=200", func(n NextPageInfo) string {
			return base + "?page_number=1&&page_size=200&&start_from_document_id=" + strings.ReplaceAll(n.StartWithDocID, "/", "%2F") +
				"&&start_from_orderby_value=" + n.StartWithOrderByValue
		})
		assert.Equal(t, 6, pages, "five full pages, then an empty last page")
		check(t, all, func(a, b Metadata) bool {
			return a.ExpiresOn < b.ExpiresOn || a.ExpiresOn == b.ExpiresOn && a.ID < b.ID
		})
	})

	t.Run("order by name", func(t *testing.T) {
		all, _ := walk(t, base+"?order=name&page_size=200", func(n NextPageInfo) string {
			return base + "?order=name&page_size=200&start_from_document_id=" + escapeUpper(n.StartWithDocID) +
				"&start_from_orderby_value=" + n.StartWithOrderByValue
		})
		check(t, all, func(a, b Metadata) bool { return a.Name < b.Name || a.Name == b.Name && a.ID < b.ID })
	})

	t.Run("cursor survives deletion of its document", func(t *testing.T) {
		res := call(t, http.MethodGet, base+"?page_size=3", tok, nil)
		var l ListResponse
		res.json(t, &l)
		require.NoError(t, f.sim.Delete(l.Certificates[2].ID))
		res = call(t, http.MethodGet, base+"?page_size=3&start_from_document_id="+escapeUpper(l.NextPageInfo.StartWithDocID)+
			"&start_from_orderby_value="+l.NextPageInfo.StartWithOrderByValue, tok, nil)
		require.Equal(t, 200, res.status)
		var l2 ListResponse
		res.json(t, &l2)
		full := call(t, http.MethodGet, base+"?page_size=5", tok, nil)
		var lf ListResponse
		full.json(t, &lf)
		assert.Equal(t, lf.Certificates[2].ID, l2.Certificates[0].ID)
	})

	bad := []struct{ name, query string }{
		{"page_size 201", "?page_size=201"},
		{"page_size 0", "?page_size=0"},
		{"page_size not a number", "?page_size=ten"},
		{"unknown order", "?order=domains"},
		{"cursor id without value", "?start_from_document_id=" + escapeUpper(certOf(inst, zeroID))},
		{"empty cursor", "?start_from_document_id=&start_from_orderby_value="},
		{"cursor of another instance", "?start_from_orderby_value=1&start_from_document_id=" +
			escapeUpper(certOf(strings.Replace(inst, ":a/", ":a/z", 1), zeroID))},
		{"cursor value of the wrong type", "?start_from_orderby_value=soon&start_from_document_id=" + escapeUpper(certOf(inst, zeroID))},
		{"repeated parameter", "?page_size=10&page_size=20"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, http.MethodGet, base+tc.query, tok, nil)
			assert.Equal(t, 400, res.status, "%s", res)
		})
	}

	t.Run("empty instance", func(t *testing.T) {
		empty := f.sim.AddInstance("us-south")
		f.sim.Grant(managerKey, empty, Reader)
		res := call(t, http.MethodGet, f.api("us-south", "/api/v3/{}/certificates", empty), tok, nil)
		require.Equal(t, 200, res.status)
		assert.JSONEq(t, `{"certificates":[],"nextPageInfo":{"startWithDocId":"","startWithOrderByValue":""},"totalScannedDocs":0}`, string(res.body))
	})
}

const zeroID = "00000000000000000000000000000000"

// certOf is the CRN of certificate id in an instance.
func certOf(instanceCRN, id string) string {
	return strings.TrimSuffix(instanceCRN, ":") + "certificate:" + id
}

func TestCertificateLimit(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	seedMany(t, f, inst, 999)
	url := f.api("us-south", "/api/v3/{}/certificates/import", inst)
	iss := issue(t, "last.example.com")
	require.Equal(t, 200, call(t, http.MethodPost, url, tok, importBody("1000th", "", iss)).status)
	res := call(t, http.MethodPost, url, tok, importBody("1001st", "", iss))
	assert.Equal(t, 400, res.status)
	assert.Equal(t, codeLimitExceeded, res.errorCode(t))
	assert.Len(t, f.sim.Snapshot(inst), 1000)
	assert.Panics(t, func() { f.sim.Seed(inst, "x", "", iss) })
	res = call(t, http.MethodPost, f.api("us-south", "/api/v1/{}/certificates/order", inst), tok,
		map[string]any{"name": "o", "domains": []string{"o.example.com"}})
	assert.Equal(t, 400, res.status, "orders count too")
}

func TestOrderAndRenewOverHTTP(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	res := call(t, http.MethodPost, f.api("us-south", "/api/v1/{}/certificates/order", inst), tok, map[string]any{
		"name": "shop", "description": "ordered", "domains": []string{"shop.example.com", "*.shop.example.com"},
		"domain_validation_method": "dns-01", "dns_provider_instance_crn": "crn:v1:bluemix:public:internet-svcs:global:a/x:y::",
		"issuer": "Let's Encrypt", "algorithm": "sha256WithRSAEncryption", "auto_renew_enabled": true,
	})
	require.Equal(t, 200, res.status, "%s", res)
	var m Metadata
	res.json(t, &m)
	assert.False(t, m.Imported)
	assert.Equal(t, []string{"shop.example.com", "*.shop.example.com"}, m.Domains)
	require.NotNil(t, m.IssuanceInfo)
	assert.Equal(t, "valid", m.IssuanceInfo.Status)
	require.NotNil(t, m.OrderPolicy)
	assert.True(t, m.OrderPolicy.AutoRenewEnabled)

	dl := call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", m.ID), tok, nil)
	var cd CertificateWithData
	dl.json(t, &cd)
	_, err := pemutil.ParseBundle(cd.Data.Content, cd.Data.PrivKey, cd.Data.Intermediate)
	require.NoError(t, err, "an ordered certificate comes with its key and chain")

	res = call(t, http.MethodPost, f.api("us-south", "/api/v1/certificate/{}/renew", m.ID), tok, map[string]bool{"rotate_keys": false})
	require.Equal(t, 200, res.status, "%s", res)
	var r Metadata
	res.json(t, &r)
	assert.Equal(t, m.ID, r.ID)
	assert.True(t, r.HasPrevious)
	assert.NotEqual(t, m.SerialNumber, r.SerialNumber)

	imported := f.sim.Seed(inst, "imp", "", issue(t, "imp.example.com"))
	res = call(t, http.MethodPost, f.api("us-south", "/api/v1/certificate/{}/renew", imported), tok, map[string]bool{"rotate_keys": true})
	assert.Equal(t, 400, res.status)
	assert.Equal(t, codeNotOrdered, res.errorCode(t))

	for name, body := range map[string]any{
		"no domains":    map[string]any{"name": "x"},
		"bad domain":    map[string]any{"name": "x", "domains": []string{"not a domain"}},
		"http-01":       map[string]any{"name": "x", "domains": []string{"x.example.com"}, "domain_validation_method": "http-01"},
		"unknown field": map[string]any{"name": "x", "domains": []string{"x.example.com"}, "ttl": 3},
		"no name":       map[string]any{"domains": []string{"x.example.com"}},
		"ecdsa key":     map[string]any{"name": "x", "domains": []string{"x.example.com"}, "key_algorithm": "id-ecPublicKey 256 bit"},
	} {
		t.Run(name, func(t *testing.T) {
			f.clock.Advance(time.Minute) // orders are limited to 5 a minute
			res := call(t, http.MethodPost, f.api("us-south", "/api/v1/{}/certificates/order", inst), tok, body)
			assert.Equal(t, 400, res.status, "%s", res)
		})
	}
}

// TestSeedBesideAnotherCertificate: SeedBelow and SeedAbove place a certificate on the
// side of another that a test asks for, every time, even next to the extreme CRNs
// where a random draw would almost never land, and never on a CRN already taken.
func TestSeedBesideAnotherCertificate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		suffix string
		above  bool
	}{
		{"below a small CRN", "00000000000000000000000000000002", false},
		{"above a large CRN", "fffffffffffffffffffffffffffffffd", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			inst := f.inst["us-south"]
			than := inst[:len(inst)-1] + "certificate:" + tc.suffix
			seed := func() string {
				if tc.above {
					return f.sim.SeedAbove(inst, than, "a", "", issue(t, "a.example.com"))
				}
				return f.sim.SeedBelow(inst, than, "b", "", issue(t, "b.example.com"))
			}
			ids := map[string]bool{}
			for range 2 { // the two free CRNs on that side
				id := seed()
				assert.Equal(t, tc.above, id > than, "%s against %s", id, than)
				ids[id] = true
			}
			assert.Len(t, ids, 2)
			assert.Len(t, f.sim.Snapshot(inst), 2)
			assert.Panics(t, func() { seed() }, "no free CRN is left on that side")
			id := f.sim.Seed(inst, "next", "", issue(t, "n.example.com"))
			assert.False(t, ids[id], "the failed placement is not left behind for the next certificate")
		})
	}
	f := newFixture(t, Options{})
	assert.Panics(t, func() {
		f.sim.SeedBelow(f.inst["us-south"], "crn:v1:bluemix:public:cloudcerts:x", "c", "", issue(t, "c.example.com"))
	}, "than is not a certificate of the instance")
}
