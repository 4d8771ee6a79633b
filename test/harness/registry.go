package harness

import (
	"slices"
	"strings"
	"sync"
)

// The secrets that tests register, for a TestMain that scans everything collected.
var registry = struct {
	sync.Mutex
	apiKeys, keyPEMs, tokens map[string]bool
}{apiKeys: map[string]bool{}, keyPEMs: map[string]bool{}, tokens: map[string]bool{}}

// RegisterSecrets adds secrets that Scan must never find.
func RegisterSecrets(apiKeys, keyPEMs, tokens []string) {
	registry.Lock()
	defer registry.Unlock()
	for _, k := range apiKeys {
		registry.apiKeys[k] = true
	}
	for _, k := range keyPEMs {
		registry.keyPEMs[k] = true
	}
	for _, k := range tokens {
		registry.tokens[k] = true
	}
}

// RegisterStack registers the stack's API key, the private key of every certificate it
// holds now in any instance and every notification token it signed.
func RegisterStack(s *Stack) {
	apiKeys, keyPEMs, tokens := StackSecrets(s)
	RegisterSecrets(apiKeys, keyPEMs, tokens)
}

// StackSecrets lists a stack's API key, private keys and signed tokens.
func StackSecrets(s *Stack) (apiKeys, keyPEMs, tokens []string) {
	for _, inst := range append([]string{s.Source}, s.Backups...) {
		for _, c := range s.Sim.Snapshot(inst) {
			if c.Data.PrivKey != "" {
				keyPEMs = append(keyPEMs, c.Data.PrivKey)
			}
		}
	}
	for _, st := range s.Sim.SentTokens() {
		tokens = append(tokens, st.Token)
	}
	return []string{s.APIKey}, keyPEMs, tokens
}

// SortedKeys returns a set's members in order.
func SortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// scan runs FindSecrets over texts with every registered secret. The generic
// checks and the API keys look at the whole text; a notification token or a line of a
// key's base64 body can only appear inside a run of their alphabets, so those (thousands
// in the soak) are looked for in the distinct runs only, which keeps the scan fast.
func Scan(texts []string) []Leak {
	registry.Lock()
	apiKeys, keyPEMs, tokens := SortedKeys(registry.apiKeys), SortedKeys(registry.keyPEMs), SortedKeys(registry.tokens)
	registry.Unlock()
	text := strings.Join(texts, "\n")
	leaks := FindSecrets(text, apiKeys, nil, nil)
	only := func(kind string, ls []Leak) {
		for _, l := range ls {
			if l.Kind == kind {
				leaks = append(leaks, l)
			}
		}
	}
	jwtAlphabet := func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
	}
	b64Alphabet := func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '='
	}
	only("token", FindSecrets(runs(text, jwtAlphabet, 40), nil, nil, tokens))
	only("private key body", FindSecrets(runs(text, b64Alphabet, 40), nil, keyPEMs, nil))
	return leaks
}

// runs returns the distinct maximal runs of characters in the alphabet, at least min
// long, one per line.
func runs(text string, in func(rune) bool, min int) string {
	seen := map[string]bool{}
	var b strings.Builder
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return !in(r) }) {
		if len(f) >= min && !seen[f] {
			seen[f] = true
			b.WriteString(f)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
