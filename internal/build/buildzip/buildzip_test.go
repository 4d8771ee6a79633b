package buildzip

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExecutionEnvForKind(t *testing.T) {
	for kind, want := range map[string]string{
		"go:1.21": "openwhisk/action-golang-v1.21",
		"go:1.24": "openwhisk/action-golang-v1.24",
		"go:1.9":  "openwhisk/action-golang-v1.9",
	} {
		got, err := ExecutionEnvForKind(kind)
		require.NoError(t, err, kind)
		assert.Equal(t, want, got, kind)
	}
	for _, kind := range []string{"", "go", "go:1", "go:1.", "go:1.x", "go:2.1", "go:1.21 ", " go:1.21",
		"go:1.021", "go:default", "nodejs:20", "golang:1.21", "go:1.21\n", "go:1.21.3", "blackbox"} {
		_, err := ExecutionEnvForKind(kind)
		assert.Error(t, err, "%q", kind)
	}
}

// How the manifest is read (comments, quotes, CRLF, tabs, which blocks count)
// is tested in internal/build/manifest; these tests are about what buildzip makes of it.
const manifestFixture = `project:
  packages:
    p:
      actions:
        notify:
          limits:
            runtime: go:1.99
          runtime: go:1.24   # trailing comment
        "quoted":
          runtime: 'go:1.22'
        bare:
          function: build/action.zip
          inputs:
            mode: bare
            payload:
              type: json
        blank:
          runtime:
        reconcile:
          runtime: "go:1.24"
`

func TestKindFromManifest(t *testing.T) {
	doc := []byte(manifestFixture)
	for action, want := range map[string]string{
		"notify":    "go:1.24",
		"quoted":    "go:1.22",
		"bare":      DefaultKind, // no runtime; a nested input does not matter here
		"reconcile": "go:1.24",
	} {
		got, err := KindFromManifest(doc, action)
		require.NoError(t, err, action)
		assert.Equal(t, want, got, action)
	}
	_, err := KindFromManifest(doc, "missing")
	assert.EqualError(t, err, `action "missing" not found under any actions: block of the manifest`)
	_, err = KindFromManifest(doc, "mode") // an input, not an action
	assert.Error(t, err)
	_, err = KindFromManifest(doc, "blank")
	assert.EqualError(t, err, `line 18: runtime of action "blank" has no value`)
	_, err = KindFromManifest([]byte("actions:\n\ta:\n"), "a")
	assert.ErrorContains(t, err, "tab")
}

func TestKindForActions(t *testing.T) {
	doc := []byte(manifestFixture)
	k, err := KindForActions(doc, []string{"notify", "reconcile"})
	require.NoError(t, err)
	assert.Equal(t, "go:1.24", k)
	_, err = KindForActions(doc, []string{"notify", "quoted"})
	assert.ErrorContains(t, err, "different runtimes")
	_, err = KindForActions(doc, []string{"notify", "missing"})
	assert.ErrorContains(t, err, `"missing" not found`)
	_, err = KindForActions(doc, nil)
	assert.Error(t, err)
}

// TestKindFromRepoManifest pins the shipped manifest's runtime: the Go runtime
// IBM Cloud Functions offered last (docs/services/openwhisk.md §2.1).
func TestKindFromRepoManifest(t *testing.T) {
	doc, err := os.ReadFile("../../../manifest.yaml")
	require.NoError(t, err)
	k, err := KindForActions(doc, []string{"notify", "reconcile"})
	require.NoError(t, err)
	assert.Equal(t, "go:1.21", k)
}

func readZip(t *testing.T, data []byte) *zip.Reader {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return zr
}

func entryBytes(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func TestWriteLayoutAndReproducible(t *testing.T) {
	exe := bytes.Repeat([]byte("\x7fELF not really, but Write does not check "), 1000)
	var a, b bytes.Buffer
	require.NoError(t, Write(&a, exe, "openwhisk/action-golang-v1.21"))
	require.NoError(t, Write(&b, exe, "openwhisk/action-golang-v1.21"))
	assert.Equal(t, a.Bytes(), b.Bytes(), "two archives of the same inputs must be byte-identical")
	assert.Equal(t, []byte("PK\x03\x04"), a.Bytes()[:4], "the proxy detects zips by this magic")

	zr := readZip(t, a.Bytes())
	require.Len(t, zr.File, 2)
	assert.Equal(t, ExecName, zr.File[0].Name)
	assert.Equal(t, EnvName, zr.File[1].Name)
	assert.Equal(t, os.FileMode(0o755), zr.File[0].Mode())
	assert.Equal(t, os.FileMode(0o644), zr.File[1].Mode())
	for _, f := range zr.File {
		assert.Equal(t, zip.Deflate, f.Method, f.Name)
		assert.True(t, f.Modified.Equal(ModTime), "%s modified %v", f.Name, f.Modified)
	}
	assert.Equal(t, exe, entryBytes(t, zr.File[0]))
	assert.Equal(t, "openwhisk/action-golang-v1.21", string(entryBytes(t, zr.File[1])))

	var c bytes.Buffer
	require.NoError(t, Write(&c, exe, "openwhisk/action-golang-v1.24"))
	assert.NotEqual(t, a.Bytes(), c.Bytes())
}

func TestWriteRejects(t *testing.T) {
	var buf bytes.Buffer
	assert.Error(t, Write(&buf, []byte("x"), ""))
	assert.Error(t, Write(&buf, []byte("x"), "openwhisk/action-golang-v1.21\n"))
	assert.Error(t, Write(&buf, nil, "openwhisk/action-golang-v1.21"))
}

// ownExecutable returns this test binary when it is a linux/amd64 ELF.
func ownExecutable(t *testing.T) []byte {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("needs a linux/amd64 host to have a linux/amd64 ELF at hand (have %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	p, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	return data
}

func TestCheckExec(t *testing.T) {
	assert.ErrorContains(t, CheckExec([]byte("#!/bin/sh\necho hi\n")), "not an ELF")
	assert.Error(t, CheckExec(nil))

	data := ownExecutable(t)
	require.NoError(t, CheckExec(data))

	arm := bytes.Clone(data)
	binary.LittleEndian.PutUint16(arm[18:], uint16(0xb7)) // e_machine = EM_AARCH64
	assert.ErrorContains(t, CheckExec(arm), "EM_X86_64")
}

func TestBuildFile(t *testing.T) {
	data := ownExecutable(t)
	dir := t.TempDir()
	execPath := filepath.Join(dir, "exec")
	require.NoError(t, os.WriteFile(execPath, data, 0o755))
	out := filepath.Join(dir, "action.zip")

	size, err := BuildFile(execPath, out, "openwhisk/action-golang-v1.21")
	require.NoError(t, err)
	first, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.EqualValues(t, len(first), size)
	zr := readZip(t, first)
	require.Len(t, zr.File, 2)
	assert.Equal(t, data, entryBytes(t, zr.File[0]))

	_, err = BuildFile(execPath, out, "openwhisk/action-golang-v1.21")
	require.NoError(t, err)
	second, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, first, second)

	left, err := filepath.Glob(filepath.Join(dir, ".action-*"))
	require.NoError(t, err)
	assert.Empty(t, left, "temporary files must not be left behind")

	script := filepath.Join(dir, "script")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755))
	_, err = BuildFile(script, filepath.Join(dir, "bad.zip"), "openwhisk/action-golang-v1.21")
	assert.Error(t, err)
	_, err = os.Stat(filepath.Join(dir, "bad.zip"))
	assert.True(t, os.IsNotExist(err), "no archive is written for a rejected exec")
}
