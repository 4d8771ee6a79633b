package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/engine/reconcile"
)

// showProgress: the live count is for a person at a terminal. A log file, a pipe or
// CI (where CI is set, even on a pseudo-terminal) gets none.
func (r *runner) showProgress() bool {
	return r.isTerminal != nil && r.isTerminal(r.stderr) && r.getenv("CI") == ""
}

// liveProgress keeps one line of the terminal up to date with how many certificates
// are done out of those to do, in each backup that has work: "12/40 certificates done"
// for one backup, "eu-de 12/40, us-east 40/40 certificates done" for several (a
// region named twice gets "#2"). The reconcile calls update from one goroutine at a
// time; clear is called after the run.
type liveProgress struct {
	w     io.Writer
	label string
	every time.Duration

	last  time.Time
	shown bool
}

func (p *liveProgress) update(counts []reconcile.Progress) {
	now := time.Now()
	if p.shown && !complete(counts) && now.Sub(p.last) < p.every {
		return
	}
	p.last, p.shown = now, true
	// \r returns to the start of the line and ESC[K erases the rest of it.
	fmt.Fprintf(p.w, "\r%s: %s certificates done\x1b[K", p.label, progressText(counts))
}

func complete(counts []reconcile.Progress) bool {
	for _, c := range counts {
		if c.Done < c.Total {
			return false
		}
	}
	return true
}

func progressText(counts []reconcile.Progress) string {
	if len(counts) == 1 {
		return fmt.Sprintf("%d/%d", counts[0].Done, counts[0].Total)
	}
	parts := make([]string, len(counts))
	seen := map[string]int{}
	for i, c := range counts {
		r := region(c.Backup)
		seen[r]++
		if seen[r] > 1 {
			r += fmt.Sprintf(" #%d", seen[r])
		}
		parts[i] = fmt.Sprintf("%s %d/%d", r, c.Done, c.Total)
	}
	return strings.Join(parts, ", ")
}

// clear erases the line, so that what follows (the report, if stdout is the same
// terminal) starts on a clean one. A nil liveProgress does nothing.
func (p *liveProgress) clear() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
