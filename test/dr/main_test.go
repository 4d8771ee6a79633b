package dr

import (
	"fmt"
	"os"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// TestMain runs the package, then scans everything the command printed for the
// operator's API key, the certificates' private keys, and any PEM private key, JWT or
// bearer token.
func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := harness.Scan(harness.Collected()); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d secret(s) in the command's output:\n", len(leaks))
		for _, l := range leaks {
			fmt.Fprintf(os.Stderr, "  %s: %s\n", l.Kind, l.Excerpt)
		}
		code = 1
	}
	os.Exit(code)
}
