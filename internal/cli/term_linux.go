//go:build linux

package cli

import (
	"os"
	"syscall"
	"unsafe"
)

// isTerminalFile reports whether f is a terminal: TCGETS succeeds only on one. It
// reaches the descriptor through SyscallConn, which, unlike Fd, leaves the file in
// non-blocking mode.
func isTerminalFile(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	if err := rc.Control(func(fd uintptr) {
		var t syscall.Termios
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
		ok = errno == 0
	}); err != nil {
		return false
	}
	return ok
}

// fdWritable reports whether fd is open for writing. It asks the kernel about the
// number and never wraps it in an *os.File, whose finalizer would close it: fd 3
// belongs to the ActionLoop (see actionloop.Main).
func fdWritable(fd uintptr) bool {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	return errno == 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY
}
