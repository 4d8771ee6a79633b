package smsim

import (
	"mime"
	"net/http"
	"time"
)

const (
	apiKeyGrant = "urn:ibm:params:oauth:grant-type:apikey"
	// iamCodeUnknownKey is IAM's code for an API key it does not know.
	iamCodeUnknownKey = "BXNIM0415E"
	// iamCodeBadRequest is a guess for other malformed token requests; clients should
	// act on the status, not on this code.
	iamCodeBadRequest = "BXNIM0109E"
)

// iamError answers in IAM's error shape, which differs from Secrets Manager's.
func iamError(status int, code, message string) response {
	return jsonResponse(status, map[string]any{
		"errorCode":    code,
		"errorMessage": message,
		"context":      map[string]string{"requestId": randomUUID()},
	})
}

// handleToken is POST /identity/token: an API key (or a refresh token this simulator
// issued) for an opaque access token.
func (s *Simulator) handleToken(r *http.Request) response {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return iamError(http.StatusBadRequest, iamCodeBadRequest, "Content-Type must be application/x-www-form-urlencoded.")
	}
	if err := r.ParseForm(); err != nil {
		return iamError(http.StatusBadRequest, iamCodeBadRequest, "The request body could not be parsed.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var key string
	switch r.PostForm.Get("grant_type") {
	case apiKeyGrant:
		key = r.PostForm.Get("apikey")
		if _, ok := s.keys[key]; !ok || key == "" {
			return iamError(http.StatusBadRequest, iamCodeUnknownKey, "Provided API key could not be found.")
		}
	case "refresh_token":
		k, ok := s.refresh[r.PostForm.Get("refresh_token")]
		if _, known := s.keys[k]; !ok || !known {
			return iamError(http.StatusBadRequest, iamCodeBadRequest, "Provided refresh token is invalid.")
		}
		key = k
	default:
		return iamError(http.StatusBadRequest, iamCodeBadRequest, "Unsupported grant_type.")
	}
	expires := s.now().Add(s.tokenLifetime)
	access, refresh := randomToken(), randomToken()
	s.tokens[access] = accessToken{apiKey: key, expires: expires}
	s.refresh[refresh] = key
	return jsonResponse(http.StatusOK, map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"token_type":    "Bearer",
		"expires_in":    int64(s.tokenLifetime / time.Second),
		"expiration":    expires.Unix(),
		"scope":         "ibm openid",
	})
}

// randomToken is opaque: clients must not parse IAM tokens.
func randomToken() string { return "smsimtok-" + randomHex(24) }
