package simiam

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, s *Service, contentType string, form url.Values) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/identity/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", contentType)
	return s.Handle(r)
}

const formType = "application/x-www-form-urlencoded"

func TestTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := New(func() time.Time { return now }, time.Minute)
	s.AddKey("k")

	status, body := post(t, s, formType, url.Values{"grant_type": {APIKeyGrant}, "apikey": {"k"}})
	require.Equal(t, http.StatusOK, status)
	access, _ := body["access_token"].(string)
	refresh, _ := body["refresh_token"].(string)
	assert.True(t, strings.HasPrefix(access, TokenPrefix))
	assert.Equal(t, int64(60), body["expires_in"])
	key, ok := s.Resolve(access)
	assert.True(t, ok)
	assert.Equal(t, "k", key)
	_, ok = s.Resolve(refresh)
	assert.False(t, ok, "a refresh token is not an access token")

	now = now.Add(time.Minute)
	_, ok = s.Resolve(access)
	assert.False(t, ok, "expired")

	status, body = post(t, s, formType, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	require.Equal(t, http.StatusOK, status)
	_, ok = s.Resolve(body["access_token"].(string))
	assert.True(t, ok)
	s.ExpireAll()
	_, ok = s.Resolve(body["access_token"].(string))
	assert.False(t, ok, "ExpireAll")

	s.RemoveKey("k")
	status, body = post(t, s, formType, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	assert.Equal(t, http.StatusBadRequest, status, "a removed key's refresh token is refused")
	assert.Equal(t, CodeBadRequest, body["errorCode"])
}

func TestRefusals(t *testing.T) {
	s := New(nil, 0)
	s.AddKey("k")
	tests := []struct {
		name        string
		contentType string
		form        url.Values
		code        string
	}{
		{"unknown key", formType, url.Values{"grant_type": {APIKeyGrant}, "apikey": {"nope"}}, CodeUnknownKey},
		{"no key", formType, url.Values{"grant_type": {APIKeyGrant}}, CodeUnknownKey},
		{"other grant", formType, url.Values{"grant_type": {"password"}, "apikey": {"k"}}, CodeBadRequest},
		{"JSON", "application/json", url.Values{"grant_type": {APIKeyGrant}, "apikey": {"k"}}, CodeBadRequest},
		{"bad refresh token", formType, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, s, tc.contentType, tc.form)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, tc.code, body["errorCode"])
			assert.NotEmpty(t, body["errorMessage"])
		})
	}
}
