// Package faults proves, through the real action zip driven over ActionLoop against the
// Certificate Manager simulator, that an outage of the API loses nothing and leaks
// nothing: every API failure class during a notification (answered before the
// activation's deadline, with the right status, the backup holding the whole
// certificate or nothing), a soak of renewals and reimports delivered with duplicates
// and out of order while the backups fail a fifth of their calls, and activations
// racing on separate exec processes.
package faults

import (
	"flag"
	"os"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// TestMain runs the package, then scans everything the action printed or answered in
// any test of it (harness.Collected: every Stack's logs and web responses, and every
// reconcile report) for secrets: any PEM private key, JWT or bearer token (generic
// checks), and the API keys, notification tokens and certificate keys the tests
// registered. A leak fails the binary even when every test passed.
//
// The fault cases spend their time waiting (deadlines, Retry-After, backoff), not
// computing: unless -parallel is given, they run 8 at a time instead of GOMAXPROCS.
func TestMain(m *testing.M) {
	flag.Parse()
	harness.DefaultParallel(8)
	code := m.Run()
	os.Exit(harness.ExitCode(code, harness.ScanSecrets(harness.Collected()), "the action's logs or results"))
}
