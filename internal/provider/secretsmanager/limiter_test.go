package secretsmanager

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimiterSlots: the slots a sliding window of n gives out, on a fixed clock: the
// first n at once, the next one window after the oldest, in order, and never before a
// hold.
func TestLimiterSlots(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := &limiter{n: 3, window: time.Second}
	take := func(now time.Time) time.Time {
		s := l.nextSlot(now)
		l.slots = append(l.slots, s)
		if len(l.slots) > l.n {
			l.slots = l.slots[1:]
		}
		return s
	}
	ms := func(d int) time.Time { return t0.Add(time.Duration(d) * time.Millisecond) }
	assert.Equal(t, ms(0), take(ms(0)), "a burst up to n leaves at once")
	assert.Equal(t, ms(10), take(ms(10)))
	assert.Equal(t, ms(20), take(ms(20)))
	assert.Equal(t, ms(1000), take(ms(30)), "the fourth waits for the first to leave the window")
	assert.Equal(t, ms(1010), take(ms(40)), "and the fifth for the second, after the fourth")
	assert.Equal(t, ms(1500), take(ms(1500)), "the oldest (20) has left the window")
	assert.Equal(t, ms(2000), take(ms(1600)), "1000, 1010 and 1500 lie in the window before 2000")
	l.until = ms(5000)
	assert.Equal(t, ms(5000), take(ms(2100)), "a 429's hold comes first")
	assert.Equal(t, ms(5000), take(ms(2200)), "the window allows a second at the same time")
}

// TestLimiterWait: the real clock: n requests leave together, the next one waits out
// the window; a slot past the deadline is refused at once and not taken.
func TestLimiterWait(t *testing.T) {
	l := &limiter{n: 5, window: 150 * time.Millisecond}
	start := time.Now()
	for range 5 {
		require.NoError(t, l.wait(context.Background()))
	}
	assert.Less(t, time.Since(start), 100*time.Millisecond, "a burst within the ceiling is not spaced")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := l.wait(ctx)
	assert.ErrorIs(t, err, errRateWait)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Len(t, l.slots, 5, "the refused slot was not taken")

	require.NoError(t, l.wait(context.Background()))
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the sixth waits for the first to leave")

	l.hold(200 * time.Millisecond)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	assert.ErrorIs(t, l.wait(ctx), errRateWait)
	assert.Less(t, time.Since(begin), 20*time.Millisecond, "a turn after the deadline is not waited for")

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	l.until = time.Time{}
	l.slots = nil
	assert.ErrorIs(t, l.wait(ctx), context.Canceled)
}
