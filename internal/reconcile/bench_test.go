package reconcile

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/cms"
	"github.com/certbackup/certbackup/internal/match"
	"github.com/certbackup/certbackup/internal/simulator"
)

// BenchmarkReconcile1000 reconciles a source of 1000 certificates into a mirrored
// backup, with 0, 10 or 1000 of them renewed before each run, against the naive
// approach (download every source certificate and write it into the backup). The
// simulator answers every request after a fixed latency, so that the number and the
// overlap of calls decide the time, as with the real service.
//
// Metrics: calls/op and downloads/op (HTTP requests the simulator answered), and
// wall/ideal, the run's wall time over calls × latency / concurrency (1 = every call
// overlapped perfectly; listing pages are sequential by nature, so a run made of list
// calls only sits well above 1).
//
// Run: go test -run '^$' -bench Reconcile1000 -benchtime 3x ./internal/reconcile
func BenchmarkReconcile1000(b *testing.B) {
	const (
		latency     = 2 * time.Millisecond
		concurrency = 8
	)
	cases := []struct {
		name    string
		changed int
		naive   bool
	}{
		{name: "changed=0", changed: 0},
		{name: "changed=10", changed: 10},
		{name: "changed=1000", changed: 1000},
		{name: "naive", changed: 10, naive: true},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			// The simulator's clock moves a minute and a second per iteration, so that
			// its limit of 5 reimports a minute per certificate never answers 429 however
			// large b.N is (b.N stays small: one iteration takes a second or more).
			var skew atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			w := newWorldWith(b, 1, simulator.Options{Now: now, TokenLifetime: 24 * time.Hour})
			srcs := mirrorThousand(b, w, 1000)
			w.sim.SetLatency(latency)

			var wall time.Duration
			var calls, downloads int
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, s := range srcs[:bc.changed] {
					w.renew(b, s)
				}
				skew.Add(int64(time.Minute + time.Second))
				w.sim.ResetLog()
				b.StartTimer()

				start := time.Now()
				if bc.naive {
					naiveSync(b, w, concurrency)
				} else {
					rep := Run(context.Background(), w.main(), Options{Concurrency: concurrency})
					if !rep.Match || rep.SourceDownloads != bc.changed {
						b.Fatalf("run did not converge: match=%t source_downloads=%d failures=%v deferred=%v",
							rep.Match, rep.SourceDownloads, rep.Failures, rep.Deferred)
					}
				}
				wall += time.Since(start)

				b.StopTimer()
				calls += w.sim.Count("", "")
				downloads += w.sim.Count(simulator.OpDownload, "")
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(calls)/n, "calls/op")
			b.ReportMetric(float64(downloads)/n, "downloads/op")
			if ideal := time.Duration(calls) * latency / concurrency; ideal > 0 {
				b.ReportMetric(float64(wall)/float64(ideal), "wall/ideal")
			}
		})
	}
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
	ix := match.NewIndex(bk)
	jobs := make(chan cms.Certificate)
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for s := range jobs {
				d, err := w.client.Download(ctx, s.ID)
				if err == nil {
					if f := ix.Lookup(s.ID, s.Name); f.Copy != nil {
						_, err = w.client.Reimport(ctx, f.Copy.ID, d.Data)
					} else {
						_, err = w.client.Import(ctx, w.backups[0], cms.ImportRequest{
							Name: s.Name, Description: match.CopyDescription(s.Description, s.ID), Data: d.Data,
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
