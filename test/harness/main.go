package harness

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// DefaultParallel sets -test.parallel to n unless the command line gave it: the
// end-to-end suites wait on HTTP, processes and injected delays far more than they
// compute. Call it from TestMain after flag.Parse.
func DefaultParallel(n int) {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}

// ScanSecrets scans texts (Scan) after checking that the scanner finds a planted JWT:
// a scanner that finds nothing proves nothing.
func ScanSecrets(texts []string) []Leak {
	const probe = "a eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YW5jZV9jcm4iOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl b"
	if len(FindSecrets(probe, nil, nil, nil)) == 0 {
		return []Leak{{Kind: "scanner", Excerpt: "harness.FindSecrets missed a planted JWT"}}
	}
	return Scan(texts)
}

// ExitCode is a TestMain's exit code: code, or 1 after printing the leaks, saying
// where they were found (what).
func ExitCode(code int, leaks []Leak, what string) int {
	if len(leaks) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "FAIL: %d secret(s) in %s:\n", len(leaks), what)
	for _, l := range leaks {
		fmt.Fprintf(os.Stderr, "  %s: %s\n", l.Kind, l.Excerpt)
	}
	return 1
}

// Buffer is a bytes.Buffer safe for concurrent writers (a logger, a process's output).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// PeakRSS is a process's peak resident set (VmHWM of /proc/<pid>/status, Linux) in
// bytes.
func PeakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
