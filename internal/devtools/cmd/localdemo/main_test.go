package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"extra"}, {""}, {"--pool", "0"}, {"sm", "extra"}, {"sm", "--nope"},
		{"sm", "--serve"}, {"--serve", "sm"}, {"codeengine", "--serve"}, {"sm", "codeengine"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), args, &stdout, &stderr), "%v", args)
		assert.Empty(t, stdout.String(), "%v", args)
	}
}

func TestFailureExits1WithAClearMessage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--zip", filepath.Join(t.TempDir(), "missing.zip"), "--manifest", "../../../../manifest.yaml"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "localdemo: FAILED: the action zip:")
	assert.Contains(t, stderr.String(), "./deploy.sh build")
}

func TestTheDemoIsNamedBeforeOrAfterTheFlags(t *testing.T) {
	for _, args := range [][]string{
		{"sm", "--exec", "missing/exec"},
		{"--exec", "missing/exec", "sm"},
		{"--exec", "missing/exec", "sm", "--verbose"},
		{"codeengine", "--exec", "missing/exec"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, stderr.String(), "localdemo: FAILED: the binary:", "%v", args)
		assert.Contains(t, stderr.String(), "./deploy.sh build", "%v", args)
	}
}
