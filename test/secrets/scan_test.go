package secrets

import (
	"slices"
	"strings"
	"sync"

	"github.com/certbackup/certbackup/test/harness"
)

// The secrets that tests register, for TestMain's scan of everything collected.
var registry = struct {
	sync.Mutex
	apiKeys, keyPEMs, tokens map[string]bool
}{apiKeys: map[string]bool{}, keyPEMs: map[string]bool{}, tokens: map[string]bool{}}

func registerSecrets(apiKeys, keyPEMs, tokens []string) {
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

// registerStack registers the stack's API key, the private key of every certificate it
// holds now in any instance and every notification token it signed.
func registerStack(s *harness.Stack) {
	apiKeys, keyPEMs, tokens := stackSecrets(s)
	registerSecrets(apiKeys, keyPEMs, tokens)
}

func stackSecrets(s *harness.Stack) (apiKeys, keyPEMs, tokens []string) {
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

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// scan runs harness.FindSecrets over texts with every registered secret. The generic
// checks and the API keys look at the whole text; a notification token or a line of a
// key's base64 body can only appear inside a run of their alphabets, so those (thousands
// in the soak) are looked for in the distinct runs only, which keeps the scan fast.
func scan(texts []string) []harness.Leak {
	registry.Lock()
	apiKeys, keyPEMs, tokens := keys(registry.apiKeys), keys(registry.keyPEMs), keys(registry.tokens)
	registry.Unlock()
	text := strings.Join(texts, "\n")
	leaks := harness.FindSecrets(text, apiKeys, nil, nil)
	only := func(kind string, ls []harness.Leak) {
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
	only("token", harness.FindSecrets(runs(text, jwtAlphabet, 40), nil, nil, tokens))
	only("private key body", harness.FindSecrets(runs(text, b64Alphabet, 40), nil, keyPEMs, nil))
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
