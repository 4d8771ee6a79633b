package smsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

func TestCreateValidation(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	other := testCA.MustIssue("b.example.com")
	otherCA := testpki.MustNewCA("Other")
	foreign := otherCA.MustIssue("a.example.com")
	expired, err := testCA.Issue(testpki.Options{Domains: []string{"old.example.com"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	require.NoError(t, err)
	gid, err := f.sim.AddGroup(f.inst, "team-a", "")
	require.NoError(t, err)
	f.seed("taken-name", other)

	with := func(kv ...any) map[string]any {
		b := importBody("new-cert", iss)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(b, kv[i].(string))
				continue
			}
			b[kv[i].(string)] = kv[i+1]
		}
		return b
	}
	labels := func(n int, l string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", l, i)
		}
		return out
	}
	bigMeta := map[string]any{"x": strings.Repeat("a", maxMetadataBytes)}

	tests := []struct {
		name        string
		contentType string
		body        any
		status      int
		msg         string // part of errors[0].message
	}{
		{"valid", "application/json", with(), 201, ""},
		{"valid in a group, no key, no chain", "application/json", with("name", "in-group", "secret_group_id", gid, "private_key", nil, "intermediate", nil), 201, ""},
		{"valid default group and charset", "application/json; charset=utf-8", with("name", "in-default", "secret_group_id", "default"), 201, ""},
		{"wrong content type", "text/plain", with(), 415, "application/json"},
		{"not JSON", "application/json", "{", 400, "JSON object"},
		{"trailing data", "application/json", `{"secret_type":"imported_cert","name":"x1","certificate":"c"} {}`, 400, ""},
		{"no secret_type", "application/json", with("secret_type", nil), 400, "secret_type is required"},
		{"public_cert", "application/json", with("secret_type", "public_cert"), 400, "ordered or issued"},
		{"arbitrary", "application/json", with("secret_type", "arbitrary"), 400, "not supported"},
		{"unknown field", "application/json", with("priv_key", "x"), 400, "priv_key"},
		{"managed csr", "application/json", with("managed_csr", map[string]any{"common_name": "x"}), 400, "managed_csr"},
		{"no name", "application/json", with("name", nil), 400, "name is required"},
		{"name with a space", "application/json", with("name", "my cert"), 400, "letters, digits"},
		{"name ends with a dash", "application/json", with("name", "cert-"), 400, "letters, digits"},
		{"name of one character", "application/json", with("name", "a"), 400, "2 to 256"},
		{"name too long", "application/json", with("name", strings.Repeat("a", 257)), 400, "2 to 256"},
		{"duplicate name", "application/json", with("name", "taken-name"), 409, "already exists"},
		{"duplicate name other case", "application/json", with("name", "Taken-Name"), 409, "already exists"},
		{"description too long", "application/json", with("description", strings.Repeat("d", 1025)), 400, "description"},
		{"description of one character", "application/json", with("description", "d"), 400, "2 to 1024"},
		{"empty description", "application/json", with("description", ""), 400, "2 to 1024"},
		{"name with an underscore", "application/json", with("name", "my_cert"), 400, "letters, digits"},
		{"name starting with an underscore", "application/json", with("name", "_cert"), 400, "letters, digits"},
		{"name with dots and dashes", "application/json", with("name", "a.b-c.example-com"), 201, ""},
		{"description of 1024 astral characters", "application/json", with("description", strings.Repeat("😀", 600)), 400, "description"},
		{"31 labels", "application/json", with("labels", labels(31, "l")), 400, "30 labels"},
		{"label of one character", "application/json", with("labels", []string{"x"}), 400, "labels[0]"},
		{"label of 65 characters", "application/json", with("labels", []string{strings.Repeat("l", 65)}), 400, "labels[0]"},
		{"group id not a UUID", "application/json", with("secret_group_id", "team-a"), 400, "UUID"},
		{"group id empty", "application/json", with("secret_group_id", ""), 400, "UUID"},
		{"unknown group", "application/json", with("secret_group_id", randomUUID()), 400, "does not exist"},
		{"no certificate", "application/json", with("certificate", nil), 400, "certificate is required"},
		{"certificate too short", "application/json", with("certificate", "-----BEGIN X-----\nx\n-----END X-----"), 400, "50 to 100000"},
		{"certificate not PEM", "application/json", with("certificate", strings.Repeat("x", 60)), 400, "PEM"},
		{"certificate with a preamble", "application/json", with("certificate", "hello\n"+iss.CertPEM), 400, "PEM"},
		{"certificate garbage PEM", "application/json", with("certificate", "-----BEGIN CERTIFICATE-----\n"+strings.Repeat("A", 60)+"\n-----END CERTIFICATE-----\n"), 400, "Unable to parse the certificate"},
		{"certificate with chain", "application/json", with("certificate", iss.CertPEM+iss.Intermediate), 400, "exactly one"},
		{"expired", "application/json", with("certificate", expired.CertPEM, "private_key", expired.KeyPEM), 400, "expired"},
		{"key of another certificate", "application/json", with("private_key", other.KeyPEM), 400, "does not match"},
		{"key garbage", "application/json", with("private_key", "-----BEGIN PRIVATE KEY-----\n"+strings.Repeat("A", 60)+"\n-----END PRIVATE KEY-----\n"), 400, "Unable to parse the private key"},
		{"empty key", "application/json", with("private_key", ""), 400, "private_key"},
		{"empty intermediate", "application/json", with("intermediate", ""), 400, "intermediate"},
		{"intermediate that did not sign", "application/json", with("intermediate", otherCA.IntermediatePEM), 400, "did not sign"},
		{"intermediate and root", "application/json", with("name", "full-chain", "intermediate", iss.Intermediate+testCA.RootPEM), 201, ""},
		{"intermediate repeated", "application/json", with("intermediate", iss.Intermediate+iss.Intermediate), 400, "did not sign"},
		{"foreign leaf with our chain", "application/json", with("certificate", foreign.CertPEM, "private_key", foreign.KeyPEM), 400, "did not sign"},
		{"custom_metadata too big", "application/json", with("custom_metadata", bigMeta), 400, "10000 bytes"},
		{"custom_metadata array", "application/json", with("custom_metadata", []string{"a"}), 400, "JSON object"},
		{"version_custom_metadata too big", "application/json", with("version_custom_metadata", bigMeta), 400, "10000 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(keyWriter, http.MethodPost, "/api/v2/secrets", tc.contentType, tc.body)
			require.Equal(t, tc.status, r.status, "body: %s", r)
			if tc.status >= 400 {
				assert.Contains(t, r.errorMessage(t), tc.msg)
				assert.NotContains(t, string(r.body), "PRIVATE KEY", "an error never quotes the material")
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.seed("some-cert", testCA.MustIssue("a.example.com"))
	body := importBody("another-cert", testCA.MustIssue("b.example.com"))
	patch := `{"description":"new description"}`
	tests := []struct {
		name   string
		key    string
		method string
		path   string
		ctype  string
		body   any
		status int
	}{
		{"no token", "", "GET", "/api/v2/secrets", "", nil, 401},
		{"reader lists", keyReader, "GET", "/api/v2/secrets", "", nil, 200},
		{"reader reads metadata", keyReader, "GET", "/api/v2/secrets/" + id + "/metadata", "", nil, 200},
		{"reader lists versions", keyReader, "GET", "/api/v2/secrets/" + id + "/versions", "", nil, 200},
		{"reader reads version metadata", keyReader, "GET", "/api/v2/secrets/" + id + "/versions/current/metadata", "", nil, 200},
		{"reader lists groups", keyReader, "GET", "/api/v2/secret_groups", "", nil, 200},
		{"reader reads payload", keyReader, "GET", "/api/v2/secrets/" + id, "", nil, 403},
		{"reader reads version payload", keyReader, "GET", "/api/v2/secrets/" + id + "/versions/current", "", nil, 403},
		{"reader reads by name", keyReader, "GET", "/api/v2/secret_groups/default/secret_types/imported_cert/secrets/some-cert", "", nil, 403},
		{"secrets reader reads payload", keySecretsReader, "GET", "/api/v2/secrets/" + id, "", nil, 200},
		{"secrets reader reads by name", keySecretsReader, "GET", "/api/v2/secret_groups/default/secret_types/imported_cert/secrets/some-cert", "", nil, 200},
		{"secrets reader creates", keySecretsReader, "POST", "/api/v2/secrets", "application/json", body, 403},
		{"secrets reader patches", keySecretsReader, "PATCH", "/api/v2/secrets/" + id + "/metadata", "application/merge-patch+json", patch, 403},
		{"writer patches", keyWriter, "PATCH", "/api/v2/secrets/" + id + "/metadata", "application/merge-patch+json", patch, 200},
		{"writer creates a group", keyWriter, "POST", "/api/v2/secret_groups", "application/json", `{"name":"g1"}`, 403},
		{"writer deletes", keyWriter, "DELETE", "/api/v2/secrets/" + id, "", nil, 403},
		{"manager creates a group", keyManager, "POST", "/api/v2/secret_groups", "application/json", `{"name":"g1"}`, 201},
		{"manager deletes", keyManager, "DELETE", "/api/v2/secrets/" + id, "", nil, 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(tc.key, tc.method, tc.path, tc.ctype, tc.body)
			assert.Equal(t, tc.status, r.status, "body: %s", r)
		})
	}

	t.Run("bad and expired tokens", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.base+"/api/v2/secrets", nil)
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 401, resp.StatusCode)

		g := newFixture(t, Options{TokenLifetime: time.Minute})
		g.token(keyReader)
		g.clock.Advance(2 * time.Minute)
		assert.Equal(t, 401, g.get(keyReader, "/api/v2/secrets").status)
		delete(g.tokens, keyReader)
		assert.Equal(t, 200, g.get(keyReader, "/api/v2/secrets").status)
		g.sim.ExpireTokens()
		assert.Equal(t, 401, g.get(keyReader, "/api/v2/secrets").status)
	})
	t.Run("revoked and other instances", func(t *testing.T) {
		other := f.sim.AddInstance("eu-de")
		base, err := f.sim.InstanceURL(f.srv.URL(), other)
		require.NoError(t, err)
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+f.token(keyManager))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 403, resp.StatusCode, "a role on one instance gives nothing on another")
		f.sim.Revoke(keyReader, f.inst)
		assert.Equal(t, 403, f.get(keyReader, "/api/v2/secrets").status)
		f.sim.RemoveAPIKey(keySecretsReader)
		assert.Equal(t, 403, f.get(keySecretsReader, "/api/v2/secrets").status)
	})
	t.Run("IAM", func(t *testing.T) {
		post := func(ctype, body string) (int, map[string]any) {
			resp, err := http.Post(f.srv.IAMURL()+"/identity/token", ctype, strings.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		st, m := post("application/x-www-form-urlencoded", url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {"unknown"}}.Encode())
		assert.Equal(t, 400, st)
		assert.Equal(t, simiam.CodeUnknownKey, m["errorCode"])
		st, _ = post("application/json", `{"apikey":"key-manager"}`)
		assert.Equal(t, 400, st)
		st, m = post("application/x-www-form-urlencoded", url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {keyManager}}.Encode())
		require.Equal(t, 200, st)
		st, m = post("application/x-www-form-urlencoded", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}}.Encode())
		assert.Equal(t, 200, st)
		assert.Equal(t, "Bearer", m["token_type"])
		resp, err := http.Get(f.srv.IAMURL() + "/identity/token")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 405, resp.StatusCode)
	})
}

func TestRoutingAndQuery(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.seed("some-cert", testCA.MustIssue("a.example.com"))
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"unknown path", "GET", "/api/v2/nothing", 404},
		{"v1", "GET", "/api/v1/secrets", 404},
		{"trailing slash", "GET", "/api/v2/secrets/", 404},
		{"wrong method", "PUT", "/api/v2/secrets/" + id, 405},
		{"wrong method on a collection", "DELETE", "/api/v2/secrets", 405},
		{"not a UUID", "GET", "/api/v2/secrets/abc/metadata", 400},
		{"upper-case UUID", "GET", "/api/v2/secrets/" + strings.ToUpper(id) + "/metadata", 400},
		{"unknown secret", "GET", "/api/v2/secrets/" + randomUUID() + "/metadata", 404},
		{"unknown version", "GET", "/api/v2/secrets/" + id + "/versions/" + randomUUID() + "/metadata", 404},
		{"no previous version", "GET", "/api/v2/secrets/" + id + "/versions/previous/metadata", 404},
		{"bad version alias", "GET", "/api/v2/secrets/" + id + "/versions/latest", 400},
		{"unknown query parameter", "GET", "/api/v2/secrets?match_all_label=x", 400},
		{"query on a get", "GET", "/api/v2/secrets/" + id + "/metadata?x=1", 400},
		{"repeated parameter", "GET", "/api/v2/secrets?limit=1&limit=2", 400},
		{"limit 0", "GET", "/api/v2/secrets?limit=0", 400},
		{"limit 1001", "GET", "/api/v2/secrets?limit=1001", 400},
		{"limit 1000", "GET", "/api/v2/secrets?limit=1000", 200},
		{"limit not a number", "GET", "/api/v2/secrets?limit=ten", 400},
		{"negative offset", "GET", "/api/v2/secrets?offset=-1", 400},
		{"offset too big", "GET", "/api/v2/secrets?offset=10000001", 400},
		{"bad sort", "GET", "/api/v2/secrets?sort=labels", 400},
		{"retrieved_at is newer than v2.0.11", "GET", "/api/v2/secrets?sort=retrieved_at", 400},
		{"descending sort", "GET", "/api/v2/secrets?sort=-created_at", 200},
		{"search of one character", "GET", "/api/v2/secrets?search=a", 400},
		{"bad group", "GET", "/api/v2/secrets?groups=team-a", 400},
		{"default group", "GET", "/api/v2/secrets?groups=default", 200},
		{"bad type", "GET", "/api/v2/secrets?secret_types=certificate", 400},
		{"empty label", "GET", "/api/v2/secrets?match_all_labels=a,,b", 400},
		{"unknown type by name", "GET", "/api/v2/secret_groups/default/secret_types/cert/secrets/some-cert", 400},
		{"unknown group by name", "GET", "/api/v2/secret_groups/nope/secret_types/imported_cert/secrets/some-cert", 404},
		{"unknown name", "GET", "/api/v2/secret_groups/default/secret_types/imported_cert/secrets/nope", 404},
		{"wrong type by name", "GET", "/api/v2/secret_groups/default/secret_types/public_cert/secrets/some-cert", 404},
		{"default group is not a resource", "GET", "/api/v2/secret_groups/default", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(keyManager, tc.method, tc.path, "", nil)
			assert.Equal(t, tc.status, r.status, "body: %s", r)
			if r.status >= 400 {
				r.errorMessage(t)
			}
		})
	}
	t.Run("unknown instance", func(t *testing.T) {
		resp, err := http.Get(f.srv.URL() + "/us-south/" + randomUUID() + "/api/v2/secrets")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode)
	})
}

func TestListFiltersAndPages(t *testing.T) {
	f := newFixture(t, Options{})
	gid, err := f.sim.AddGroup(f.inst, "team-a", "")
	require.NoError(t, err)
	for i := range 7 {
		in := Seed{Name: fmt.Sprintf("cert-%d", i), Description: "copy of shop", Labels: []string{"all-of-them"}}
		iss := testCA.MustIssue(fmt.Sprintf("h%d.example.com", i))
		in.Certificate, in.PrivateKey = iss.CertPEM, iss.KeyPEM
		if i%2 == 0 {
			in.Labels = append(in.Labels, "even")
			in.GroupID = gid
		}
		_, err := f.sim.Seed(f.inst, in)
		require.NoError(t, err)
		f.clock.Advance(time.Second)
	}
	type page struct {
		TotalCount int          `json:"total_count"`
		Limit      int          `json:"limit"`
		Offset     int          `json:"offset"`
		First      pageLink     `json:"first"`
		Next       *pageLink    `json:"next"`
		Previous   *pageLink    `json:"previous"`
		Last       pageLink     `json:"last"`
		Secrets    []secretJSON `json:"secrets"`
	}
	list := func(q string) (page, []string) {
		r := f.get(keyReader, "/api/v2/secrets?"+q)
		require.Equal(t, 200, r.status, "body: %s", r)
		var p page
		r.json(t, &p)
		var names []string
		for _, s := range p.Secrets {
			names = append(names, s.Name)
			assert.Empty(t, s.Certificate, "a list has no payload")
			assert.Empty(t, s.PrivateKey)
		}
		return p, names
	}
	tests := []struct {
		name  string
		query string
		total int
		names []string
	}{
		{"everything by name", "sort=name", 7, []string{"cert-0", "cert-1", "cert-2", "cert-3", "cert-4", "cert-5", "cert-6"}},
		{"descending creation", "sort=-created_at&limit=3", 7, []string{"cert-6", "cert-5", "cert-4"}},
		{"second page", "sort=name&limit=3&offset=3", 7, []string{"cert-3", "cert-4", "cert-5"}},
		{"past the end", "sort=name&offset=50", 7, nil},
		{"labels all", "sort=name&match_all_labels=all-of-them,even", 4, []string{"cert-0", "cert-2", "cert-4", "cert-6"}},
		{"labels exact, not substring", "match_all_labels=eve", 0, nil},
		{"search substring of a label", "sort=name&search=eve", 4, []string{"cert-0", "cert-2", "cert-4", "cert-6"}},
		{"search in description", "search=shop", 7, nil},
		{"search is case-sensitive", "search=SHOP", 0, nil},
		{"group", "sort=name&groups=" + gid, 4, []string{"cert-0", "cert-2", "cert-4", "cert-6"}},
		{"default group", "sort=name&groups=default", 3, []string{"cert-1", "cert-3", "cert-5"}},
		{"two groups", "groups=default," + gid, 7, nil},
		{"other types", "secret_types=public_cert,private_cert", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, names := list(tc.query)
			assert.Equal(t, tc.total, p.TotalCount)
			if tc.names != nil || tc.total == 0 {
				assert.Equal(t, tc.names, names)
			}
		})
	}
	t.Run("links", func(t *testing.T) {
		p, _ := list("sort=name&limit=3&offset=3&match_all_labels=all-of-them")
		assert.Equal(t, 3, p.Limit)
		assert.Equal(t, 3, p.Offset)
		prefix := f.base + "/api/v2/secrets?"
		assert.Equal(t, prefix+"limit=3&match_all_labels=all-of-them&sort=name", p.First.Href)
		require.NotNil(t, p.Next)
		assert.Equal(t, prefix+"limit=3&match_all_labels=all-of-them&offset=6&sort=name", p.Next.Href)
		require.NotNil(t, p.Previous)
		assert.Equal(t, prefix+"limit=3&match_all_labels=all-of-them&sort=name", p.Previous.Href)
		assert.Equal(t, prefix+"limit=3&match_all_labels=all-of-them&offset=6&sort=name", p.Last.Href)

		p, _ = list("")
		assert.Equal(t, 200, p.Limit)
		assert.Nil(t, p.Next)
		assert.Nil(t, p.Previous)
		assert.Equal(t, p.First, p.Last)
	})
	t.Run("default order is by id", func(t *testing.T) {
		p, _ := list("")
		for i := 1; i < len(p.Secrets); i++ {
			assert.Less(t, p.Secrets[i-1].ID, p.Secrets[i].ID)
		}
	})
}

func TestMetadataPatch(t *testing.T) {
	f := newFixture(t, Options{})
	id, err := f.sim.Seed(f.inst, func() Seed {
		iss := testCA.MustIssue("a.example.com")
		return Seed{Name: "patch-me", Description: "desc", Labels: []string{"l1", "l2"}, CustomMetadata: map[string]any{"a": 1, "b": 2},
			Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM}
	}())
	require.NoError(t, err)
	f.seed("other-name", testCA.MustIssue("b.example.com"))
	path := "/api/v2/secrets/" + id + "/metadata"
	const mp = "application/merge-patch+json"
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		check  func(t *testing.T, s Secret)
	}{
		{"plain JSON is refused", "application/json", `{"description":"new description"}`, 415, nil},
		{"empty patch", mp, `{}`, 400, nil},
		{"not an object", mp, `[]`, 400, nil},
		{"unknown field", mp, `{"expiration_date":"2030-01-01T00:00:00Z"}`, 400, nil},
		{"null name", mp, `{"name":null}`, 400, nil},
		{"bad name", mp, `{"name":"a b"}`, 400, nil},
		{"empty description", mp, `{"description":""}`, 400, nil},
		{"taken name", mp, `{"name":"OTHER-name"}`, 409, nil},
		{"bad labels", mp, `{"labels":["x"]}`, 400, nil},
		{"labels not strings", mp, `{"labels":[1]}`, 400, nil},
		{"big metadata", mp, `{"custom_metadata":{"x":"` + strings.Repeat("a", maxMetadataBytes) + `"}}`, 400, nil},
		{"rename", mp, `{"name":"patched"}`, 200, func(t *testing.T, s Secret) {
			assert.Equal(t, "patched", s.Name)
			assert.Equal(t, "desc", s.Description, "absent fields are kept")
		}},
		{"replace metadata", mp, `{"custom_metadata":{"c":3}}`, 200, func(t *testing.T, s Secret) {
			assert.Equal(t, map[string]any{"c": float64(3)}, s.CustomMetadata)
		}},
		{"clear", mp, `{"description":null,"labels":null,"custom_metadata":null}`, 200, func(t *testing.T, s Secret) {
			assert.Empty(t, s.Description)
			assert.Nil(t, s.Labels)
			assert.Nil(t, s.CustomMetadata)
		}},
		{"keep own name in other case", mp, `{"name":"PATCHED"}`, 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := f.sim.Get(f.inst, id)
			require.NoError(t, err)
			f.clock.Advance(time.Second)
			r := f.call(keyWriter, http.MethodPatch, path, tc.ctype, tc.body)
			require.Equal(t, tc.status, r.status, "body: %s", r)
			after, err := f.sim.Get(f.inst, id)
			require.NoError(t, err)
			if tc.status != 200 {
				assert.Equal(t, before, after, "a refused patch changes nothing")
				return
			}
			assert.True(t, after.UpdatedAt.After(before.UpdatedAt))
			var out secretJSON
			r.json(t, &out)
			assert.Equal(t, after.Name, out.Name)
			if tc.check != nil {
				tc.check(t, after)
			}
		})
	}
	t.Run("labels and metadata left out when empty", func(t *testing.T) {
		r := f.get(keyReader, path)
		var m map[string]any
		r.json(t, &m)
		assert.NotContains(t, m, "labels")
		assert.NotContains(t, m, "custom_metadata")
		assert.NotContains(t, m, "description")
		assert.Contains(t, m, "downloaded")
		assert.Contains(t, m, "locks_total")
	})
}

func TestVersionsAndPayloadRetention(t *testing.T) {
	f := newFixture(t, Options{})
	iss := []*testpki.Issued{testCA.MustIssue("a.example.com"), testCA.MustIssue("a.example.com"), testCA.MustIssue("a.example.com")}
	id := f.create("rotating", iss[0], nil)
	created, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	for i, is := range iss[1:] {
		f.clock.Advance(time.Minute)
		r := f.postJSON(keyWriter, "/api/v2/secrets/"+id+"/versions", map[string]any{
			"certificate": is.CertPEM, "private_key": is.KeyPEM, "version_custom_metadata": map[string]any{"n": i + 2},
		})
		require.Equal(t, 201, r.status, "body: %s", r)
		var v versionJSON
		r.json(t, &v)
		assert.Equal(t, "current", v.Alias)
		assert.Empty(t, v.Certificate)
	}
	s, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	require.Len(t, s.Versions, 3)
	assert.Equal(t, 3, s.VersionsTotal)
	assert.False(t, s.Versions[0].PayloadAvailable, "older than previous: payload gone")
	assert.True(t, s.Versions[1].PayloadAvailable)
	assert.Equal(t, iss[2].CertPEM, s.Current().Certificate)
	assert.Equal(t, created.UpdatedAt, s.UpdatedAt, "a new version leaves updated_at")

	r := f.get(keySecretsReader, "/api/v2/secrets/"+id+"/versions/"+s.Versions[0].ID)
	require.Equal(t, 200, r.status)
	var old versionJSON
	r.json(t, &old)
	assert.False(t, old.PayloadAvailable)
	assert.Empty(t, old.Certificate)
	assert.Empty(t, old.Alias)
	assert.False(t, old.Downloaded)

	r = f.get(keyReader, "/api/v2/secrets/"+id+"/versions")
	var coll versionCollectionJSON
	r.json(t, &coll)
	require.Equal(t, 3, coll.TotalCount)
	assert.Equal(t, []string{"current", "previous", ""}, []string{coll.Versions[0].Alias, coll.Versions[1].Alias, coll.Versions[2].Alias})

	refused := []struct {
		name   string
		ctype  string
		body   any
		status int
	}{
		{"no certificate", "application/json", map[string]any{"private_key": iss[0].KeyPEM}, 400},
		{"wrong key", "application/json", map[string]any{"certificate": iss[0].CertPEM, "private_key": iss[1].KeyPEM}, 400},
		{"secret_type is not a version field", "application/json", map[string]any{"certificate": iss[0].CertPEM, "secret_type": "imported_cert"}, 400},
		{"wrong content type", "application/merge-patch+json", map[string]any{"certificate": iss[0].CertPEM}, 415},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(keyWriter, http.MethodPost, "/api/v2/secrets/"+id+"/versions", tc.ctype, tc.body)
			assert.Equal(t, tc.status, r.status, "body: %s", r)
		})
	}
	after, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	assert.Len(t, after.Versions, 3, "refused versions are not stored")

	t.Run("fifty versions of metadata", func(t *testing.T) {
		for range 50 {
			_, err := f.sim.Rotate(f.inst, id, Version{Certificate: iss[0].CertPEM})
			require.NoError(t, err)
		}
		s, err := f.sim.Get(f.inst, id)
		require.NoError(t, err)
		assert.Len(t, s.Versions, 50)
		assert.Equal(t, 50, s.VersionsTotal, "versions_total counts the kept versions (at most 50)")
	})
}

func TestDownloadedAndStates(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	id := f.seed("stateful", iss)
	meta := func() secretJSON {
		var m secretJSON
		f.get(keyReader, "/api/v2/secrets/"+id+"/metadata").json(t, &m)
		return m
	}
	assert.False(t, meta().Downloaded)
	for _, st := range []State{PreActivation, Suspended, Deactivated} {
		require.NoError(t, f.sim.SetState(f.inst, id, st))
		r := f.get(keySecretsReader, "/api/v2/secrets/"+id)
		require.Equal(t, 200, r.status)
		var s secretJSON
		r.json(t, &s)
		assert.Empty(t, s.Certificate, st.Description())
		assert.Equal(t, int(st), s.State)
		assert.Equal(t, st.Description(), s.StateDescription)
		assert.False(t, meta().Downloaded, "nothing was returned")
	}
	require.NoError(t, f.sim.SetState(f.inst, id, Active))
	r := f.get(keySecretsReader, "/api/v2/secrets/"+id)
	var s secretJSON
	r.json(t, &s)
	assert.Equal(t, iss.CertPEM, s.Certificate)
	assert.True(t, s.Downloaded)
	assert.True(t, meta().Downloaded)

	_, err := f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM})
	require.NoError(t, err)
	assert.False(t, meta().Downloaded, "downloaded belongs to the current version")

	require.NoError(t, f.sim.SetState(f.inst, id, Destroyed))
	got, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	for _, v := range got.Versions {
		assert.False(t, v.PayloadAvailable)
	}
	require.NoError(t, f.sim.SetState(f.inst, id, Active))
	r = f.get(keySecretsReader, "/api/v2/secrets/"+id)
	var again secretJSON
	r.json(t, &again)
	assert.Empty(t, again.Certificate, "destroyed is for good")
	assert.Error(t, f.sim.SetState(f.inst, id, State(4)))
}

func TestLocks(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	newVersion := func(id string) int {
		return f.postJSON(keyWriter, "/api/v2/secrets/"+id+"/versions", map[string]any{"certificate": iss.CertPEM}).status
	}
	patch := func(id string) int {
		return f.call(keyWriter, http.MethodPatch, "/api/v2/secrets/"+id+"/metadata", "application/merge-patch+json", `{"description":"new description"}`).status
	}
	del := func(id string) int {
		return f.call(keyManager, http.MethodDelete, "/api/v2/secrets/"+id, "", nil).status
	}

	t.Run("current version locked", func(t *testing.T) {
		id := f.seed("one-version", iss)
		require.NoError(t, f.sim.LockSecret(f.inst, id, "app-1"))
		assert.Equal(t, 412, patch(id))
		assert.Equal(t, 412, del(id))
		assert.Equal(t, 201, newVersion(id), "IBM allows a new version while only the current one is locked")
		assert.Equal(t, 412, newVersion(id), "now the locked version is the previous one")
		s, err := f.sim.Get(f.inst, id)
		require.NoError(t, err)
		assert.Equal(t, []string{"app-1"}, s.Versions[0].Locks)
		require.NoError(t, f.sim.Unlock(f.inst, id, "app-1"))
		assert.Equal(t, 201, newVersion(id))
		assert.Equal(t, 200, patch(id))
		assert.Equal(t, 204, del(id))
	})
	t.Run("previous version locked", func(t *testing.T) {
		id := f.seed("two-versions", iss)
		_, err := f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM})
		require.NoError(t, err)
		require.NoError(t, f.sim.LockVersion(f.inst, id, "previous", "audit"))
		r := f.postJSON(keyWriter, "/api/v2/secrets/"+id+"/versions", map[string]any{"certificate": iss.CertPEM})
		assert.Equal(t, 412, r.status)
		assert.Contains(t, r.errorMessage(t), "locked")
		_, err = f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM})
		assert.ErrorIs(t, err, ErrLocked)
		assert.ErrorIs(t, f.sim.Delete(f.inst, id), ErrLocked)
	})
	t.Run("lock needs a payload", func(t *testing.T) {
		id := f.seed("three-versions", iss)
		for range 2 {
			_, err := f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM})
			require.NoError(t, err)
		}
		s, err := f.sim.Get(f.inst, id)
		require.NoError(t, err)
		assert.ErrorIs(t, f.sim.LockVersion(f.inst, id, s.Versions[0].ID, "late"), ErrRejected)
		assert.ErrorIs(t, f.sim.LockVersion(f.inst, id, randomUUID(), "late"), ErrNotFound)
		require.NoError(t, f.sim.LockSecret(f.inst, id, "x"))
		require.NoError(t, f.sim.LockSecret(f.inst, id, "x"), "a lock of the same name is replaced")
		s, err = f.sim.Get(f.inst, id)
		require.NoError(t, err)
		assert.Equal(t, 2, s.LocksTotal)
	})
}

func TestGroups(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"valid", `{"name":"team-a","description":"Team A"}`, 201},
		{"no description", `{"name":"team-b"}`, 201},
		{"empty description", `{"name":"team-c","description":""}`, 400},
		{"duplicate", `{"name":"TEAM-A"}`, 409},
		{"default", `{"name":"default"}`, 409},
		{"no name", `{"description":"new description"}`, 400},
		{"one character", `{"name":"a"}`, 400},
		{"65 characters", `{"name":"` + strings.Repeat("g", 65) + `"}`, 400},
		{"space", `{"name":"team a"}`, 400},
		{"unknown field", `{"name":"team-d","labels":[]}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.postJSON(keyManager, "/api/v2/secret_groups", tc.body)
			assert.Equal(t, tc.status, r.status, "body: %s", r)
		})
	}
	var coll groupCollectionJSON
	f.get(keyReader, "/api/v2/secret_groups").json(t, &coll)
	require.Equal(t, 2, coll.TotalCount)
	assert.Equal(t, "team-a", coll.SecretGroups[0].Name)
	assert.Equal(t, "", coll.SecretGroups[1].Description)

	g := coll.SecretGroups[0].ID
	assert.Equal(t, 200, f.get(keyReader, "/api/v2/secret_groups/"+g).status)
	assert.Equal(t, 404, f.get(keyReader, "/api/v2/secret_groups/"+randomUUID()).status)
	id := f.create("grouped", testCA.MustIssue("a.example.com"), map[string]any{"secret_group_id": g})
	assert.Equal(t, 409, f.call(keyManager, http.MethodDelete, "/api/v2/secret_groups/"+g, "", nil).status)
	assert.Equal(t, 204, f.call(keyManager, http.MethodDelete, "/api/v2/secrets/"+id, "", nil).status)
	assert.Equal(t, 204, f.call(keyManager, http.MethodDelete, "/api/v2/secret_groups/"+g, "", nil).status)
	assert.Equal(t, 404, f.call(keyManager, http.MethodDelete, "/api/v2/secret_groups/"+g, "", nil).status)

	t.Run("at most 200", func(t *testing.T) {
		h := newFixture(t, Options{})
		for i := range maxGroups {
			_, err := h.sim.AddGroup(h.inst, fmt.Sprintf("g%03d", i), "")
			require.NoError(t, err)
		}
		_, err := h.sim.AddGroup(h.inst, "one-more", "")
		assert.ErrorIs(t, err, ErrRejected)
	})
}

func TestSameNameOtherTypeAndInstance(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	f.seed("shared", iss)
	_, err := f.sim.Seed(f.inst, Seed{Type: PublicCert, Name: "shared", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM})
	assert.NoError(t, err, "names are unique per type")
	_, err = f.sim.Seed(f.inst, Seed{Name: "SHARED", Certificate: iss.CertPEM})
	assert.ErrorIs(t, err, ErrConflict)
	other := f.sim.AddInstance("eu-de")
	_, err = f.sim.Seed(other, Seed{Name: "shared", Certificate: iss.CertPEM})
	assert.NoError(t, err, "and per instance")
}
