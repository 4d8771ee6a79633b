package harness

import (
	"regexp"
	"strings"
)

var (
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)
	bearerRE = regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/-]{8,}`)
)

// Leak is one secret found in output.
type Leak struct {
	Kind    string
	Excerpt string // a short, masked excerpt, safe to print
}

// FindSecrets looks for what must never appear in logs, results or errors: PEM private
// keys (any block type, and the base64 body of the given keys), the given API keys and
// tokens, any JWT and any bearer token.
func FindSecrets(text string, apiKeys, keyPEMs, tokens []string) []Leak {
	var leaks []Leak
	add := func(kind, s string) {
		if len(s) > 12 {
			s = s[:6] + "…" + s[len(s)-3:]
		}
		leaks = append(leaks, Leak{Kind: kind, Excerpt: s})
	}
	if strings.Contains(text, "PRIVATE KEY-----") {
		add("pem private key", "PRIVATE KEY-----")
	}
	for _, k := range apiKeys {
		if k != "" && strings.Contains(text, k) {
			add("api key", k)
		}
	}
	for _, p := range keyPEMs {
		for _, line := range strings.Split(p, "\n") {
			if len(line) >= 40 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
				add("private key body", line)
				break
			}
		}
	}
	for _, t := range tokens {
		if t != "" && strings.Contains(text, t) {
			add("token", t)
		}
	}
	if m := jwtRE.FindString(text); m != "" {
		add("jwt", m)
	}
	if m := bearerRE.FindString(text); m != "" {
		add("bearer token", m)
	}
	return leaks
}
