//go:build !linux

package cli

import "os"

// isTerminalFile is an approximation where the command is built for an operator's
// machine other than Linux: a character device (a terminal, or /dev/null, where a
// progress line harms nothing).
func isTerminalFile(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// fdWritable: OpenWhisk runs the action on Linux only; elsewhere fd 3 is never the
// result pipe of a runtime.
func fdWritable(uintptr) bool { return false }
