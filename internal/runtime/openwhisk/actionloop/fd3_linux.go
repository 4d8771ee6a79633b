//go:build linux

package actionloop

import (
	"errors"
	"os"
	"syscall"
)

// checkWritable refuses a descriptor opened read-only. Without this, a binary
// started with a stray fd 3 (for example a file some init code opened) would
// only fail at its first result, after the proxy has already waited for it.
func checkWritable(f *os.File) error {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_GETFL, 0)
	if errno != 0 {
		return errno
	}
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return errors.New("fd 3 is open read-only")
	}
	return nil
}
