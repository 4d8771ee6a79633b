package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/certbackup/certbackup/internal/engine/reconcile"
)

// TestProgressLine: one backup shows its count alone; several show each backup by its
// region (a region named twice numbered); a complete run is always drawn, however
// soon after the last line.
func TestProgressLine(t *testing.T) {
	const (
		euDE  = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct:11111111-1111-4111-a111-111111111111::"
		euDE2 = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct:22222222-2222-4222-a222-222222222222::"
		usE   = "crn:v1:bluemix:public:secrets-manager:us-east:a/acct:33333333-3333-4333-a333-333333333333::"
	)
	tests := []struct {
		name   string
		counts []reconcile.Progress
		want   string
	}{
		{"one backup", []reconcile.Progress{{Backup: euDE, Done: 3, Total: 40}}, "3/40"},
		{"several", []reconcile.Progress{{Backup: euDE, Done: 12, Total: 40}, {Backup: usE, Done: 40, Total: 40}}, "eu-de 12/40, us-east 40/40"},
		{"same region twice", []reconcile.Progress{{Backup: euDE, Done: 1, Total: 2}, {Backup: euDE2, Done: 0, Total: 2}}, "eu-de 1/2, eu-de #2 0/2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, progressText(tc.counts))
		})
	}

	var out bytes.Buffer
	p := &liveProgress{w: &out, label: "reconcile", every: time.Hour}
	p.update([]reconcile.Progress{{Backup: euDE, Done: 1, Total: 2}, {Backup: usE, Done: 0, Total: 2}})
	p.update([]reconcile.Progress{{Backup: euDE, Done: 2, Total: 2}, {Backup: usE, Done: 0, Total: 2}})
	p.update([]reconcile.Progress{{Backup: euDE, Done: 2, Total: 2}, {Backup: usE, Done: 2, Total: 2}})
	p.clear()
	assert.Equal(t, "\rreconcile: eu-de 1/2, us-east 0/2 certificates done\x1b[K"+
		"\rreconcile: eu-de 2/2, us-east 2/2 certificates done\x1b[K\r\x1b[K", out.String(),
		"the middle line is within the redraw interval; the complete one is not skipped")
}
