//go:build linux

package sm

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

// pairWorld is one source instance and one backup instance, each on the Certificate
// Manager ("cm") or the Secrets Manager ("sm") simulator, and the replication engine
// over them, built as app.New builds it (one client per provider and key, one HTTP
// client, the copy cache, the owner of the API key). It is warm once its first
// certificate is copied: IAM tokens, connections and the copy location are kept.
type pairWorld struct {
	srcKind, bkKind string
	cm              *cmsim.Simulator
	cmURL           string
	cmSkew          atomic.Int64
	sm              *smsim.Server
	src, bk         string
	eng             *replicate.Engine
	made            int
}

const (
	cmSource = "us-south"
	cmBackup = "eu-de"
)

func newPairWorld(tb testing.TB, srcKind, bkKind string, rps int) *pairWorld {
	tb.Helper()
	w := &pairWorld{srcKind: srcKind, bkKind: bkKind}
	if srcKind == "cm" || bkKind == "cm" {
		sim, err := cmsim.New(cmsim.Options{
			Now:           func() time.Time { return time.Now().Add(time.Duration(w.cmSkew.Load())) },
			TokenLifetime: 24 * time.Hour,
		})
		if err != nil {
			tb.Fatal(err)
		}
		srv := httptest.NewServer(sim)
		tb.Cleanup(srv.Close)
		sim.AddAPIKey(benchAPIKey)
		w.cm, w.cmURL = sim, srv.URL
	}
	if srcKind == "sm" || bkKind == "sm" {
		w.sm, _ = startSM(tb, 0)
	}
	switch srcKind {
	case "cm":
		w.src = w.cm.AddInstance(cmSource)
		w.cm.Grant(benchAPIKey, w.src, cmsim.Writer)
	default:
		w.src = addSM(w.sm, "us-south", smsim.SecretsReader)
	}
	switch bkKind {
	case "cm":
		w.bk = w.cm.AddInstance(cmBackup)
		w.cm.Grant(benchAPIKey, w.bk, cmsim.Manager)
	default:
		w.bk = addSM(w.sm, "eu-de", smsim.Manager)
	}
	hc := httpClient()
	tb.Cleanup(hc.CloseIdleConnections)
	var cmc *cms.Client
	var smc *secretsmanager.Client
	var err error
	if w.cm != nil {
		cmc, err = cms.New(cms.Config{APIKey: benchAPIKey, IAMURL: w.cm.IAMURL(w.cmURL), HTTPClient: hc, Endpoints: map[string]string{
			cmSource: w.cm.RegionURL(w.cmURL, cmSource), cmBackup: w.cm.RegionURL(w.cmURL, cmBackup),
		}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if w.sm != nil {
		smc, err = secretsmanager.New(secretsmanager.Config{
			APIKey: benchAPIKey, IAMURL: w.sm.IAMURL(), Endpoints: w.sm.Endpoints(), HTTPClient: hc, RequestsPerSecond: rps,
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	instance := func(kind, crn string) engine.Target {
		if kind == "cm" {
			return cms.Instance{Client: cmc, CRN: crn}
		}
		return secretsmanager.Instance{Client: smc, CRN: crn}
	}
	w.eng = &replicate.Engine{
		Source:  instance(srcKind, w.src),
		Targets: []engine.Target{instance(bkKind, w.bk)},
		Cache:   replicate.NewCopyCache(),
		Owner:   match.NewOwner(benchAPIKey),
	}
	return w
}

// newCert puts a new certificate into the source and returns its ID.
func (w *pairWorld) newCert(tb testing.TB) string {
	tb.Helper()
	w.made++
	name := fmt.Sprintf("site-%04d", w.made)
	is := benchCA().MustIssue(name + ".example.com")
	if w.srcKind == "cm" {
		return w.cm.Seed(w.src, name, "the "+name+" front end", is)
	}
	return seedSM(tb, w.sm, w.src, name, is)
}

// renew gives the source certificate a new certificate. Certificate Manager's clock
// moves on a minute, so that its 5 reimports a minute per certificate never answer 429.
func (w *pairWorld) renew(tb testing.TB, id string) {
	tb.Helper()
	if w.srcKind == "cm" {
		c, _ := w.cm.Get(id)
		is := benchCA().MustIssue(c.Domains...)
		if err := w.cm.Reimport(id, is.CertPEM, is.KeyPEM, is.Intermediate); err != nil {
			tb.Fatal(err)
		}
	} else {
		rotateSM(tb, w.sm, w.src, id)
	}
	w.cmSkew.Add(int64(time.Minute + time.Second))
}

func (w *pairWorld) setLatency(d time.Duration) {
	if w.cm != nil {
		w.cm.SetLatency(d)
	}
	if w.sm != nil {
		w.sm.SetLatency(d)
	}
}

func (w *pairWorld) resetLog() {
	if w.cm != nil {
		w.cm.ResetLog()
	}
	if w.sm != nil {
		w.sm.ResetLog()
	}
}

// calls is what the simulators answered since resetLog: to the source, to the backup,
// IAM, and the writes made.
func (w *pairWorld) calls() (src, bk, iam, writes int) {
	if w.cm != nil {
		src += w.cm.Count("", w.src)
		bk += w.cm.Count("", w.bk)
		iam += w.cm.Count(cmsim.OpIAMToken, "")
		writes += w.cm.Writes("")
	}
	if w.sm != nil {
		c := countSM(w.sm)
		src += c.per[w.src]
		bk += c.per[w.bk]
		iam += c.iam
		writes += w.sm.Writes("")
	}
	return src, bk, iam, writes
}

// BenchmarkCopy: one certificate copied by a warm process (the engine an App keeps:
// IAM tokens, connections, the copy cache) from a Certificate Manager or Secrets
// Manager source into a Certificate Manager or Secrets Manager backup, at 20 ms per
// request and the product's default ceiling of 20 requests a second per Secrets
// Manager instance. cm-cm is the reference (issue 7's path).
//
//   - new: a certificate the backup has never held (import, then the proof rewritten
//     to the copy's ID form, then read back);
//   - renewed: the source was renewed (the copy is rewritten and read back);
//   - replay: the same certificate again: nothing may be written (checked).
//
// Metrics: calls/op, src-calls/op, bk-calls/op, iam/op and writes/op (requests the
// simulators answered); rounds, the calls on the critical path (a warm copy reads the
// cached copy while it downloads the source: one round trip fewer); wall/network, the
// wall time over rounds × latency; wall/paced, over the floor under the Secrets Manager
// client's limiter (at most 20 requests to one instance in any 1.05 s: a copy's few
// calls are not held back, so it is the network floor); cpu-ms/op, the process's CPU
// time (engine and simulators). Each iteration that writes starts after an untimed pause
// longer than the limiter's window (isolated), as one event in a warm process does: the
// ceiling under sustained load is BenchmarkSMFirstCopy1000's. Run it with -timeout 30m.
//
// Run: go test -run '^$' -bench 'Copy' ./test/bench/sm
func BenchmarkCopy(b *testing.B) {
	benchCopy(b, ceiling)
}

// BenchmarkCopyUnpaced is BenchmarkCopy for the pairs with a Secrets Manager instance,
// with the client's ceiling raised to 1000 requests a second: the difference is
// what the limiter costs one copy.
func BenchmarkCopyUnpaced(b *testing.B) {
	benchCopy(b, 1000)
}

func benchCopy(b *testing.B, rps int) {
	for _, pair := range []struct{ src, bk string }{{"cm", "cm"}, {"cm", "sm"}, {"sm", "sm"}} {
		if rps != ceiling && pair.bk == "cm" && pair.src == "cm" {
			continue // no Secrets Manager instance: nothing is paced
		}
		for _, event := range []string{"new", "renewed", "replay"} {
			b.Run(pair.src+"-"+pair.bk+"/"+event, func(b *testing.B) {
				copyOnce(b, pair.src, pair.bk, rps, event, pair.bk == "sm" && rps == ceiling)
			})
		}
	}
}

func copyOnce(b *testing.B, srcKind, bkKind string, rps int, event string, paceBackup bool) {
	w := newPairWorld(b, srcKind, bkKind, rps)
	ctx := context.Background()
	// Warm-up without latency: IAM tokens, connections, and a first copy.
	id := w.newCert(b)
	if r := w.eng.ReplicateCertificate(ctx, id); r[0].Outcome != replicate.Imported {
		b.Fatalf("first copy: %+v", r[0])
	}
	want := map[string]replicate.Outcome{"new": replicate.Imported, "renewed": replicate.Reimported, "replay": replicate.Unchanged}[event]
	w.setLatency(benchLatency)

	var wall, floor, paced, cpu time.Duration
	var src, bk, iam, writes, rounds int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		switch event {
		case "new":
			id = w.newCert(b)
		case "renewed":
			w.renew(b, id)
		}
		time.Sleep(pause(event))
		w.resetLog()
		b.StartTimer()

		start, cpu0 := time.Now(), cpuTime()
		r := w.eng.ReplicateCertificate(ctx, id)
		elapsed, cpu1 := time.Since(start), cpuTime()

		b.StopTimer()
		if r[0].Outcome != want || !r[0].Verified {
			b.Fatalf("%s: outcome %s (verified %t), want %s: %s", event, r[0].Outcome, r[0].Verified, want, r[0].Message)
		}
		s, k, i, wr := w.calls()
		if event == "replay" && wr != 0 {
			b.Fatalf("a replay wrote %d times", wr)
		}
		// The critical path: the source download, then the backup's calls one after
		// the other; a cached copy is read while the source downloads.
		overlap := 0
		if event != "new" {
			overlap = 1
		}
		n := s + k + i - overlap
		wall += elapsed
		cpu += cpu1 - cpu0
		src, bk, iam, writes, rounds = src+s, bk+k, iam+i, writes+wr, rounds+n
		floor += time.Duration(n) * benchLatency
		// Under the limiter: the backup's k calls one after the other; the first leaves
		// at once (cached) or after the source download.
		first := time.Duration(s+i-overlap) * benchLatency
		span := time.Duration(k) * benchLatency
		if paceBackup {
			span = pacedSpan(k, benchLatency)
		}
		paced += max(time.Duration(n)*benchLatency, first+span)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(src+bk+iam)/n, "calls/op")
	b.ReportMetric(float64(src)/n, "src-calls/op")
	b.ReportMetric(float64(bk)/n, "bk-calls/op")
	b.ReportMetric(float64(writes)/n, "writes/op")
	b.ReportMetric(float64(rounds)/n, "rounds")
	b.ReportMetric(float64(wall)/float64(floor), "wall/network")
	b.ReportMetric(float64(wall)/float64(paced), "wall/paced")
	b.ReportMetric(float64(cpu)/n/1e6, "cpu-ms/op")
}
