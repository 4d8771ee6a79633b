// Package buildzip writes the precompiled OpenWhisk Go action archive reproducibly.
//
// The Go runtime's proxy treats a zip whose root holds an executable `exec` as
// precompiled and, because every Go image sets OW_EXECUTION_ENV, refuses to
// start it unless the root also holds `exec.env` whose content equals that
// variable (see the OpenWhisk Go runtime reference, §1.3). The archive written
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

// yline is one significant line of a YAML block mapping.
type yline struct {
	no     int    // 1-based line number
	indent int    // leading spaces
	key    string // mapping key, unquoted; "" for a non-mapping line (list item, bare scalar)
	value  string // inline value, unquoted, comment stripped; "" when the value is a nested block
}

// scanLines splits a YAML document into its significant lines. It understands
// just enough of YAML for our own manifest: block mappings, comments and
// quoted scalars. Tabs in indentation are rejected, as YAML does.
func scanLines(doc []byte) ([]yline, error) {
	var out []yline
	for i, raw := range strings.Split(string(doc), "\n") {
		raw = strings.TrimRight(raw, "\r")
		body := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(body)
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		body = strings.TrimSpace(body)
		if body == "" || strings.HasPrefix(body, "#") || body == "---" {
			continue
		}
		l := yline{no: i + 1, indent: indent}
		if key, rest, ok := splitKey(body); ok {
			l.key = key
			l.value = scalar(rest)
		}
		out = append(out, l)
	}
	return out, nil
}

// splitKey splits `key: rest` (key possibly quoted). It reports false for lines
// that are not mapping entries.
func splitKey(body string) (key, rest string, ok bool) {
	if strings.HasPrefix(body, "- ") || body == "-" {
		return "", "", false
	}
	if q := body[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(body[1:], q)
		if end < 0 {
			return "", "", false
		}
		key, rest = body[1:end+1], body[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return key, strings.TrimSpace(rest[1:]), true
	}
	for i := 0; i < len(body); i++ {
		if body[i] == ':' && (i+1 == len(body) || body[i+1] == ' ') {
			return body[:i], strings.TrimSpace(body[i+1:]), true
		}
	}
	return "", "", false
}

// scalar unquotes an inline value and strips a trailing comment.
func scalar(v string) string {
	if v == "" {
		return ""
	}
	if q := v[0]; q == '"' || q == '\'' {
		if end := strings.IndexByte(v[1:], q); end >= 0 {
			return v[1 : end+1]
		}
		return v
	}
	if strings.HasPrefix(v, "#") {
		return ""
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// KindFromManifest returns the `runtime:` of the action named action in a
// wskdeploy manifest (any package), or DefaultKind when the action has none.
// It is a line-based reader for our own manifest, not a YAML parser.
func KindFromManifest(manifestYAML []byte, action string) (string, error) {
	lines, err := scanLines(manifestYAML)
	if err != nil {
		return "", err
	}
	for i, l := range lines {
		if l.key != "actions" || l.value != "" {
			continue
		}
		childIndent := -1
		for j := i + 1; j < len(lines) && lines[j].indent > l.indent; j++ {
			c := lines[j]
			if childIndent < 0 {
				childIndent = c.indent
			}
			if c.indent == childIndent && c.key == action {
				return runtimeOf(lines[j+1:], c.indent, action)
			}
		}
	}
	return "", fmt.Errorf("action %q not found under any actions: block of the manifest", action)
}

func runtimeOf(rest []yline, actionIndent int, action string) (string, error) {
	propIndent := -1
	for _, l := range rest {
		if l.indent <= actionIndent {
			break
		}
		if propIndent < 0 {
			propIndent = l.indent
		}
		if l.indent == propIndent && l.key == "runtime" {
			if l.value == "" {
				return "", fmt.Errorf("line %d: runtime of action %q has no value", l.no, action)
			}
			return l.value, nil
		}
	}
	return DefaultKind, nil
}

// KindForActions resolves the runtime of each named action and requires them
// all to agree, because they share one zip and so one exec.env.
func KindForActions(manifestYAML []byte, actions []string) (string, error) {
	if len(actions) == 0 {
		return "", errors.New("no action named")
	}
	var kind string
	for i, a := range actions {
		k, err := KindFromManifest(manifestYAML, a)
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
