// Package codeengine drives the real compiled binary as Code Engine runs it: `exec
// serve` (the application behind Event Notifications' webhook) and `exec` with CE_JOB
// set (the reconcile job), configured by environment variables alone, against the
// Secrets Manager simulator on loopback (harness.Cloud).
//
// It is the hostile and fault suite of the successor path: wrong or missing bearers and
// foreign envelopes or secrets read nothing; bodies over the limit, malformed JSON and
// wrong types are refused with their status; batches of 100 secrets with duplicates
// copy each secret once; unknown events are acknowledged; slow clients hold no slot;
// SIGTERM in the middle of a batch exits within 10 s and loses and duplicates nothing;
// a backup that is down makes the answer a 5xx while the others are copied; a batch
// that cannot finish within Event Notifications' time answers 503 with left_for_retry
// and the job's reconcile repairs everything, with its exit codes 0, 1 and 2.
//
// TestMain builds the binary once from ./function (static, as the Dockerfile builds
// it), and after the tests scans everything any process printed and every answer for
// the API keys, the webhook secret, IAM tokens and every private key involved.
package codeengine

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certbackup/certbackup/test/harness"
)

// bin is the binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	harness.DefaultParallel(6) // the tests wait (timeouts, budgets, signals) far more than they compute
	dir, err := os.MkdirTemp("", "certbackup-ce-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "exec")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./function")
	build.Dir = harness.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./function: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)

	os.Exit(harness.ExitCode(code, harness.ScanSecrets(withoutKnownPhrases(harness.Collected())), "the binary's output or answers"))
}

// withoutKnownPhrases takes out the one phrase of the product that the scan's generic
// bearer pattern mistakes for a credential: the 401 answer says the Authorization
// header "is not a Bearer credential". The webhook secret itself is registered and
// looked for verbatim, so nothing that could leak it is hidden.
func withoutKnownPhrases(texts []string) []string {
	out := make([]string, len(texts))
	for i, t := range texts {
		out[i] = strings.ReplaceAll(t, "not a Bearer credential", "not a Bearer-credential")
	}
	return out
}
