// Package buildzip writes the precompiled OpenWhisk Go action archive reproducibly.
//
// The Go runtime's proxy treats a zip whose root holds an executable `exec` as
// precompiled and, because every Go image sets OW_EXECUTION_ENV, refuses to
// start it unless the root also holds `exec.env` whose content equals that
// variable (docs/services/openwhisk.md §2.2). The archive written
// here therefore has exactly two root entries, `exec` (0755) and `exec.env`
// (0644, no trailing newline), in that order, deflated, with a fixed
// modification time, so that the same inputs always give the same bytes.
package buildzip

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/build/manifest"
)

const (
	// ExecName is the zip entry the proxy starts.
	ExecName = "exec"
	// EnvName is the zip entry the proxy compares with OW_EXECUTION_ENV.
	EnvName = "exec.env"
	// DefaultKind is the runtime assumed when an action in the manifest names none.
	DefaultKind = "go:1.21"
)

// ModTime is the modification time of every entry (the earliest MS-DOS time).
var ModTime = time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC)

var kindRE = regexp.MustCompile(`^go:1\.(0|[1-9][0-9]*)$`)

// ExecutionEnvForKind maps an OpenWhisk Go runtime kind to the value the
// runtime image carries in OW_EXECUTION_ENV: "go:1.21" → "openwhisk/action-golang-v1.21".
// Anything that is not exactly "go:1.N" is an error.
func ExecutionEnvForKind(kind string) (string, error) {
	m := kindRE.FindStringSubmatch(kind)
	if m == nil {
		return "", fmt.Errorf("runtime kind %q is not a Go kind of the form go:1.N", kind)
	}
	return "openwhisk/action-golang-v1." + m[1], nil
}

// KindFromManifest returns the `runtime:` of the action named action in a
// wskdeploy manifest (any package), or DefaultKind when the action has none.
// The manifest is read by internal/build/manifest, a line-based reader for our own
// manifest, not a YAML parser.
func KindFromManifest(manifestYAML []byte, action string) (string, error) {
	m, err := manifest.Parse(manifestYAML)
	if err != nil {
		return "", err
	}
	return kindOf(m, action)
}

func kindOf(m *manifest.Manifest, action string) (string, error) {
	a, ok := m.Action(action)
	if !ok {
		return "", fmt.Errorf("action %q not found under any actions: block of the manifest", action)
	}
	if a.RuntimeLine == 0 {
		return DefaultKind, nil
	}
	if a.Runtime == "" {
		return "", fmt.Errorf("line %d: runtime of action %q has no value", a.RuntimeLine, action)
	}
	return a.Runtime, nil
}

// KindForActions resolves the runtime of each named action and requires them
// all to agree, because they share one zip and so one exec.env.
func KindForActions(manifestYAML []byte, actions []string) (string, error) {
	if len(actions) == 0 {
		return "", errors.New("no action named")
	}
	m, err := manifest.Parse(manifestYAML)
	if err != nil {
		return "", err
	}
	var kind string
	for i, a := range actions {
		k, err := kindOf(m, a)
		if err != nil {
			return "", err
		}
		if i == 0 {
			kind = k
		} else if k != kind {
			return "", fmt.Errorf("actions %q (%s) and %q (%s) share one zip but name different runtimes", actions[0], kind, a, k)
		}
	}
	return kind, nil
}

// CheckExec verifies that data is a Linux amd64 ELF executable, the only kind
// the Go runtime images can start (the proxy checks only the ELF magic, so a
// binary for another architecture would pass its check and then fail to run).
func CheckExec(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("exec is not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("exec is %v/%v, want ELFCLASS64/EM_X86_64 (build with GOOS=linux GOARCH=amd64)", f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("exec is an ELF %v, not an executable", f.Type)
	}
	return nil
}

// Write writes the action archive to w: `exec` with content execBytes, then
// `exec.env` with content execEnv. The result depends only on its inputs (and
// on the Go version's deflate implementation).
func Write(w io.Writer, execBytes []byte, execEnv string) error {
	if execEnv == "" || strings.ContainsAny(execEnv, " \t\r\n") {
		return fmt.Errorf("execution env %q must be non-empty and contain no whitespace", execEnv)
	}
	if len(execBytes) == 0 {
		return errors.New("exec is empty")
	}
	zw := zip.NewWriter(w)
	entries := []struct {
		name string
		mode os.FileMode
		data []byte
	}{
		{ExecName, 0o755, execBytes},
		{EnvName, 0o644, []byte(execEnv)},
	}
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: ModTime}
		h.SetMode(e.mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("zip %s: %w", e.name, err)
		}
		if _, err := fw.Write(e.data); err != nil {
			return fmt.Errorf("zip %s: %w", e.name, err)
		}
	}
	return zw.Close()
}

// BuildFile reads the executable at execPath, checks it, and atomically writes
// the archive to outPath. It returns the archive size in bytes.
func BuildFile(execPath, outPath, execEnv string) (int64, error) {
	data, err := os.ReadFile(execPath)
	if err != nil {
		return 0, err
	}
	if err := CheckExec(data); err != nil {
		return 0, fmt.Errorf("%s: %w", execPath, err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, data, execEnv); err != nil {
		return 0, err
	}
	dir := filepath.Dir(outPath)
	tmp, err := os.CreateTemp(dir, ".action-*.zip")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return 0, err
	}
	return int64(buf.Len()), nil
}
