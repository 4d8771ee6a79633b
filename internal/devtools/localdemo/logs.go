package localdemo

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/certbackup/certbackup/internal/devtools/owproxy"
)

// actionLog receives the stdout and stderr of every exec process. The action logs one
// JSON line per step, which would drown the report, so lines go only to the caller's
// copy (Options.ActionLogs) and, once the report is printed in --serve --verbose
// mode, to the terminal. The Pool keeps its own full copy for the secret check and
// for --verbose.
type actionLog struct {
	mu      sync.Mutex
	copyTo  io.Writer // Options.ActionLogs, may be nil
	live    io.Writer // nil until goLive
	partial []byte
}

func (l *actionLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.copyTo != nil {
		// A failing copy must not break the action: the platform never lets a log
		// consumer block a container either.
		_, _ = l.copyTo.Write(p)
	}
	if l.live == nil {
		return len(p), nil
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if line != strings.TrimSuffix(owproxy.Sentinel, "\n") && line != "" {
			fmt.Fprintf(l.live, "  [exec] %s\n", line)
		}
	}
	return len(p), nil
}

func (l *actionLog) goLive(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live = w
}

// logLines returns the action's log lines from every process the pool started,
// without the proxy's sentinels, each prefixed with its process and stream.
func logLines(pool *owproxy.Pool) []string {
	var out []string
	sentinel := strings.TrimSuffix(owproxy.Sentinel, "\n")
	for i, lg := range pool.Logs() {
		for _, s := range []struct {
			name string
			data []byte
		}{{"stdout", lg.Stdout}, {"stderr", lg.Stderr}} {
			for line := range strings.SplitSeq(string(s.data), "\n") {
				if line == "" || line == sentinel {
					continue
				}
				out = append(out, fmt.Sprintf("exec#%d %s: %s", i+1, s.name, line))
			}
		}
	}
	return out
}

// syncWriter serialises writes to the report: in --serve mode the action's live log
// lines and the report share the terminal.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
