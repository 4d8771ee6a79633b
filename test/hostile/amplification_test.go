package hostile

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/test/harness"
)

// maxAnswer bounds a notification's answer: far below OpenWhisk's 1 MB result limit,
// whatever a genuine token lists.
const maxAnswer = 64 << 10

// TestOneNotificationCostsBoundedWork is section 3 through the real zip: a genuine
// token (signed by the source) that lists certificates many times costs one source
// download per distinct certificate, one copy per backup, and a small answer with at
// most 50 detailed results, the rest counted in the summary and results_omitted.
func TestOneNotificationCostsBoundedWork(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.Options{Backups: 2, NoChannel: true, Exec: harness.SharedExecPath(t)})
	t.Cleanup(func() { harness.RegisterStack(s) })
	for _, tc := range []struct {
		name     string
		distinct int
		repeat   int
	}{
		{"one certificate listed 3000 times", 1, 3000},
		{"30 certificates listed 100 times each", 30, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var certs, listed []string
			for i := range tc.distinct {
				certs = append(certs, s.Sim.Seed(s.Source, fmt.Sprintf("amp-%d-%d", tc.distinct, i), "", s.Sim.CA().MustIssue(fmt.Sprintf("a%d-%d.amplified.example", tc.distinct, i))))
			}
			for range tc.repeat {
				listed = append(listed, certs...)
			}
			token := s.Sim.Sign(s.Source, event(s.Source, "cert_renewed", listed...))
			require.Less(t, len(token), 1<<20, "the token itself is under the request limit")
			s.Sim.ResetLog()

			status, raw := s.NotifyRaw(token)
			require.Equal(t, http.StatusOK, status, "%.600s", raw)
			assert.Less(t, len(raw), maxAnswer, "the answer stays small")
			var answer struct {
				Results []replicate.PairResult `json:"results"`
				Omitted int                    `json:"results_omitted"`
				Summary map[string]int         `json:"summary"`
			}
			require.NoError(t, json.Unmarshal(raw, &answer))
			pairs := tc.distinct * len(s.Backups)
			assert.Equal(t, min(pairs, 50), len(answer.Results), "at most 50 detailed results")
			assert.Equal(t, max(pairs-50, 0), answer.Omitted, "the others are counted as omitted")
			total := 0
			for _, n := range answer.Summary {
				total += n
			}
			assert.Equal(t, pairs, total, "the summary counts each (certificate, backup) pair once")
			assert.Equal(t, pairs, answer.Summary[string(replicate.Imported)])

			assert.Equal(t, tc.distinct, s.Sim.Count(cmsim.OpDownload, s.Source), "one source download per distinct certificate")
			for _, b := range s.Backups {
				assert.Equal(t, tc.distinct, s.Sim.Carried(cmsim.OpImport, b), "one import per distinct certificate in %s", b)
				for _, c := range certs {
					assert.Len(t, harness.ProvenCopies(s.Sim, ownerOf(&fixture{s: s}), b, c), 1)
				}
			}
		})
	}
}
