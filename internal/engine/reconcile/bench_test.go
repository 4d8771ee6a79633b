//go:build unix

package reconcile

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// BenchmarkReconcile1000 reconciles a source of 1000 certificates into a mirrored
// backup, with 0, 10 or 1000 of them renewed before each run, against the naive
// approach (download every source certificate and write it into the backup), at a
// simulated latency of 2 ms (where CPU overhead shows) and 20 ms (closer to a real
// round trip). The simulator answers every request after that latency, so that the
// number and the overlap of calls decide the time, as with the real service.
//
// Metrics:
//   - calls/op, downloads/op, lists/op: HTTP requests the simulator answered.
//   - cpu-ms/op: CPU time of the whole process (the client and the simulator, which
//     share the machine's 2 cores) during the run, from getrusage: robust to a noisy
//     machine, unlike wall time.
//   - conns/op: TCP connections the simulator accepted during the run (each one is a
//     TCP and a TLS handshake, two more round trips, against the real service).
//   - wall/ideal: the run's wall time over the network floor of its calls:
//     ideal = latency × (IAM calls + pages of the longest listing +
//     ⌈units / concurrency⌉ × calls per unit),
//     where a unit is one certificate that needs work (its source is downloaded once:
//     units = source downloads) and calls per unit = work calls / units. Listing
//     pages are sequential by nature (each page carries the cursor of the next); the
//     source and the backup are listed at the same time; the calls of one unit
//     (download, write, read back) wait for each other, units overlap up to the
//     concurrency. 1.0 is a run that only waits for the network.
//   - naive/wall: the naive sync's wall time over this run's, both measured in the
//     same benchmark run (the naive sync is timed in the "naive" sub-benchmark of the
//     same latency, or once here if that one was filtered out).
//
// Run: go test -run '^$' -bench Reconcile1000 -benchtime 3x -benchmem ./internal/engine/reconcile
func BenchmarkReconcile1000(b *testing.B) {
	const concurrency = 8
	for _, latency := range []time.Duration{2 * time.Millisecond, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("lat=%s", latency), func(b *testing.B) {
			bw := newBenchWorld(b, latency)
			var naiveWall time.Duration // mean of the last naive measurement at this latency
			b.Run("naive", func(b *testing.B) {
				var wall time.Duration
				var calls, downloads int
				for range b.N {
					b.StopTimer()
					bw.renew(b, 10)
					b.StartTimer()
					w, c, d := bw.timeNaive(b, concurrency)
					wall += w
					calls += c
					downloads += d
				}
				n := float64(b.N)
				naiveWall = wall / time.Duration(b.N)
				b.ReportMetric(float64(calls)/n, "calls/op")
				b.ReportMetric(float64(downloads)/n, "downloads/op")
			})
			for _, changed := range []int{0, 10, 1000} {
				b.Run(fmt.Sprintf("changed=%d", changed), func(b *testing.B) {
					var wall, ideal, cpu time.Duration
					var calls, downloads, lists, conns int
					b.ResetTimer()
					for range b.N {
						b.StopTimer()
						bw.renew(b, changed)
						b.StartTimer()

						start, cpu0 := time.Now(), cpuTime()
						rep := Run(context.Background(), bw.main(), Options{Concurrency: concurrency})
						elapsed, cpu1 := time.Since(start), cpuTime()

						b.StopTimer()
						if !rep.Match || rep.SourceDownloads != changed {
							b.Fatalf("run did not converge: match=%t source_downloads=%d failures=%v deferred=%v",
								rep.Match, rep.SourceDownloads, rep.Failures, rep.Deferred)
						}
						wall += elapsed
						cpu += cpu1 - cpu0
						s := bw.stats(rep.SourceDownloads)
						ideal += s.ideal(latency, concurrency)
						calls += s.calls
						downloads += s.downloads
						lists += s.lists
						conns += int(bw.conns.Load())
						b.StartTimer()
					}
					b.StopTimer()
					n := float64(b.N)
					b.ReportMetric(float64(calls)/n, "calls/op")
					b.ReportMetric(float64(downloads)/n, "downloads/op")
					b.ReportMetric(float64(lists)/n, "lists/op")
					b.ReportMetric(float64(conns)/n, "conns/op")
					b.ReportMetric(float64(cpu)/n/1e6, "cpu-ms/op")
					b.ReportMetric(float64(wall)/float64(ideal), "wall/ideal")
					if naiveWall == 0 {
						bw.renew(b, 10)
						w, _, _ := bw.timeNaive(b, concurrency)
						naiveWall = w
					}
					b.ReportMetric(float64(naiveWall)/(float64(wall)/n), "naive/wall")
				})
			}
		})
	}
}

// BenchmarkList1000 lists one instance of 1000 certificates (6 pages of 200; the
// sixth is empty, since the fifth is full) with the client the reconcile uses, at 0
// and 20 ms simulated latency, from two servers: "simulator" (it builds, sorts and
// encodes every page on request) and "replay" (the simulator's own answers, recorded
// once and written back byte for byte after the same latency), so that the time a
// page costs beyond the latency splits into the simulator's share (test
// infrastructure) and the client's (our code: HTTP, go-sdk-core, JSON decoding).
//
// Metrics: overhead-ms/page, (wall − pages × latency) / pages; cpu-ms/page, the
// process's CPU time per page (client and server).
//
// Run: go test -run '^$' -bench List1000 -benchmem ./internal/engine/reconcile
func BenchmarkList1000(b *testing.B) {
	for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
		bw := newBenchWorld(b, latency)
		replay := newReplay(b, bw, latency)
		for _, server := range []string{"simulator", "replay"} {
			b.Run(fmt.Sprintf("lat=%s/%s", latency, server), func(b *testing.B) {
				client := bw.client
				if server == "replay" {
					client = replay
				}
				ctx := context.Background()
				// The first listing gets the IAM token and fills the replay.
				if _, err := client.ListCertificates(ctx, bw.source); err != nil {
					b.Fatal(err)
				}
				bw.sim.ResetLog()
				pages := 0
				var cpu time.Duration
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					cpu0 := cpuTime()
					got, err := client.ListCertificates(ctx, bw.source)
					cpu += cpuTime() - cpu0
					if err != nil || len(got) != 1000 {
						b.Fatalf("listed %d certificates: %v", len(got), err)
					}
					pages += 1000/cms.PageSize + 1
				}
				b.StopTimer()
				per := float64(pages)
				b.ReportMetric((float64(b.Elapsed())-per*float64(latency))/per/1e6, "overhead-ms/page")
				b.ReportMetric(float64(cpu)/per/1e6, "cpu-ms/page")
			})
		}
	}
}

// newReplay returns a client of a server that answers each list request with the
// simulator's answer to the same request, recorded the first time, after latency;
// everything else goes to the simulator.
func newReplay(tb testing.TB, bw *benchWorld, latency time.Duration) *cms.Client {
	tb.Helper()
	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	recorded := map[string]answer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/certificates") {
			bw.sim.ServeHTTP(w, r)
			return
		}
		key := r.URL.RequestURI()
		mu.Lock()
		a, ok := recorded[key]
		mu.Unlock()
		if !ok {
			rec := httptest.NewRecorder()
			bw.sim.ServeHTTP(rec, r)
			a = answer{rec.Code, rec.Header(), rec.Body.Bytes()}
			mu.Lock()
			recorded[key] = a
			mu.Unlock()
		} else {
			time.Sleep(latency)
		}
		for k, v := range a.header {
			w.Header()[k] = v
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	}))
	tb.Cleanup(srv.Close)
	endpoints := map[string]string{}
	for _, r := range regions {
		endpoints[r] = bw.sim.RegionURL(srv.URL, r)
	}
	c, err := cms.New(cms.Config{APIKey: testAPIKey, IAMURL: bw.sim.IAMURL(srv.URL), Endpoints: endpoints})
	require.NoError(tb, err)
	return c
}

// benchWorld is a world of one source of 1000 certificates mirrored into one backup,
// whose simulator counts the TCP connections it accepts.
type benchWorld struct {
	*world
	srcs  []string
	skew  atomic.Int64
	conns atomic.Int64
}

func newBenchWorld(tb testing.TB, latency time.Duration) *benchWorld {
	tb.Helper()
	bw := &benchWorld{}
	// The simulator's clock moves a minute and a second per run (renew), so that its
	// limit of 5 reimports a minute per certificate never answers 429 however many
	// runs there are; tokens live long enough for that clock.
	sim, err := cmsim.New(cmsim.Options{
		Now:           func() time.Time { return time.Now().Add(time.Duration(bw.skew.Load())) },
		TokenLifetime: 24 * time.Hour,
	})
	require.NoError(tb, err)
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			bw.conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	w := &world{sim: sim, srv: srv, ca: sim.CA()}
	w.source = w.addInstance(regions[0])
	w.backups = []string{w.addInstance(regions[1])}
	endpoints := map[string]string{}
	for _, r := range regions {
		endpoints[r] = sim.RegionURL(srv.URL, r)
	}
	w.client, err = cms.New(cms.Config{
		APIKey: testAPIKey, IAMURL: sim.IAMURL(srv.URL), Endpoints: endpoints,
		MaxRetries: 2, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond,
	})
	require.NoError(tb, err)
	bw.world = w
	bw.srcs = mirrorThousand(tb, w, 1000)
	sim.SetLatency(latency)
	return bw
}

// renew renews the first n source certificates and starts a new measurement: the
// clock moves on, the request log and the connection count are cleared.
func (bw *benchWorld) renew(tb testing.TB, n int) {
	tb.Helper()
	for _, s := range bw.srcs[:n] {
		bw.world.renew(tb, s)
	}
	bw.skew.Add(int64(time.Minute + time.Second))
	bw.sim.ResetLog()
	bw.conns.Store(0)
}

// runStats is what the simulator saw of one run.
type runStats struct {
	calls, downloads, lists int
	iam                     int // IAM token requests
	pages                   int // list pages of the longest listing
	units                   int // certificates that needed work
	work                    int // calls that are neither IAM nor listing
}

func (bw *benchWorld) stats(units int) runStats {
	s := runStats{
		calls:     bw.sim.Count("", ""),
		downloads: bw.sim.Count(cmsim.OpDownload, ""),
		lists:     bw.sim.Count(cmsim.OpList, ""),
		iam:       bw.sim.Count(cmsim.OpIAMToken, ""),
		units:     units,
	}
	for _, inst := range append([]string{bw.source}, bw.backups...) {
		s.pages = max(s.pages, bw.sim.Count(cmsim.OpList, inst))
	}
	s.work = s.calls - s.lists - s.iam
	return s
}

// ideal is the network floor of the run (see BenchmarkReconcile1000).
func (s runStats) ideal(latency time.Duration, concurrency int) time.Duration {
	rounds := float64(s.iam + s.pages)
	if s.units > 0 {
		perUnit := float64(s.work) / float64(s.units)
		rounds += float64((s.units+concurrency-1)/concurrency) * perUnit
	}
	return time.Duration(rounds * float64(latency))
}

// timeNaive times one naive sync, whose cost does not depend on how many certificates
// changed, and returns what the simulator saw of it. The caller renews first.
func (bw *benchWorld) timeNaive(tb testing.TB, concurrency int) (wall time.Duration, calls, downloads int) {
	tb.Helper()
	start := time.Now()
	naiveSync(tb, bw.world, concurrency)
	wall = time.Since(start)
	return wall, bw.sim.Count("", ""), bw.sim.Count(cmsim.OpDownload, "")
}

// naiveSync is the baseline: list both instances, then download every source
// certificate and reimport it into its copy (import when there is none), with the same
// concurrency. It does not even read the copies back, so it is cheaper than a fair
// naive run would be.
func naiveSync(tb testing.TB, w *world, concurrency int) {
	tb.Helper()
	ctx := context.Background()
	src, err := w.client.ListCertificates(ctx, w.source)
	if err != nil {
		tb.Fatal(err)
	}
	bk, err := w.client.ListCertificates(ctx, w.backups[0])
	if err != nil {
		tb.Fatal(err)
	}
	ebk := make([]engine.Certificate, len(bk))
	for i, c := range bk {
		ebk[i] = cms.ToEngine(c)
	}
	ix := match.NewIndex(match.NewOwner(testAPIKey), w.backups[0], ebk)
	jobs := make(chan cms.Certificate)
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for s := range jobs {
				d, err := w.client.Download(ctx, s.ID)
				if err == nil {
					if f := ix.Lookup(match.Subject{Certificate: cms.ToEngine(s), Origin: s.ID}); f.Copy != nil {
						_, err = w.client.Reimport(ctx, f.Copy.ID, d.Data)
					} else {
						_, err = w.client.Import(ctx, w.backups[0], cms.ImportRequest{
							Name: s.Name, Description: cms.CopyDescription(match.NewOwner(testAPIKey), w.backups[0], "", s), Data: d.Data,
						})
					}
				}
				if err != nil {
					failures.Add(1)
				}
			}
		})
	}
	for _, s := range src {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		tb.Fatalf("naive sync: %d certificates failed", n)
	}
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
