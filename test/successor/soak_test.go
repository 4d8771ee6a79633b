package successor

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/test/harness"
)

// soakSeed makes the soak repeatable: the choice of certificates, the order of the
// deliveries and the simulators' faults all draw from it. (Which call a fault hits
// still depends on the interleaving of the concurrent requests.)
const soakSeed = 20260611

// soakFaults are the failures each backup answers, a fifth of its calls in all: each
// entry's share of every call, tried in this order. 429s carry Retry-After: 0 (a
// Retry-After of a second would hold the instance for a second each time: that the
// wait is honoured is TestFaultsStopNothingElse's business), timeouts are longer than
// the client waits, and a 500 after the write leaves the client not knowing that its
// create or new version was made.
var soakFaults = []struct {
	share float64
	f     smsim.Fault
}{
	{0.05, smsim.Fault{Status: http.StatusTooManyRequests, RetryAfter: "0"}},
	{0.04, smsim.Fault{Status: http.StatusServiceUnavailable}},
	{0.04, smsim.Fault{Status: http.StatusInternalServerError, AfterOp: true}},
	{0.04, smsim.Fault{Drop: true}},
	{0.02, smsim.Fault{Drop: true, AfterOp: true}},
	{0.01, smsim.Fault{Delay: 2500 * time.Millisecond}},
}

// injectSoakFaults makes every backup fail a fifth of its calls.
func injectSoakFaults(w *world) float64 {
	total := 0.0
	for _, b := range w.backups {
		left := 1.0
		total = 0
		for _, sf := range soakFaults {
			f := sf.f
			f.Instance, f.Probability = b, sf.share/left
			w.cloud.SM.Inject(f)
			left -= sf.share
			total += sf.share
		}
	}
	return total
}

// TestSoak: for both pairs, a source of 1000 certificates (200 with -short) of every
// kind, mirrored into two Secrets Manager backups by the job's reconcile; then the
// backups fail a fifth of their calls (429, 503, 500 after the write, connection
// resets before and after the write, timeouts) while the source changes in rounds:
// renewals and new certificates, delivered to the application with duplicates, out of
// order and replayed (Event Notifications batches of 1 to 100 secrets, or Certificate
// Manager notifications), by eight senders at once; then a reconcile of the job, still
// under the faults. At no point is a copy lost or duplicated, and a fault never makes a
// wrong copy or a failure that needs an operator. With the faults gone, one reconcile
// leaves every backup with exactly one copy of every certificate holding its newest
// material; verify matches; and a reconcile of the unchanged source costs listings
// only.
func TestSoak(t *testing.T) {
	t.Parallel()
	for _, kind := range pairs {
		t.Run(pairName(kind), func(t *testing.T) {
			t.Parallel()
			soak(t, kind)
		})
	}
}

func soak(t *testing.T, kind string) {
	// A cold application lists both backups for every secret it has not seen (two
	// pages of 1000 secrets, decoded by IBM's SDK): that, not the copies, is most of
	// the soak's CPU.
	n, changed, created, rounds := 1000, 40, 20, 4
	switch {
	case testing.Short() && raceEnabled: // CI's race run
		n, changed, created, rounds = 200, 16, 8, 2
	case testing.Short():
		n, changed, created, rounds = 200, 30, 15, 3
	case raceEnabled:
		changed, created, rounds = 20, 10, 2
	}
	const senders = 8
	start := time.Now()
	rng := rand.New(rand.NewPCG(soakSeed, soakSeed))
	w := newWorld(t, kind, 2, harness.CloudOptions{SM: smsim.Options{Seed: soakSeed}, CM: cmsim.Options{Seed: soakSeed}})
	kinds := []string{imported, imported, imported, publicBundled, publicPlain, private}
	if kind == fromCM {
		kinds = []string{imported, imported, imported, ordered}
	}
	var srcs []string
	add := func() string {
		i := len(srcs)
		id := w.add(t, fmt.Sprintf("soak-%04d", i), kinds[i%len(kinds)])
		srcs = append(srcs, id)
		return id
	}
	// The source ends with n certificates (Certificate Manager holds at most 1000).
	for range n - created {
		add()
	}
	mirrored := slices.Clone(srcs)
	seeded := time.Since(start)

	// The job (a Code Engine job run, or the terminal command) and the application
	// (exec serve) are separate processes with separate caches: separate Apps here.
	params := map[string]any{"max_requests_per_second": "1000", "concurrency": "16"}
	job := w.core(t, config.ModeReconcile, params, fastDeps(2*time.Second))
	application := w.core(t, config.ModeNotify, params, fastDeps(2*time.Second))
	opts := reconcile.Options{Concurrency: 16}
	t0 := time.Now()
	initial := job.reconcile(t, config.ModeReconcile, opts)
	require.True(t, initial.OK(), "the initial reconcile: %s %+v", initial.Error, first(initial.Failures))
	require.Equal(t, len(mirrored)*len(w.backups), initial.Counts["imported"])
	initialTook := time.Since(t0)

	w.cloud.SM.SetSeed(soakSeed)
	share := injectSoakFaults(w)
	w.resetLogs()

	type sent struct {
		body []byte
		a    answer
		took time.Duration
	}
	var (
		mu      sync.Mutex
		answers []sent
		wg      sync.WaitGroup
	)
	queue := make(chan []byte, 4096)
	closeQueue := sync.OnceFunc(func() { close(queue) })
	defer closeQueue()
	for range senders {
		wg.Go(func() {
			for body := range queue {
				t1 := time.Now()
				var a answer
				if kind == fromCM {
					ev, ids, _ := strings.Cut(string(body), " ")
					a = application.notify(t, ev, strings.Fields(ids)...)
				} else {
					a = application.events(t, body)
				}
				mu.Lock()
				answers = append(answers, sent{body, a, time.Since(t1)})
				mu.Unlock()
			}
		})
	}

	// The stream: each changed certificate changes in one round, once or twice; new
	// certificates appear in every round.
	perm := rng.Perm(len(mirrored))[:changed]
	var deliveries [][]byte // SM: envelopes; CM: "<event> <certificate CRN>"
	twice := 0
	t1 := time.Now()
	for round := range rounds {
		var rotated, fresh []string
		for _, i := range perm[round*changed/rounds : (round+1)*changed/rounds] {
			times := 1
			if rng.IntN(10) < 3 {
				times, twice = 2, twice+1
			}
			for range times {
				w.rotate(t, srcs[i])
			}
			rotated = append(rotated, srcs[i])
		}
		for range (round+1)*created/rounds - round*created/rounds {
			fresh = append(fresh, add())
		}
		these := deliveriesOf(w, rng, "secret_rotated", "cert_renewed", rotated)
		these = append(these, deliveriesOf(w, rng, "secret_created", "cert_issued", fresh)...)
		// Duplicates of this round, replays of earlier rounds.
		for _, d := range these {
			if rng.IntN(3) == 0 {
				these = append(these, d)
			}
		}
		for range len(these) / 5 {
			if len(deliveries) > 0 {
				these = append(these, deliveries[rng.IntN(len(deliveries))])
			}
		}
		rng.Shuffle(len(these), func(a, b int) { these[a], these[b] = these[b], these[a] })
		for _, d := range these {
			queue <- d
		}
		deliveries = append(deliveries, these...)
	}
	closeQueue()
	wg.Wait()
	stream := time.Since(t1)

	statuses := map[int]int{}
	var slowest time.Duration
	failedPairs, left := 0, 0
	for _, s := range answers {
		statuses[s.a.Status]++
		slowest = max(slowest, s.took)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadGateway, http.StatusServiceUnavailable}, s.a.Status, "%v", s.a.Body)
		l, _ := s.a.Body["left_for_retry"].([]any)
		left += len(l)
		for _, r := range s.a.results() {
			if r["outcome"] == "failed" {
				failedPairs++
				assert.Equal(t, engine.ClassRetryable, r["error_class"], "a fault may fail a copy, never make a wrong one nor one that needs an operator: %v", r)
				continue
			}
			assert.Equal(t, true, r["verified"], "%v", r)
		}
		if s.a.Status == http.StatusOK {
			assert.Empty(t, l)
		}
	}
	if kind == fromSM && !raceEnabled {
		// The application answers by its budget (app.EventsBudget, 8 s), but the work in
		// flight then still finishes its CPU-bound decoding of listings, which here
		// shares two cores with eight senders, the other soak and the simulators. The
		// 10 s of Event Notifications is held to in test/codeengine, against the real
		// binary, and by TestFaultsStopNothingElse; here, nothing runs away.
		assert.Less(t, slowest, app.EventsBudget+4*time.Second, "every notification is answered about when its budget ends")
	}
	afterStream := w.copyCounts(t, srcs)
	lost := w.lostCopies(t, mirrored, afterStream)

	t2 := time.Now()
	underFaults := job.reconcile(t, config.ModeReconcile, opts)
	assertFaultClasses(t, underFaults)
	underFaultsTook := time.Since(t2)
	afterReconcile := w.copyCounts(t, srcs)
	lost += w.lostCopies(t, mirrored, afterReconcile)
	faultsFired := 0
	for _, q := range w.cloud.SM.Requests() {
		if q.Instance != w.source && q.Op != smsim.OpIAMToken && (q.Status == 0 || q.Status >= 429) {
			faultsFired++
		}
	}

	// The faults gone, one reconcile completes the job.
	w.cloud.SM.ClearFaults()
	time.Sleep(soakFaults[len(soakFaults)-1].f.Delay) // the last delayed writes land
	t3 := time.Now()
	final := job.reconcile(t, config.ModeReconcile, opts)
	finalTook := time.Since(t3)
	assert.True(t, final.OK(), "the final reconcile completes: error %q, failures %+v, deferred %d", final.Error, first(final.Failures), len(final.Deferred))
	assert.Zero(t, final.Counts[reconcile.Deduplicated], "no duplicate was left to remove: %v", final.Counts)
	problems := w.assertMirror(t)
	v := job.reconcile(t, config.ModeVerify, opts)
	assert.True(t, v.Match, "verify matches")

	// An unchanged source: listings only.
	w.resetLogs()
	t4 := time.Now()
	idle := job.reconcile(t, config.ModeReconcile, opts)
	idleTook := time.Since(t4)
	assert.True(t, idle.OK())
	assert.Equal(t, len(srcs)*len(w.backups), idle.Counts["unchanged"], "%v", idle.Counts)
	w.listingsOnly(t, "a reconcile of an unchanged source")
	lists := 0
	for _, b := range w.backups {
		lists += w.cloud.SM.Count(smsim.OpListSecrets, b)
	}

	t.Logf("soak %s: %d certificates seeded in %v, mirrored by the job in %v", kind, n, seeded.Round(time.Millisecond), initialTook.Round(time.Millisecond))
	t.Logf("soak %s: under %.0f%% faults, %d renewed in %d rounds (%d twice) and %d created: %d deliveries in %v by %d senders: statuses %s, %d failed pairs, %d secrets left for retry, slowest answer %v; copies duplicated %d/%d, lost %d",
		kind, share*100, changed, rounds, twice, created, len(answers), stream.Round(time.Millisecond), senders, sortedCounts(statuses), failedPairs, left, slowest.Round(time.Millisecond), duplicates(afterStream), duplicates(afterReconcile), lost)
	t.Logf("soak %s: reconcile under the faults in %v: %v; %d backup calls failed by a fault", kind, underFaultsTook.Round(time.Millisecond), underFaults.Counts, faultsFired)
	t.Logf("soak %s: final reconcile %v: %v; mirror problems %d; unchanged reconcile %v with %d listings of the backups; total %v",
		kind, finalTook.Round(time.Millisecond), final.Counts, problems, idleTook.Round(time.Millisecond), lists, time.Since(start).Round(time.Millisecond))
}

// deliveriesOf are the notifications of event about ids: for a Secrets Manager source,
// Event Notifications envelopes in small batches and then in batches of up to 100 (the
// most Secrets Manager puts in one), each secret sometimes listed twice; for a
// Certificate Manager source, one notification per certificate.
func deliveriesOf(w *world, rng *rand.Rand, smEvent, cmEvent string, ids []string) [][]byte {
	var out [][]byte
	if w.kind == fromCM {
		for _, id := range ids {
			out = append(out, []byte(cmEvent+" "+id))
		}
		return out
	}
	var listed []string
	for _, id := range ids {
		listed = append(listed, id)
		if rng.IntN(4) == 0 {
			listed = append(listed, id)
		}
	}
	rng.Shuffle(len(listed), func(a, b int) { listed[a], listed[b] = listed[b], listed[a] })
	for rest := listed; len(rest) > 0; {
		k := min(len(rest), 1+rng.IntN(6))
		out = append(out, envelope(w.source, smEvent, "", rest[:k]...))
		rest = rest[k:]
	}
	for rest := listed; len(rest) > 0; {
		k := min(len(rest), 100)
		out = append(out, envelope(w.source, smEvent, "", rest[:k]...))
		rest = rest[k:]
	}
	return out
}

// lostCopies counts the certificates mirrored before the faults that a backup no
// longer holds a copy of.
func (w *world) lostCopies(t testing.TB, mirrored []string, counts map[pairKey]int) int {
	t.Helper()
	lost := 0
	for _, b := range w.backups {
		for _, src := range mirrored {
			if counts[pairKey{b, src}] == 0 {
				lost++
				if lost <= 10 {
					t.Errorf("the copy of %s in %s was lost", src, b)
				}
			}
		}
	}
	return lost
}

// assertFaultClasses: under faults a reconcile may defer and fail pairs, never for
// another reason than the faults (no verification failure, no invalid source).
func assertFaultClasses(t *testing.T, rep *reconcile.Report) {
	t.Helper()
	assert.Empty(t, rep.Error, "the run could plan")
	for _, f := range rep.Failures {
		assert.Contains(t, []string{engine.ClassRetryable}, f.ErrorClass, "a fault may fail a copy, never make a wrong one: %+v", f)
	}
}

type pairKey struct{ backup, src string }

// copyCounts counts the proven copies of each source certificate in each backup.
func (w *world) copyCounts(t testing.TB, srcs []string) map[pairKey]int {
	t.Helper()
	out := map[pairKey]int{}
	for _, b := range w.backups {
		all, err := w.cloud.SM.List(b)
		require.NoError(t, err)
		for _, s := range all {
			if m := markerOf(s); m != nil && w.proven(b, s) {
				out[pairKey{b, m.Source}]++
			}
		}
		for _, src := range srcs {
			out[pairKey{b, src}] += 0
		}
	}
	return out
}

func duplicates(counts map[pairKey]int) int {
	n := 0
	for _, c := range counts {
		if c > 1 {
			n += c - 1
		}
	}
	return n
}

func first(rs []reconcile.Result) []reconcile.Result {
	return rs[:min(len(rs), 3)]
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
