package simrate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWindow(t *testing.T) {
	var w Window
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		ok, _ := w.Allow(t0.Add(time.Duration(i)*time.Second), 3, time.Minute)
		assert.True(t, ok, "event %d", i)
	}
	ok, after := w.Allow(t0.Add(10*time.Second), 3, time.Minute)
	assert.False(t, ok, "a fourth within the minute")
	assert.Equal(t, 50*time.Second, after, "until the first leaves the window")
	ok, _ = w.Allow(t0.Add(time.Minute), 3, time.Minute)
	assert.True(t, ok, "the first has left: exactly one period later")
	ok, _ = w.Allow(t0.Add(time.Minute), 3, time.Minute)
	assert.False(t, ok, "the refused event was not counted, the allowed one was")
}
