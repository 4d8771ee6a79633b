package cmsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIAMToken(t *testing.T) {
	f := newFixture(t, Options{TokenLifetime: 20 * time.Minute})
	tests := []struct {
		name        string
		contentType string
		form        url.Values
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{name: "api key", contentType: "application/x-www-form-urlencoded",
			form: url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {managerKey}, "response_type": {"cloud_iam"}}, wantStatus: 200},
		{name: "unknown key", contentType: "application/x-www-form-urlencoded",
			form: url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {"nope"}}, wantStatus: 400,
			wantCode: "BXNIM0415E", wantMessage: "Provided API key could not be found."},
		{name: "empty key", contentType: "application/x-www-form-urlencoded",
			form: url.Values{"grant_type": {simiam.APIKeyGrant}}, wantStatus: 400, wantCode: "BXNIM0415E"},
		{name: "wrong grant type", contentType: "application/x-www-form-urlencoded",
			form: url.Values{"grant_type": {"password"}, "apikey": {managerKey}}, wantStatus: 400, wantCode: simiam.CodeBadRequest},
		{name: "json body", contentType: "application/json",
			form: url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {managerKey}}, wantStatus: 400, wantCode: simiam.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, http.MethodPost, f.srv.URL+"/identity/token", "", tc.form.Encode(), tc.contentType)
			require.Equal(t, tc.wantStatus, res.status, "%s", res)
			var body map[string]any
			res.json(t, &body)
			if tc.wantStatus != 200 {
				assert.Equal(t, tc.wantCode, body["errorCode"])
				if tc.wantMessage != "" {
					assert.Equal(t, tc.wantMessage, body["errorMessage"])
				}
				ctx, _ := body["context"].(map[string]any)
				assert.NotEmpty(t, ctx["requestId"])
				assert.NotContains(t, string(res.body), managerKey, "an error body never echoes the key")
				return
			}
			assert.NotEmpty(t, body["access_token"])
			assert.NotEmpty(t, body["refresh_token"])
			assert.Equal(t, "Bearer", body["token_type"])
			assert.EqualValues(t, 1200, body["expires_in"])
			assert.EqualValues(t, f.clock.Now().Add(20*time.Minute).Unix(), body["expiration"], "absolute unix seconds")
		})
	}
}

func TestIAMTokenExpiryAndRefresh(t *testing.T) {
	f := newFixture(t, Options{TokenLifetime: time.Minute})
	inst := f.inst["us-south"]
	list := f.api("us-south", "/api/v3/{}/certificates", inst)

	form := url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {managerKey}}
	res := call(t, http.MethodPost, f.srv.URL+"/identity/token", "", form.Encode(), "application/x-www-form-urlencoded")
	var tok struct{ AccessToken, RefreshToken string }
	var raw map[string]string
	_ = json.Unmarshal(res.body, &raw)
	tok.AccessToken, tok.RefreshToken = raw["access_token"], raw["refresh_token"]

	assert.Equal(t, 200, call(t, http.MethodGet, list, tok.AccessToken, nil).status)
	f.clock.Advance(time.Minute)
	assert.Equal(t, 401, call(t, http.MethodGet, list, tok.AccessToken, nil).status, "expired token")

	form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	res = call(t, http.MethodPost, f.srv.URL+"/identity/token", "", form.Encode(), "application/x-www-form-urlencoded")
	require.Equal(t, 200, res.status)
	_ = json.Unmarshal(res.body, &raw)
	assert.Equal(t, 200, call(t, http.MethodGet, list, raw["access_token"], nil).status)

	f.sim.ExpireTokens()
	assert.Equal(t, 401, call(t, http.MethodGet, list, raw["access_token"], nil).status)
}

func TestPathEncoding(t *testing.T) {
	f := newFixture(t, Options{}, "us-south", "eu-de")
	inst := f.inst["us-south"]
	cert := f.sim.Seed(inst, "a", "", issue(t, "a.example.com"))
	tok := f.token(managerKey)
	base := f.sim.RegionURL(f.srv.URL, "us-south")
	lower := strings.NewReplacer("%3A", "%3a", "%2F", "%2f")
	rawColon := strings.ReplaceAll(cert, "/", "%2F") // the form go-sdk-core's url.PathEscape produces
	tests := []struct {
		name   string
		url    string
		status int
	}{
		{"upper-case hex", base + "/api/v1/certificate/" + escapeUpper(cert) + "/metadata", 200},
		{"lower-case hex", base + "/api/v1/certificate/" + lower.Replace(escapeUpper(cert)) + "/metadata", 200},
		{"raw colon, %2F", base + "/api/v1/certificate/" + rawColon + "/metadata", 200},
		{"unescaped slash splits the segment", base + "/api/v1/certificate/" + cert + "/metadata", 404},
		{"double escaped", base + "/api/v1/certificate/" + strings.ReplaceAll(escapeUpper(cert), "%", "%25") + "/metadata", 400},
		{"other region", f.sim.RegionURL(f.srv.URL, "eu-de") + "/api/v1/certificate/" + escapeUpper(cert) + "/metadata", 404},
		{"unknown region", f.sim.RegionURL(f.srv.URL, "xx-nowhere") + "/api/v1/certificate/" + escapeUpper(cert) + "/metadata", 404},
		{"trailing slash", base + "/api/v1/certificate/" + escapeUpper(cert) + "/metadata/", 404},
		{"wrong version", base + "/api/v2/certificate/" + escapeUpper(cert) + "/metadata", 404},
		{"list, escaped instance", base + "/api/v3/" + escapeUpper(inst) + "/certificates", 200},
		{"list, raw colons", base + "/api/v3/" + strings.ReplaceAll(inst, "/", "%2F") + "/certificates", 200},
		{"list, certificate CRN as instance", base + "/api/v3/" + escapeUpper(cert) + "/certificates", 400},
		// It matches only DELETE .../notifications/{channelId}.
		{"lower-case publickey is not the public key", base + "/api/v1/instances/" + escapeUpper(inst) + "/notifications/publickey?keyFormat=pem", 405},
		{"legacy v2 list is gone", base + "/api/v2/" + escapeUpper(inst) + "/certificates", 404},
		{"root", f.srv.URL + "/", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, http.MethodGet, tc.url, tok, nil)
			require.Equal(t, tc.status, res.status, "%s", res)
			if tc.status == 200 && strings.Contains(tc.url, "/metadata") {
				var m Metadata
				res.json(t, &m)
				assert.Equal(t, cert, m.ID)
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		res := call(t, http.MethodPatch, base+"/api/v1/certificate/"+escapeUpper(cert)+"/metadata", tok, nil)
		assert.Equal(t, 405, res.status)
		assert.Equal(t, codeMethodNotAllowed, res.errorCode(t))
	})
}

func escapeUpper(s string) string {
	return strings.NewReplacer(":", "%3A", "/", "%2F").Replace(s)
}

func TestRoles(t *testing.T) {
	f := newFixture(t, Options{AllowHTTPChannels: true})
	inst := f.inst["us-south"]
	other := f.sim.AddInstance("us-south")
	cert := f.sim.Seed(inst, "a", "", issue(t, "a.example.com"))
	ordered, err := f.sim.Order(inst, "o", "o.example.com")
	require.NoError(t, err)
	for key, role := range map[string]Role{"reader": Reader, "writer": Writer, "manager": Manager} {
		f.sim.Grant(key, inst, role)
	}
	f.sim.AddAPIKey("nobody")
	tokens := map[string]string{}
	for _, k := range []string{"reader", "writer", "manager", "nobody"} {
		tokens[k] = f.token(k)
	}
	imp := importBody("n", "", issue(t, "b.example.com"))
	tests := []struct {
		name   string
		key    string // "" = no Authorization header, "bogus" = unknown token
		method string
		url    string
		body   any
		status int
	}{
		{"no token", "", "GET", f.api("us-south", "/api/v3/{}/certificates", inst), nil, 401},
		{"unknown token", "bogus", "GET", f.api("us-south", "/api/v3/{}/certificates", inst), nil, 401},
		{"no role", "nobody", "GET", f.api("us-south", "/api/v3/{}/certificates", inst), nil, 403},
		{"reader lists", "reader", "GET", f.api("us-south", "/api/v3/{}/certificates", inst), nil, 200},
		{"reader has no role on another instance", "reader", "GET", f.api("us-south", "/api/v3/{}/certificates", other), nil, 403},
		{"reader reads metadata", "reader", "GET", f.api("us-south", "/api/v1/certificate/{}/metadata", cert), nil, 200},
		{"reader cannot download", "reader", "GET", f.api("us-south", "/api/v2/certificate/{}", cert), nil, 403},
		{"writer downloads", "writer", "GET", f.api("us-south", "/api/v2/certificate/{}", cert), nil, 200},
		{"writer cannot import", "writer", "POST", f.api("us-south", "/api/v3/{}/certificates/import", inst), imp, 403},
		{"writer cannot reimport", "writer", "PUT", f.api("us-south", "/api/v1/certificate/{}", cert), imp["data"], 403},
		{"writer cannot delete", "writer", "DELETE", f.api("us-south", "/api/v2/certificate/{}", cert), nil, 403},
		{"reader cannot update", "reader", "POST", f.api("us-south", "/api/v3/certificate/{}", cert), map[string]string{"name": "x"}, 403},
		{"writer updates", "writer", "POST", f.api("us-south", "/api/v3/certificate/{}", cert), map[string]string{"name": "x"}, 200},
		{"reader lists channels", "reader", "GET", f.api("us-south", "/api/v1/instances/{}/notifications/channels", inst), nil, 200},
		{"writer cannot create channel", "writer", "PUT", f.api("us-south", "/api/v1/instances/{}/notifications/channels", inst),
			map[string]any{"type": "url", "endpoint": "https://example.com/x", "is_active": true}, 403},
		{"writer cannot order", "writer", "POST", f.api("us-south", "/api/v1/{}/certificates/order", inst),
			map[string]any{"name": "o", "domains": []string{"o.example.com"}}, 403},
		{"writer cannot set the order policy", "writer", "PUT", f.api("us-south", "/api/v1/certificate/{}/order/policy", ordered),
			map[string]bool{"auto_renew_enabled": true}, 403},
		{"manager sets the order policy", "manager", "PUT", f.api("us-south", "/api/v1/certificate/{}/order/policy", ordered),
			map[string]bool{"auto_renew_enabled": true}, 200},
		{"manager imports", "manager", "POST", f.api("us-south", "/api/v3/{}/certificates/import", inst), imp, 200},
		{"public key needs no token", "", "GET", f.api("us-south", "/api/v1/instances/{}/notifications/publicKey?keyFormat=pem", inst), nil, 200},
		{"unknown instance is 404, not 403", "nobody", "GET",
			f.api("us-south", "/api/v3/{}/certificates", strings.Replace(inst, "cloudcerts:us-south:a/", "cloudcerts:us-south:a/x", 1)), nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tokens[tc.key]
			if tc.key == "bogus" {
				tok = "simtok-bogus"
			}
			res := call(t, tc.method, tc.url, tok, tc.body)
			require.Equal(t, tc.status, res.status, "%s", res)
			if tc.status >= 400 {
				res.errorCode(t)
				if tok != "" {
					assert.NotContains(t, string(res.body), tok, "no token in an error body")
				}
			}
		})
	}
	t.Run("revoke applies to issued tokens", func(t *testing.T) {
		f.sim.Revoke("reader", inst)
		assert.Equal(t, 403, call(t, "GET", f.api("us-south", "/api/v3/{}/certificates", inst), tokens["reader"], nil).status)
	})
}
