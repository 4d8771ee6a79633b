// Package secrets checks that the action never lets a secret out: no PEM private key,
// API key, bearer token or notification JWT in any log line, result or error of its
// activations, whatever they went through.
package secrets

import (
	"fmt"
	"os"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// TestMain runs the package, then scans everything the action printed or answered in
// any test of it (harness.Collected: every Stack's logs and web responses, and what the
// tests collected themselves) for any PEM private key, JWT or bearer token, and for the
// API keys, tokens and certificate keys the tests registered. A leak fails the binary
// even when every test passed.
func TestMain(m *testing.M) {
	code := m.Run()
	probe := "a eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YW5jZV9jcm4iOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl b"
	leaks := harness.Scan(harness.Collected())
	if len(harness.FindSecrets(probe, nil, nil, nil)) == 0 {
		leaks = append(leaks, harness.Leak{Kind: "scanner", Excerpt: "harness.FindSecrets missed a planted JWT"})
	}
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d secret(s) in the action's logs or results:\n", len(leaks))
		for _, l := range leaks {
			fmt.Fprintf(os.Stderr, "  %s: %s\n", l.Kind, l.Excerpt)
		}
		code = 1
	}
	os.Exit(code)
}
