package owproxy

import (
	"bytes"
	"io"
	"os"
	"sync"
	"syscall"
)

// Logs is what an action wrote to stdout and stderr, with the proxy's
// sentinel after each activation.
type Logs struct {
	Stdout []byte
	Stderr []byte
}

// SplitActivations cuts one captured stream at the sentinels. Element i is
// what was logged during activation i (start-up output is attributed to the
// first activation, as by the invoker); the last element is whatever came
// after the last sentinel (output of a run in progress, or of a goroutine
// that outlived its activation).
func SplitActivations(stream []byte) [][]byte {
	return bytes.Split(stream, []byte(Sentinel))
}

// capture collects a child's stdout and stderr.
//
// The proxy shares its own stdout/stderr with the child, so the sentinel it
// writes after reading a result always lands after what the child logged
// before writing that result. With pipes in between, a background copier can
// lag behind; so the sentinel is written only after both pipes have been read
// until they would block (drain), under the same lock as every read.
type capture struct {
	mu      sync.Mutex // orders reads, sentinels and writes to the sinks
	streams [2]*stream
	done    sync.WaitGroup
}

type stream struct {
	f    *os.File
	rc   syscall.RawConn
	buf  bytes.Buffer
	sink io.Writer // optional copy of the output (Options.Stdout/Stderr)
	eof  bool
	tmp  []byte
}

func newCapture(stdout, stderr *os.File, outSink, errSink io.Writer) (*capture, error) {
	c := &capture{}
	for i, f := range []*os.File{stdout, stderr} {
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, err
		}
		c.streams[i] = &stream{f: f, rc: rc, sink: []io.Writer{outSink, errSink}[i], tmp: make([]byte, 64*1024)}
	}
	for _, s := range c.streams {
		c.done.Add(1)
		go c.pump(s)
	}
	return c, nil
}

// pump copies s until EOF, waiting in the runtime poller between bursts.
func (c *capture) pump(s *stream) {
	defer c.done.Done()
	// The callback returns false to wait for readability, true to stop.
	// An error (file closed) also ends the loop.
	_ = s.rc.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.readAvailable(s, fd)
	})
}

// readAvailable reads s until the pipe would block. Callers hold c.mu.
// It reports whether the stream has ended.
func (c *capture) readAvailable(s *stream, fd uintptr) bool {
	if s.eof {
		return true
	}
	for {
		n, err := syscall.Read(int(fd), s.tmp)
		if n > 0 {
			c.appendLocked(s, s.tmp[:n])
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil || n == 0:
			s.eof = true
			return true
		}
	}
}

func (c *capture) appendLocked(s *stream, p []byte) {
	s.buf.Write(p)
	if s.sink != nil {
		_, _ = s.sink.Write(p) // a failing sink must not stop the capture
	}
}

// endActivation drains both pipes and appends the sentinel to both streams,
// as the proxy does after every activation.
func (c *capture) endActivation() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		if !s.eof {
			_ = s.rc.Control(func(fd uintptr) { c.readAvailable(s, fd) })
		}
		c.appendLocked(s, []byte(Sentinel))
	}
}

func (c *capture) logs() Logs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Logs{
		Stdout: bytes.Clone(c.streams[0].buf.Bytes()),
		Stderr: bytes.Clone(c.streams[1].buf.Bytes()),
	}
}

// close stops the pumps. It is called once the process group is gone, when
// the pipes are at EOF or about to be; closing the files unblocks a pump held
// by a surviving descendant.
func (c *capture) close() {
	c.mu.Lock()
	for _, s := range c.streams {
		if !s.eof {
			_ = s.rc.Control(func(fd uintptr) { c.readAvailable(s, fd) })
		}
	}
	c.mu.Unlock()
	for _, s := range c.streams {
		_ = s.f.Close()
	}
	c.done.Wait()
}

// lockedWriter serialises writes from several processes to one sink.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
