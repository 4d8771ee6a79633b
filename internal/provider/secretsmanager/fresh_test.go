package secretsmanager

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestFreshLabels: a create's labels are used once, only while recent, and never hold
// the payload.
func TestFreshLabels(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var f freshLabels
	f.put("a", secretView{Name: "n", Labels: []string{Label}, PrivateKey: "-----BEGIN PRIVATE KEY-----", Certificate: "c"}, t0)
	v, ok := f.take("a", t0.Add(time.Second))
	assert.True(t, ok)
	assert.Equal(t, "n", v.Name)
	assert.Empty(t, v.PrivateKey, "no payload is kept")
	assert.Empty(t, v.Certificate)
	_, ok = f.take("a", t0.Add(time.Second))
	assert.False(t, ok, "once")

	f.put("b", secretView{Name: "b"}, t0)
	_, ok = f.take("b", t0.Add(freshFor+time.Millisecond))
	assert.False(t, ok, "too old")

	f.put("c", secretView{Name: "c"}, t0)
	f.put("d", secretView{Name: "d"}, t0.Add(freshFor+time.Second))
	assert.NotContains(t, f.m, "c", "old entries are dropped as new ones come")
}
