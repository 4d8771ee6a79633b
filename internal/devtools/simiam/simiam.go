// Package simiam is the IAM token service that both simulators (cmsim, smsim) answer
// on POST /identity/token: an API key it knows, or a refresh token it issued, for an
// opaque access token that expires, in IAM's form encoding and error shape. The
// simulators ask it which API key a bearer token stands for and decide roles themselves.
package simiam

import (
	"crypto/rand"
	"encoding/hex"
	"mime"
	"net/http"
	"sync"
	"time"
)

// TokenPrefix starts every token it issues, so that secret scans in tests can look
// for simulator tokens in output.
const TokenPrefix = "simtok-"

const (
	// APIKeyGrant is the grant_type that trades an API key for a token.
	APIKeyGrant = "urn:ibm:params:oauth:grant-type:apikey"
	// CodeUnknownKey is IAM's code for an API key it does not know.
	CodeUnknownKey = "BXNIM0415E"
	// CodeBadRequest is a guess (UNVERIFIED) for other malformed token requests;
	// clients should act on the status, not on this code.
	CodeBadRequest = "BXNIM0109E"
	maxForm        = 64 << 10
)

// Service issues and resolves tokens. It is safe for concurrent use and takes no lock
// of its caller's, so a simulator may call it while holding its own.
type Service struct {
	now      func() time.Time
	lifetime time.Duration

	mu      sync.Mutex
	keys    map[string]bool
	tokens  map[string]token
	refresh map[string]string // refresh token -> API key
}

type token struct {
	apiKey  string
	expires time.Time
}

// New is a service whose access tokens live for lifetime (one hour, like IAM, when
// zero) on the clock now (time.Now when nil).
func New(now func() time.Time, lifetime time.Duration) *Service {
	if now == nil {
		now = time.Now
	}
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	return &Service{now: now, lifetime: lifetime, keys: map[string]bool{}, tokens: map[string]token{}, refresh: map[string]string{}}
}

// AddKey makes IAM know apiKey (revoking a role leaves it known, as in IBM Cloud).
func (s *Service) AddKey(apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[apiKey] = true
}

// RemoveKey forgets apiKey: it gets no new tokens, nor does a refresh token issued for
// it. Access tokens already issued stay valid until they expire; the simulators refuse
// them by their roles, which went with the key.
func (s *Service) RemoveKey(apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, apiKey)
}

// Resolve is the API key a valid, unexpired access token was issued for.
func (s *Service) Resolve(access string) (apiKey string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[access]
	if !ok || !s.now().Before(t.expires) {
		return "", false
	}
	return t.apiKey, true
}

// ExpireAll makes every access token issued so far expired, to test refresh.
func (s *Service) ExpireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for k, t := range s.tokens {
		t.expires = past
		s.tokens[k] = t
	}
}

// ErrorBody is IAM's error shape, which differs from the services'.
func ErrorBody(code, message string) map[string]any {
	return map[string]any{
		"errorCode":    code,
		"errorMessage": message,
		"context":      map[string]string{"requestId": randomHex(16)},
	}
}

// Handle answers POST /identity/token: the status and the JSON body to send.
func (s *Service) Handle(r *http.Request) (status int, body map[string]any) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return http.StatusBadRequest, ErrorBody(CodeBadRequest, "Content-Type must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, ErrorBody(CodeBadRequest, "The request body could not be parsed.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var apiKey string
	switch r.PostForm.Get("grant_type") {
	case APIKeyGrant:
		apiKey = r.PostForm.Get("apikey")
		if apiKey == "" || !s.keys[apiKey] {
			return http.StatusBadRequest, ErrorBody(CodeUnknownKey, "Provided API key could not be found.")
		}
	case "refresh_token":
		k, ok := s.refresh[r.PostForm.Get("refresh_token")]
		if !ok || !s.keys[k] {
			return http.StatusBadRequest, ErrorBody(CodeBadRequest, "Provided refresh token is invalid.")
		}
		apiKey = k
	default:
		return http.StatusBadRequest, ErrorBody(CodeBadRequest, "Unsupported grant_type.")
	}
	expires := s.now().Add(s.lifetime)
	access, refresh := TokenPrefix+randomHex(24), TokenPrefix+randomHex(24)
	s.tokens[access] = token{apiKey: apiKey, expires: expires}
	s.refresh[refresh] = apiKey
	return http.StatusOK, map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"token_type":    "Bearer",
		"expires_in":    int64(s.lifetime / time.Second),
		"expiration":    expires.Unix(),
		"scope":         "ibm openid",
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
