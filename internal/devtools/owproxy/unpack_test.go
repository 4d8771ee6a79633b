package owproxy

import (
	"archive/zip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

type zipEntry struct {
	name string
	data []byte
	mode fs.FileMode
}

func writeZip(t *testing.T, entries []zipEntry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "action.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if len(e.data) > 64<<10 {
			h.Method = zip.Store // deflating the test binary under -race takes seconds
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnpack(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the test action must be a linux/amd64 binary to pass the packaging check")
	}
	execBytes, err := os.ReadFile(echoExec)
	if err != nil {
		t.Fatal(err)
	}
	// The same binary claiming to be arm64: e_machine is the 16-bit field
	// at offset 18 of the ELF header.
	arm := append([]byte(nil), execBytes...)
	binary.LittleEndian.PutUint16(arm[18:], uint16(elf.EM_AARCH64))

	env := []byte(DefaultExecutionEnv)
	tests := []struct {
		name     string
		entries  []zipEntry
		wantErr  error  // nil: success
		wantText string // substring of the error
	}{
		{"compiled zip", []zipEntry{{"exec", execBytes, 0o755}, {"exec.env", env, 0}}, nil, ""},
		{"exec.env with newline, exec not executable in the zip", []zipEntry{{"exec", execBytes, 0o644}, {"exec.env", []byte(DefaultExecutionEnv + "\n"), 0}}, nil, ""},
		{"no exec.env", []zipEntry{{"exec", execBytes, 0o755}}, ErrExecEnvMissing, "exec.env: no such file or directory"},
		{"exec.env of another image", []zipEntry{{"exec", execBytes, 0o755}, {"exec.env", []byte("openwhisk/action-golang-v1.24"), 0}},
			ErrExecEnvMismatch, `expected exec.env should start with "openwhisk/action-golang-v1.21", actual value: "openwhisk/action-golang-v1.24"`},
		{"exec in a subdirectory, no exec.env (the platform's error)", []zipEntry{{"bin/exec", execBytes, 0o755}}, ErrExecEnvMissing, ""},
		{"exec in a subdirectory", []zipEntry{{"bin/exec", execBytes, 0o755}, {"exec.env", env, 0}}, ErrNoExec, ""},
		{"exec is a directory", []zipEntry{{"exec/", nil, fs.ModeDir | 0o755}, {"exec.env", env, 0}}, ErrNoExec, ""},
		{"exec is a script", []zipEntry{{"exec", []byte("#!/bin/sh\necho hi\n"), 0o755}, {"exec.env", env, 0}}, ErrNotExecutable, "no ELF magic"},
		{"exec is Go source", []zipEntry{{"exec", []byte("package main\nfunc main() {}\n"), 0o644}, {"exec.env", env, 0}}, ErrNotExecutable, ""},
		{"exec is arm64", []zipEntry{{"exec", arm, 0o755}, {"exec.env", env, 0}}, ErrNotExecutable, "EM_AARCH64"},
		{"entry escapes the directory", []zipEntry{{"../evil", []byte("x"), 0}, {"exec", execBytes, 0o755}, {"exec.env", env, 0}}, nil, "escapes"},
		{"absolute entry", []zipEntry{{"/etc/evil", []byte("x"), 0}}, nil, "escapes"},
		{"symlink entry", []zipEntry{{"exec", []byte("/bin/sh"), fs.ModeSymlink | 0o777}, {"exec.env", env, 0}}, nil, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "action")
			execPath, err := Unpack(writeZip(t, tc.entries), dir, DefaultExecutionEnv)
			if tc.wantErr == nil && tc.wantText == "" {
				if err != nil {
					t.Fatalf("Unpack: %v", err)
				}
				info, err := os.Stat(execPath)
				if err != nil || info.Mode().Perm() != 0o755 || execPath != filepath.Join(dir, "exec") {
					t.Errorf("exec %s: %v %v", execPath, info.Mode(), err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Unpack succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tc.wantText)
			}
		})
	}
}

func TestUnpackRefusesNonEmptyDirAndNonZip(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	zipPath := writeZip(t, []zipEntry{{"exec.env", []byte(DefaultExecutionEnv), 0}})
	if _, err := Unpack(zipPath, dir, DefaultExecutionEnv); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty dir: err = %v", err)
	}
	if _, err := Unpack(echoExec, t.TempDir(), DefaultExecutionEnv); err == nil {
		t.Errorf("a binary is not a zip: want an error")
	}
}

// TestUnpackStartRun is the whole local path: zip → exec → ack → run.
func TestUnpackStartRun(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("needs a linux/amd64 test action")
	}
	execBytes, err := os.ReadFile(echoExec)
	if err != nil {
		t.Fatal(err)
	}
	zipPath := writeZip(t, []zipEntry{{"exec", execBytes, 0o755}, {"exec.env", []byte(DefaultExecutionEnv), 0}})
	execPath, err := Unpack(zipPath, t.TempDir(), DefaultExecutionEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(testCtx(t), execPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if status, body, err := p.Run(testCtx(t), map[string]any{"k": "v"}, RunMeta{}); status != 200 || err != nil ||
		decodeEcho(t, body).Params["k"] != "v" {
		t.Errorf("Run = %d %s %v", status, body, err)
	}
}
