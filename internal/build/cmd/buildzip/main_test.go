package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("needs a linux/amd64 ELF at hand (have %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.yaml")
	require.NoError(t, os.WriteFile(manifest, []byte("actions:\n  notify:\n    runtime: go:1.22\n  other:\n    runtime: go:1.23\n"), 0o644))
	out := filepath.Join(dir, "action.zip")

	var stdout, stderr bytes.Buffer
	code := run([]string{"-exec", self, "-out", out, "-manifest", manifest}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), out+": ")
	assert.Contains(t, stdout.String(), "exec.env openwhisk/action-golang-v1.22")
	assert.Equal(t, "openwhisk/action-golang-v1.22", execEnv(t, out))

	stdout.Reset()
	code = run([]string{"-exec", self, "-out", out, "-manifest", "/nonexistent", "-kind", "go:1.24"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Equal(t, "openwhisk/action-golang-v1.24", execEnv(t, out), "-kind overrides the manifest, which is then not read")

	for _, args := range [][]string{
		{"-exec", self, "-out", out, "-manifest", manifest, "-action", "notify,other"}, // runtimes differ
		{"-exec", self, "-out", out, "-kind", "go"},
		{"-exec", filepath.Join(dir, "missing"), "-out", out, "-kind", "go:1.21"},
		{"-exec", manifest, "-out", out, "-kind", "go:1.21"}, // not an ELF
	} {
		stderr.Reset()
		assert.Equal(t, 1, run(args, io.Discard, &stderr), "%v", args)
		assert.Contains(t, stderr.String(), "buildzip: ")
	}
	assert.Equal(t, 2, run([]string{"-kind", "go:1.21", "extra"}, io.Discard, io.Discard))
	assert.Equal(t, 2, run([]string{"-nosuchflag"}, io.Discard, io.Discard))
}

func execEnv(t *testing.T, path string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	require.Len(t, zr.File, 2)
	rc, err := zr.File[1].Open()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}
