package secretsmanager

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimiterSpacing(t *testing.T) {
	l := newLimiter(100) // 10.5 ms apart
	assert.Equal(t, 10500*time.Microsecond, l.interval)
	start := time.Now()
	for range 11 {
		require.NoError(t, l.wait(context.Background()))
	}
	assert.GreaterOrEqual(t, time.Since(start), 10*l.interval)

	l.hold(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := l.wait(ctx)
	assert.ErrorIs(t, err, errRateWait)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 20*time.Millisecond, "a turn after the deadline is not waited for")

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, l.wait(ctx), context.Canceled)
}
