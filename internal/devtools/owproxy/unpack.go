package owproxy

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Errors returned by Unpack. The runtime proxy reports all of them to the
// caller of /init as 502 "Cannot start action. Check logs for details." (or
// "The action failed to generate or locate a binary."), with the detail on
// stderr; here the detail is in the error.
var (
	// ErrExecEnvMissing: the zip root has no exec.env. The proxy checks it
	// before it looks at exec, so a zip with exec in a subdirectory and no
	// exec.env fails with this error, as on the platform.
	ErrExecEnvMissing = errors.New("cannot start action: exec.env is missing")
	// ErrExecEnvMismatch: exec.env does not name the runtime image.
	ErrExecEnvMismatch = errors.New("execution environment version mismatch")
	// ErrNoExec: no regular file named exec at the zip root.
	ErrNoExec = errors.New("the action failed to generate or locate a binary: no exec at the zip root")
	// ErrNotExecutable: exec is not a Linux x86-64 ELF executable.
	ErrNotExecutable = errors.New("exec is not a linux x86-64 ELF executable")
)

// maxUnpacked bounds the bytes written by Unpack. The platform's code limit
// is 48 MB of base64; this only stops a zip bomb from filling the disk.
const maxUnpacked = 1 << 30

// Unpack extracts the action zip at zipPath into dir (created if needed, and
// required to be empty, like the proxy's fresh ./action/N directory) and
// checks it the way the runtime proxy does before it starts the action:
//
//   - exec.env at the zip root, whose content trimmed of white space equals
//     executionEnv (the image's OW_EXECUTION_ENV, e.g. DefaultExecutionEnv);
//   - exec at the zip root.
//
// The harness is stricter than the proxy in two ways, both to catch a broken
// build before deployment: exec must be an ELF executable for Linux x86-64
// (the proxy accepts any ELF, and scripts, and only fails when it runs an
// arm64 binary), and the zip may hold only regular files and directories.
//
// It returns the absolute path of exec, made executable.
func Unpack(zipPath, dir string, executionEnv string) (execPath string, err error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return "", fmt.Errorf("owproxy: open action zip: %w", err)
	}
	defer zr.Close()

	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("owproxy: action dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("owproxy: action dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("owproxy: action dir: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("owproxy: action dir %s is not empty", dir)
	}

	budget := int64(maxUnpacked)
	for _, f := range zr.File {
		if err := extract(f, dir, &budget); err != nil {
			return "", fmt.Errorf("owproxy: unpack %s: %w", zipPath, err)
		}
	}

	// Same order as the proxy: exec.env first, then exec.
	envBytes, err := os.ReadFile(filepath.Join(dir, "exec.env"))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrExecEnvMissing, err)
	}
	if got := strings.TrimSpace(string(envBytes)); got != executionEnv {
		return "", fmt.Errorf("%w: expected exec.env should start with %q, actual value: %q",
			ErrExecEnvMismatch, executionEnv, truncate(got, 80))
	}

	execPath = filepath.Join(dir, "exec")
	info, err := os.Lstat(execPath)
	if err != nil || !info.Mode().IsRegular() {
		return "", ErrNoExec
	}
	if err := checkELF(execPath); err != nil {
		return "", err
	}
	// The proxy chmods exec whatever mode the zip recorded.
	if err := os.Chmod(execPath, 0o755); err != nil {
		return "", fmt.Errorf("owproxy: chmod exec: %w", err)
	}
	return execPath, nil
}

func extract(f *zip.File, dir string, budget *int64) error {
	name := strings.TrimSuffix(f.Name, "/")
	if name == "" || !filepath.IsLocal(filepath.FromSlash(name)) || strings.Contains(f.Name, `\`) {
		return fmt.Errorf("entry %q escapes the action directory", f.Name)
	}
	target := filepath.Join(dir, filepath.FromSlash(name))
	mode := f.Mode()
	switch {
	case mode.IsDir():
		return os.MkdirAll(target, 0o755)
	case !mode.IsRegular():
		return fmt.Errorf("entry %q: %v files are not supported by this harness", f.Name, mode.Type())
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
	if err != nil {
		return err
	}
	n, copyErr := io.Copy(out, io.LimitReader(rc, *budget+1))
	closeErr := out.Close()
	*budget -= n
	switch {
	case copyErr != nil:
		return fmt.Errorf("entry %q: %w", f.Name, copyErr)
	case *budget < 0:
		return fmt.Errorf("entry %q: zip expands beyond %d bytes", f.Name, int64(maxUnpacked))
	}
	return closeErr
}

// checkELF is the packaging check of docs/services/openwhisk.md §7 item 8: the proxy's own
// test (ELF magic) plus the machine, which the proxy does not check.
func checkELF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("owproxy: open exec: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return fmt.Errorf("%w: no ELF magic (the platform would try to compile it as Go source)", ErrNotExecutable)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotExecutable, err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%w: e_machine is %v (build with GOOS=linux GOARCH=amd64)", ErrNotExecutable, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("%w: ELF type is %v", ErrNotExecutable, ef.Type)
	}
	if ef.OSABI != elf.ELFOSABI_NONE && ef.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%w: OS ABI is %v", ErrNotExecutable, ef.OSABI)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
