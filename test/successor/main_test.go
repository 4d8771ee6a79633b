// Package successor proves the successor paths of certbackup end to end: a Certificate
// Manager or a Secrets Manager source copied into Secrets Manager backups (the pairs of
// the public contract), through the terminal command (cli.Main, as `exec reconcile`
// and `exec verify` run it) and through the runtime-neutral core (app.Handle for /events
// and /notify, app.Reconcile), against the two simulators behind one IAM
// (harness.Cloud).
//
// What it shows, one file each:
//
//   - pairs: reconcile, verify, dry run, prune for every pair, incrementally (unchanged
//     certificates cost listings only); the ownership rule against a principal with
//     Writer on a backup; the failover/failback cycle with Secrets Manager instances;
//   - types: which source secrets are copied (imported_cert, public_cert bundled or not,
//     private_cert with its issuing CA and CA chain, when Active) and which are skipped
//     with a reason; payloads read only for certificates that changed;
//   - locked: a locked copy (412) is reported `locked`, not retried, and stops nothing
//     else;
//   - faults: bad configuration refused before any write, naming the parameter or the
//     instance and the role; 429, 5xx, timeouts and 412 on one certificate or one
//     backup never stop the others;
//   - soak: 1000 certificates (200 with -short) under 20 % faults on both pairs: nothing
//     lost, nothing duplicated.
//
// TestMain then scans everything the product printed or answered for the API keys, the
// webhook secret, the ownership key, the IAM tokens and every private key involved.
package successor

import (
	"flag"
	"os"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// Most tests spend their time waiting (retries, Retry-After, injected delays), not
// computing: unless -parallel is given, they run 8 at a time instead of GOMAXPROCS.
func TestMain(m *testing.M) {
	flag.Parse()
	harness.DefaultParallel(8)
	code := m.Run()
	os.Exit(harness.ExitCode(code, harness.ScanSecrets(harness.Collected()), "the product's logs, answers or reports"))
}
