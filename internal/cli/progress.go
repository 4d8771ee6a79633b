package cli

import (
	"fmt"
	"io"
	"time"
)

// showProgress: the live count is for a person at a terminal. A log file, a pipe or
// CI (where CI is set, even on a pseudo-terminal) gets none.
func (r *runner) showProgress() bool {
	return r.isTerminal != nil && r.isTerminal(r.stderr) && r.getenv("CI") == ""
}

// liveProgress keeps one line of the terminal up to date with how many certificates
// are done out of those to do. A certificate is done once its every backup that
// needed it has been worked on. The reconcile calls update from one goroutine at a
// time; clear is called after the run.
type liveProgress struct {
	w       io.Writer
	label   string
	backups int
	every   time.Duration

	last  time.Time
	shown bool
}

func (p *liveProgress) update(done, total int) {
	now := time.Now()
	if p.shown && done < total && now.Sub(p.last) < p.every {
		return
	}
	p.last, p.shown = now, true
	into := ""
	if p.backups > 1 {
		into = fmt.Sprintf(" across %d backups", p.backups)
	}
	// \r returns to the start of the line and ESC[K erases the rest of it.
	fmt.Fprintf(p.w, "\r%s: %d/%d certificates done%s\x1b[K", p.label, done, total, into)
}

// clear erases the line, so that what follows (the report, if stdout is the same
// terminal) starts on a clean one. A nil liveProgress does nothing.
func (p *liveProgress) clear() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
