package faults

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// soakSeed makes the soak repeatable: the choice of certificates, the order of the
// deliveries and the simulator's faults all draw from it. (Which call a fault hits
// still depends on the interleaving of the concurrent activations.)
const soakSeed = 20240611

// TestSoak: a source of 1000 certificates (200 with -short) mirrored by an initial
// reconcile, then a stream of renewals and reimports delivered as notifications, in
// rounds, with duplicates and out of order (tokens shuffled, some delivered twice, a
// certificate's older token after its newer one, tokens of earlier rounds replayed),
// on a pool of exec processes, while each backup fails 20% of its calls at random
// (half 503, half connection resets). Then one reconcile with the faults cleared: the
// backups must equal the source exactly.
func TestSoak(t *testing.T) {
	n, changed, rounds := 1000, 200, 4
	switch {
	case testing.Short():
		n, changed, rounds = 200, 60, 3
	case raceEnabled:
		// The simulator runs in this instrumented process, and every delivery lists
		// 1000 certificates per backup: the same source, a shorter stream.
		changed, rounds = 100, 3
	}
	// The stream's time goes into the client's backoff after the faults (0.5 s, 1 s,
	// 2 s), not into work: as many exec processes as OpenWhisk would scale out to keep
	// it short.
	const workers = 24
	start := time.Now()
	rng := rand.New(rand.NewPCG(soakSeed, soakSeed))

	s := newStack(t, harness.Options{Backups: 2, Pool: workers, NoChannel: true, Timeout: 60 * time.Second})
	// A quarter ordered (they renew), the rest imported (they are reimported).
	srcs := make([]string, n)
	ordered := make([]bool, n)
	domain := func(i int) string { return fmt.Sprintf("soak-%04d.example.com", i) }
	for i := range n {
		name := fmt.Sprintf("soak-%04d", i)
		if i%4 == 0 {
			c, err := s.Sim.Order(s.Source, name, domain(i))
			require.NoError(t, err)
			srcs[i], ordered[i] = c, true
			continue
		}
		srcs[i] = s.Sim.Seed(s.Source, name, fmt.Sprintf("soak certificate %d", i), s.Sim.CA().MustIssue(domain(i)))
	}
	seeded := time.Since(start)

	t0 := time.Now()
	rep := runReconcile(t, s, map[string]any{"concurrency": "16"})
	initial := time.Since(t0)
	counts, _ := rep["counts"].(map[string]any)
	require.EqualValues(t, n*len(s.Backups), counts["imported"], "the initial reconcile imported every certificate")
	requireMirror(t, s)
	harness.RegisterStack(s)

	sink := addSink(t, s)
	s.Sim.SetSeed(soakSeed)
	for _, b := range s.Backups {
		// The first fault fires on 10% of the calls, the second on 1/9 of the rest: 20%.
		s.Sim.Inject(cmsim.Fault{Instance: b, Probability: 0.10, Status: 503})
		s.Sim.Inject(cmsim.Fault{Instance: b, Probability: 0.10 / 0.90, Drop: true})
	}
	s.Sim.ResetLog()

	// Each changed certificate changes in one round, once or twice (then its two tokens
	// are delivered newer first), so that no copy is reimported more often than the
	// service's 5 a minute allow. Rounds follow each other without waiting for their
	// deliveries: the source changes while earlier notifications are still handled.
	perm := rng.Perm(n)[:changed]
	queue := make(chan string, 4*changed)
	closeQueue := sync.OnceFunc(func() { close(queue) })
	defer closeQueue() // a failed require must not leave the workers waiting
	var (
		mu      sync.Mutex
		results []notifyResult
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for tok := range queue {
				r := notify(s, tok)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	var all []string // every token signed so far, for replays
	twice := 0
	t1 := time.Now()
	for round := range rounds {
		batch := perm[round*changed/rounds : (round+1)*changed/rounds]
		first := len(sinkTokens(s, sink))
		for _, i := range batch {
			times := 1
			if rng.IntN(10) < 3 {
				times = 2
				twice++
			}
			for range times {
				if ordered[i] {
					require.NoError(t, s.Sim.Renew(srcs[i]))
				} else {
					next := s.Sim.CA().MustIssue(domain(i))
					harness.RegisterSecrets(nil, []string{next.KeyPEM}, nil)
					require.NoError(t, s.Sim.Reimport(srcs[i], next.CertPEM, next.KeyPEM, next.Intermediate))
				}
			}
		}
		fresh := sinkTokens(s, sink)[first:]
		byCert := map[string][]string{} // oldest first
		var deliveries []string
		for _, st := range fresh {
			c := tokenCerts(t, st.Token)[0]
			byCert[c] = append(byCert[c], st.Token)
			deliveries = append(deliveries, st.Token)
		}
		// Duplicates: about a third of the round's tokens once more.
		for _, st := range fresh {
			if rng.IntN(3) == 0 {
				deliveries = append(deliveries, st.Token)
			}
		}
		// Replays of earlier rounds' tokens: stale, they must change nothing.
		for range len(batch) / 5 {
			if len(all) > 0 {
				deliveries = append(deliveries, all[rng.IntN(len(all))])
			}
		}
		rng.Shuffle(len(deliveries), func(a, b int) { deliveries[a], deliveries[b] = deliveries[b], deliveries[a] })
		// Out of order: a certificate's older token after its newer one.
		pos := map[string]int{}
		for k := len(deliveries) - 1; k >= 0; k-- {
			pos[deliveries[k]] = k // first position of each token
		}
		for _, toks := range byCert {
			if len(toks) == 2 {
				if older, newer := pos[toks[0]], pos[toks[1]]; older < newer {
					deliveries[older], deliveries[newer] = deliveries[newer], deliveries[older]
				}
			}
		}
		for _, tok := range deliveries {
			queue <- tok
		}
		for _, st := range fresh {
			all = append(all, st.Token)
		}
	}
	closeQueue()
	wg.Wait()
	stream := time.Since(t1)
	streamCalls := calls(s)

	// What the stream looked like, and the action's answers under the faults.
	statuses := map[int]int{}
	var slowest time.Duration
	failedPairs, faultsFired, selfRemoved := 0, 0, 0
	for _, r := range results {
		if !assert.NoError(t, r.Err) {
			continue
		}
		statuses[r.Status]++
		slowest = max(slowest, r.Elapsed)
		for _, ps := range pairs(r.Body) {
			for _, p := range ps {
				// No certificate is imported during the stream, so no copy has a
				// duplicate: a removed "duplicate" is a copy lost.
				if rd, _ := p["removed_duplicates"].([]any); len(rd) > 0 {
					selfRemoved++
					if !bugRepeatedListingEntry {
						t.Errorf("a delivery removed %v while keeping %v: no duplicate can exist in this stream", rd, p["copy_crn"])
					}
				}
				if p["outcome"] != "failed" {
					continue
				}
				failedPairs++
				msg, _ := p["message"].(string)
				if bugRepeatedListingEntry && p["error_class"] == "permanent" && strings.Contains(msg, "404") {
					continue // a racing activation deleted the copy (bugRepeatedListingEntry)
				}
				// A fault may fail a copy, never make a wrong one.
				assert.Equal(t, "retryable", p["error_class"], "a failed pair: %s", msg)
			}
		}
	}
	for _, q := range s.Sim.Requests() {
		if q.Op != cmsim.OpIAMToken && q.Instance != s.Source && (q.Status == 0 || q.Status == 503) {
			faultsFired++
		}
	}
	for st := range statuses {
		assert.Contains(t, []int{200, 502}, st, "every delivery is answered 200 (copied) or 502 (a copy failed)")
	}
	assert.Less(t, slowest, 50*time.Second, "every web activation answers within its 50 s cap")
	assert.Greater(t, faultsFired, calls(s)/10, "faults fired on about a fifth of the backup calls")

	// Faults cleared, one reconcile completes the job.
	s.Sim.ClearFaults()
	t2 := time.Now()
	final := runReconcile(t, s, map[string]any{"concurrency": "16"})
	last := time.Since(t2)
	problems := assertMirror(t, s)
	verify := runReconcile(t, s, map[string]any{"mode": "verify"})
	assert.Equal(t, true, verify["match"], "verify agrees")

	if selfRemoved > 0 {
		t.Logf("KNOWN BUG bugRepeatedListingEntry: %d deliveries deleted the copy they had just verified (a listing repeated it); the final reconcile re-imported them", selfRemoved)
	}
	t.Logf("soak: %d certificates (%d ordered), %d changed in %d rounds (%d twice); seeded in %s, initial reconcile %s",
		n, (n+3)/4, changed, rounds, twice, fmtDur(seeded), fmtDur(initial))
	t.Logf("soak: %d deliveries in %s on %d exec processes: statuses %v, %d failed pairs, slowest answer %s; %d API calls after the initial reconcile, %d failed by a fault",
		len(results), fmtDur(stream), workers, sortedCounts(statuses), failedPairs, fmtDur(slowest), streamCalls, faultsFired)
	t.Logf("soak: final reconcile %s: counts %v; mirror problems %d; total %s", fmtDur(last), final["counts"], problems, fmtDur(time.Since(start)))
}

// calls counts the backup API calls logged since the last ResetLog.
func calls(s *harness.Stack) int {
	n := 0
	for _, q := range s.Sim.Requests() {
		for _, b := range s.Backups {
			if q.Instance == b {
				n++
			}
		}
	}
	return n
}

func sortedCounts(m map[int]int) string {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	out := ""
	for _, k := range ks {
		out += fmt.Sprintf("%d×%d ", k, m[k])
	}
	return out
}
