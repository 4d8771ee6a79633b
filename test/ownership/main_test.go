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
	harness.DefaultParallel(6)
	code := m.Run()
	os.Exit(harness.ExitCode(code, harness.ScanSecrets(harness.Collected()), "the action's or the command's output"))
}
