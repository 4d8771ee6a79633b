package faults

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What the matching rule guarantees when activations race (internal/engine/match,
// internal/engine/replicate Engine.CopyTo), and what TestConcurrentActivations checks:
//
// Certificate Manager has no conditional create, so two activations copying the same
// certificate into the same backup at the same time can both find no copy and both
// import one. After every import the engine lists the backup again and converges: of
// all the copies of the source it sees, the one with the smallest CRN is the copy, and
// it deletes the others once the winner is read back and verified. So:
//
//   - while activations run, a backup may hold two (or more) copies of one certificate;
//   - the copy with the smallest CRN ever imported is deleted by nobody (nobody sees a
//     smaller one), and every other copy is seen beside a smaller one by the activation
//     that imported it (its listing after its own import) or by the one that imported
//     the smaller (whichever listed last), which deletes it: once every activation has
//     returned, each backup holds exactly one copy, the smallest CRN imported, byte-equal
//     to the source;
//   - an activation that listed before a smaller copy existed reports its own copy as
//     copy_crn, which a racer may then delete: a racing activation's reported copy_crn
//     may be the one removed. (Reading it back after the removal fails with 404: such a
//     racer answers 502 for a certificate that is in fact copied.)
//
// The test makes every import slow (1 s), so that all the racers list before the first
// import lands and the race does happen, then checks exactly the above.
func TestConcurrentActivations(t *testing.T) {
	const pool = 6
	s := newStack(t, harness.Options{Backups: 2, Pool: pool, NoChannel: true, Timeout: 30 * time.Second})
	sink := addSink(t, s)

	t.Run("the same token posted at once", func(t *testing.T) {
		src, err := s.Sim.Order(s.Source, "race", "race.example.com")
		require.NoError(t, err)
		token := lastToken(t, s, sink, cmsim.EventCertIssued)
		race(t, s, map[string]string{src: token}, 2*pool)
	})
	t.Run("several certificates at once", func(t *testing.T) {
		tokens := map[string]string{}
		for _, name := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
			src, err := s.Sim.Order(s.Source, name, name+".example.com")
			require.NoError(t, err)
			tokens[src] = lastToken(t, s, sink, cmsim.EventCertIssued)
		}
		race(t, s, tokens, 4)
	})
	runReconcile(t, s, nil)
	requireMirror(t, s)
}

// race posts each certificate's token perCert times, all at once, on the pool, with
// every import slowed down, and checks the guarantee documented above.
func race(t *testing.T, s *harness.Stack, tokens map[string]string, perCert int) {
	t.Helper()
	s.Sim.ResetLog()
	fault := s.Sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Delay: time.Second})
	defer s.Sim.RemoveFault(fault)

	type post struct {
		src string
		r   notifyResult
	}
	var (
		mu    sync.Mutex
		posts []post
		wg    sync.WaitGroup
	)
	startAll := make(chan struct{})
	for src, tok := range tokens {
		for range perCert {
			wg.Go(func() {
				<-startAll
				r := notify(s, tok)
				mu.Lock()
				posts = append(posts, post{src, r})
				mu.Unlock()
			})
		}
	}
	close(startAll)
	wg.Wait()

	statuses := map[int]int{}
	for src := range tokens {
		want := mustGet(t, s, src)
		for bi, b := range s.Backups {
			// Every copy that existed, as the activations saw them: the copies they
			// reported and the ones they removed.
			seen := map[string]bool{}
			var reported []string
			for _, p := range posts {
				if p.src != src {
					continue
				}
				for _, pr := range pairs(p.r.Body)[b] {
					if c, _ := pr["copy_crn"].(string); c != "" {
						seen[c] = true
						reported = append(reported, c)
					}
					rd, _ := pr["removed_duplicates"].([]any)
					for _, d := range rd {
						seen[d.(string)] = true
					}
				}
			}
			cs := copiesOf(s, b, src)
			if !assert.Len(t, cs, 1, "exactly one copy of %s in %s once every activation returned", src, b) {
				continue
			}
			assert.True(t, cs[0].Data == want.Data, "the copy is byte-equal to the source")
			assert.Equal(t, want.Name, cs[0].Name)
			ids := make([]string, 0, len(seen))
			for id := range seen {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			assert.Equal(t, ids[0], cs[0].ID, "the survivor is the smallest CRN of all the copies the racers made")
			removedReported := 0
			for _, c := range reported {
				if c != cs[0].ID {
					removedReported++
				}
			}
			t.Logf("%s in backup %d: %d activations; %d copies existed; the survivor is the smallest; %d of the copy_crn values reported were removed afterwards",
				want.Name, bi, perCert, len(seen), removedReported)
		}
	}
	for _, p := range posts {
		require.NoError(t, p.r.Err)
		statuses[p.r.Status]++
		if p.r.Status == 200 {
			continue
		}
		// A 502 only for a racer whose copy was removed under it.
		assert.Equal(t, 502, p.r.Status, "%v", p.r.Body)
		for b, prs := range pairs(p.r.Body) {
			for _, pr := range prs {
				if pr["outcome"] == "failed" {
					cs := copiesOf(s, b, p.src)
					assert.Contains(t, pr["message"], "404", "a racer fails only when its copy was removed: %v", pr["message"])
					if len(cs) == 1 {
						assert.NotEqual(t, cs[0].ID, pr["copy_crn"])
					}
				}
			}
		}
	}
	// The race happened: more imports than certificates in each backup.
	for bi, b := range s.Backups {
		n := s.Sim.Count(cmsim.OpImport, b)
		assert.Greater(t, n, len(tokens), "the racers imported concurrently into backup %d", bi)
		t.Logf("backup %d: %d imports for %d certificates", bi, n, len(tokens))
	}
	t.Logf("statuses %s", sortedCounts(statuses))
}
