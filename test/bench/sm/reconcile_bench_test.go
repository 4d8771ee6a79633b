//go:build linux

package sm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// BenchmarkSMReconcile10000: the reconcile of a Secrets Manager source of 10 000
// certificates mirrored in a Secrets Manager backup, nothing changed, as a Code Engine
// job runs it: a new App per run (IAM token, the backup's preflight check, then the
// source and the backup listed at the same time, in pages of 1000), at 20 ms per
// request, with the client's ceiling of 20 requests a second per instance (rps=20,
// the default) and raised to 1000 (rps=1000: what the limiter costs).
//
// Metrics: calls/op, pages (list pages of the longest listing, the preflight's probe
// not counted), iam/op, probe/op; wall/network = wall ÷ (latency × (IAM + pages)), the
// issue's floor; wall/paced = wall ÷ the floor under the limiter (pacedSpan) of the
// busiest instance's calls (probe and pages, one after the other); cpu-ms/op,
// the process's CPU time (client and simulator). Nothing may be written or downloaded
// (checked).
//
// Run: go test -run '^$' -bench SMReconcile10000 -benchtime 3x ./test/bench/sm
func BenchmarkSMReconcile10000(b *testing.B) {
	const n = 10_000
	w := &appWorld{}
	w.sm, _ = startSM(b, 0)
	w.src = addSM(w.sm, "us-south", smsim.SecretsReader)
	w.bks = []string{addSM(w.sm, "eu-de", smsim.Manager)}
	names := make([]string, n)
	material := make([]*testpki.Issued, n)
	for i := range n {
		names[i], material[i] = fmt.Sprintf("site-%05d", i), certPool()[i%len(certPool())]
		w.ids = append(w.ids, seedSM(b, w.sm, w.src, names[i], material[i]))
	}
	mirrorSM(b, w.sm, w.bks[0], w.ids, names, material)
	ctx := context.Background()
	for _, rps := range []int{ceiling, 1000} {
		b.Run(fmt.Sprintf("rps=%d", rps), func(b *testing.B) {
			cfg := w.config(b, rps)
			var wall, cpu, floor, paced time.Duration
			var calls, pages, iam, probes int
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				a, err := app.New(cfg, app.Deps{HTTPClient: httpClient()})
				if err != nil {
					b.Fatal(err)
				}
				w.sm.SetLatency(benchLatency)
				time.Sleep(100 * time.Millisecond)
				w.sm.ResetLog()
				b.StartTimer()

				start, cpu0 := time.Now(), cpuTime()
				rep := a.Reconcile(ctx, config.ModeReconcile, app.RunOptions(cfg, nil))
				elapsed, cpu1 := time.Since(start), cpuTime()

				b.StopTimer()
				w.sm.SetLatency(0)
				if !rep.OK() || !rep.Match || rep.SourceCertificates != n || rep.SourceDownloads != 0 || w.sm.Writes("") != 0 {
					b.Fatalf("not a listing-only run: ok=%t match=%t source=%d downloads=%d writes=%d counts=%v error=%s",
						rep.OK(), rep.Match, rep.SourceCertificates, rep.SourceDownloads, w.sm.Writes(""), rep.Counts, rep.Error)
				}
				per := map[string]int{}
				probe := map[string]int{}
				c := countSM(w.sm)
				for _, r := range w.sm.Requests() {
					if r.Op == smsim.OpListSecrets {
						if strings.Contains(r.Query, "limit=1000") {
							per[r.Instance]++
						} else {
							probe[r.Instance]++
						}
					}
				}
				p := max(per[w.src], per[w.bks[0]])
				busiest := max(per[w.src]+probe[w.src], per[w.bks[0]]+probe[w.bks[0]])
				wall += elapsed
				cpu += cpu1 - cpu0
				calls, pages, iam, probes = calls+c.total, pages+p, iam+c.iam, probes+probe[w.src]+probe[w.bks[0]]
				floor += time.Duration(c.iam+p) * benchLatency
				span := time.Duration(busiest) * benchLatency
				if rps == ceiling {
					span = pacedSpan(busiest, benchLatency)
				}
				paced += time.Duration(c.iam)*benchLatency + span
				b.StartTimer()
			}
			b.StopTimer()
			f := float64(b.N)
			b.ReportMetric(float64(calls)/f, "calls/op")
			b.ReportMetric(float64(pages)/f, "pages")
			b.ReportMetric(float64(iam)/f, "iam/op")
			b.ReportMetric(float64(probes)/f, "probe/op")
			b.ReportMetric(float64(wall)/float64(floor), "wall/network")
			b.ReportMetric(float64(wall)/float64(paced), "wall/paced")
			b.ReportMetric(float64(cpu)/f/1e6, "cpu-ms/op")
		})
	}
}

// BenchmarkSMFirstCopy1000: the first reconcile of a Secrets Manager source of 1000
// certificates into an empty Secrets Manager backup (a new one per run), as a Code
// Engine job runs it (a new App, default concurrency), at 20 ms per request, with the
// client's default ceiling of 20 requests a second per instance and the simulator
// answering 429 above 20 a second (Options.RateLimit). The floor is the ceiling's:
// the calls to the busiest instance ÷ 20 a second.
//
// Metrics: calls/op, src-calls/op, bk-calls/op, 429/op (must be 0), peak-rate (the
// most requests one instance received within a second), floor-s and wall/floor.
//
// Run: go test -run '^$' -bench SMFirstCopy1000 -benchtime 1x ./test/bench/sm
func BenchmarkSMFirstCopy1000(b *testing.B) {
	const n = 1000
	w := &appWorld{}
	w.sm, _ = startSM(b, ceiling)
	w.src = addSM(w.sm, "us-south", smsim.SecretsReader)
	for i := range n {
		w.ids = append(w.ids, seedSM(b, w.sm, w.src, fmt.Sprintf("site-%04d", i), certPool()[i%len(certPool())]))
	}
	ctx := context.Background()
	var wall, floor time.Duration
	var calls, src, bk, limited, peak int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w.bks = []string{addSM(w.sm, "eu-de", smsim.Manager)}
		cfg := w.config(b, ceiling)
		a, err := app.New(cfg, app.Deps{HTTPClient: httpClient()})
		if err != nil {
			b.Fatal(err)
		}
		w.sm.SetLatency(benchLatency)
		time.Sleep(1100 * time.Millisecond) // the simulator's window of the source is empty
		w.sm.ResetLog()
		b.StartTimer()

		start := time.Now()
		rep := a.Reconcile(ctx, config.ModeReconcile, app.RunOptions(cfg, nil))
		elapsed := time.Since(start)

		b.StopTimer()
		w.sm.SetLatency(0)
		if !rep.OK() || rep.Counts["imported"] != n {
			b.Fatalf("first copy: ok=%t counts=%v failures=%d deferred=%d error=%s", rep.OK(), rep.Counts, len(rep.Failures), len(rep.Deferred), rep.Error)
		}
		c := countSM(w.sm)
		wall += elapsed
		calls, src, bk, limited = calls+c.total, src+c.per[w.src], bk+c.per[w.bks[0]], limited+c.status429
		floor += time.Duration(c.busiest()) * time.Second / ceiling
		peak = max(peak, w.sm.PeakRate(w.src, time.Second), w.sm.PeakRate(w.bks[0], time.Second))
		b.StartTimer()
	}
	b.StopTimer()
	f := float64(b.N)
	b.ReportMetric(float64(calls)/f, "calls/op")
	b.ReportMetric(float64(src)/f, "src-calls/op")
	b.ReportMetric(float64(bk)/f, "bk-calls/op")
	b.ReportMetric(float64(limited)/f, "429/op")
	b.ReportMetric(float64(peak), "peak-rate")
	b.ReportMetric(floor.Seconds()/f, "floor-s")
	b.ReportMetric(float64(wall)/float64(floor), "wall/floor")
}
