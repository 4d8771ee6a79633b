package localdemo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// reporter is what every demo shares: the report it writes and the checks that
// failed. A step that could not run at all returns an error; a step that ran but did
// not behave is a failed check, printed next to it and listed again at the end.
type reporter struct {
	out      io.Writer
	started  time.Time
	failures []string
}

func newReporter(out io.Writer) reporter {
	// Serialised: in --serve mode live lines and the report share the terminal.
	return reporter{out: &syncWriter{w: out}, started: time.Now()}
}

func (r *reporter) printf(format string, args ...any) {
	fmt.Fprintf(r.out, format, args...)
}

// check records a failed expectation and says so in the report, next to the step.
func (r *reporter) check(ok bool, format string, args ...any) bool {
	if !ok {
		msg := fmt.Sprintf(format, args...)
		r.failures = append(r.failures, msg)
		r.printf("      FAIL: %s\n", msg)
	}
	return ok
}

// stepError is the error of a run whose step err could not run: interrupted, out of
// time, or the step's own error, with the checks that failed before it.
func (r *reporter) stepError(ctx, rctx context.Context, timeout time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("the demo did not finish within %s: %w", timeout, err)
	}
	if len(r.failures) > 0 {
		// Checks that failed before the step that could not run may be the cause.
		return fmt.Errorf("%w (earlier: %s)", err, strings.Join(r.failures, "; "))
	}
	return err
}

// verdict prints PASS or FAIL with every failed check, and returns the run's error.
func (r *reporter) verdict() error {
	elapsed := time.Since(r.started).Round(100 * time.Millisecond)
	if len(r.failures) == 0 {
		r.printf("\nPASS: every step behaved as expected (%s)\n", elapsed)
		return nil
	}
	r.printf("\nFAIL: %d check(s) did not behave as expected (%s):\n", len(r.failures), elapsed)
	for _, f := range r.failures {
		r.printf("  - %s\n", f)
	}
	// The report lists every failure; the error names the first, which usually
	// explains the others.
	return fmt.Errorf("%d check(s) failed; the first: %s", len(r.failures), r.failures[0])
}
