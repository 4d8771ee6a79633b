package deploy_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestShellcheck lints the shell scripts this package owns or exercises.
// .ci/run installs shellcheck, so in CI this never skips.
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck; .ci/run installs it): deploy.sh was not linted")
	}
	scripts := []string{"deploy.sh", ".ci/run"}
	for _, s := range scripts {
		cmd := exec.Command(sc, "--shell=bash", "--severity=style", filepath.Join(fixture.root, s))
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "shellcheck %s:\n%s", s, out)
	}
}
