// Package ownership proves, against the Certificate Manager simulator and through the
// real action zip (test/harness) and the terminal command (cli.Main), that the marker at
// the end of a description is trusted only with its proof: a principal with only the
// Writer role on a backup instance, who can edit names and descriptions there but can
// neither import nor delete, cannot make certbackup delete, reimport over or rename a
// certificate that certbackup did not create, whatever it writes. The backup still gets
// certbackup's own proven copy, and the certificates certbackup cannot prove are
// reported as conflicts.
//
// It also proves the other half of the rule: copies are kept, not duplicated, across an
// upgrade from markers without proofs and across a rotation of the API key (with and
// without ownership_key), and descriptions are kept as the service counts them.
//
// Every Writer edit goes through the simulator's public HTTP API with a key that has
// the Writer role only (harness.UpdateAs); every effect is asserted on what the
// simulator holds and on its request log, never on log wording.
package ownership

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// TestMain runs the package, then scans everything the action printed or answered and
// everything the command printed (harness.Collected) for the API keys, certificate keys
// and tokens the tests registered, and for any PEM private key, JWT or bearer token.
//
// The cases spend most of their time waiting on HTTP round trips and on the exec
// processes: unless -parallel is given, they run 6 at a time instead of GOMAXPROCS.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "6")
	}
	code := m.Run()
	probe := "a eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YW5jZV9jcm4iOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl b"
	if len(harness.FindSecrets(probe, nil, nil, nil)) == 0 {
		fmt.Fprintln(os.Stderr, "FAIL: harness.FindSecrets missed a planted JWT; the scan proves nothing")
		os.Exit(1)
	}
	if leaks := harness.Scan(harness.Collected()); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d secret(s) in the action's or the command's output:\n", len(leaks))
		for _, l := range leaks {
			fmt.Fprintf(os.Stderr, "  %s: %s\n", l.Kind, l.Excerpt)
		}
		code = 1
	}
	os.Exit(code)
}
