//go:build unix

package openwhisk_test

// Benchmarks of the notification path (issue 7): one signed Certificate Manager
// notification about one certificate, handled in-process by openwhisk.Action.Handle exactly as
// the exec binary handles a web activation (JWT verification, replication, the web
// response encoded as the JSON line ActionLoop writes), against the simulator with a
// fixed per-request latency, so that round trips decide the time as with the real
// service. Nothing here runs without -bench.
//
// Run:
//
//	go test -run '^$' -bench 'Notify' -benchmem ./internal/runtime/openwhisk
//
// CERTBACKUP_BENCH_LATENCY (a Go duration, default 20ms) sets the simulated latency.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/runtime/openwhisk"
	"github.com/certbackup/certbackup/test/harness"
)

const defaultBenchLatency = 20 * time.Millisecond

// benchLatency is the simulated per-request latency: CERTBACKUP_BENCH_LATENCY or 20 ms.
func benchLatency(tb testing.TB) time.Duration {
	tb.Helper()
	v := os.Getenv("CERTBACKUP_BENCH_LATENCY")
	if v == "" {
		return defaultBenchLatency
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("CERTBACKUP_BENCH_LATENCY=%q is not a positive duration", v)
	}
	return d
}

// notifyWorld is a simulator with one source instance holding one certificate, n
// backup instances, and a Callback URL channel whose endpoint captures the signed
// notifications the simulator sends, so that the benchmark feeds the action the very
// tokens Certificate Manager would POST.
type notifyWorld struct {
	sim     *cmsim.Simulator
	ca      *testpki.CA
	skew    atomic.Int64 // the simulator's clock runs ahead by this much
	source  string
	backups []string
	cert    string
	made    int            // certificates made by newCert
	params  map[string]any // bound parameters, as manifest.yaml binds them (all strings)
	tokens  <-chan string
}

var benchRegions = []string{"eu-de", "eu-gb", "jp-tok", "au-syd", "us-east"}

func newNotifyWorld(tb testing.TB, nBackups int) *notifyWorld {
	tb.Helper()
	w := &notifyWorld{}
	var err error
	w.sim, err = cmsim.New(cmsim.Options{
		// The clock moves a minute per renewal (see renew), so a long token lifetime
		// keeps the IAM token valid however many iterations run.
		Now:               func() time.Time { return time.Now().Add(time.Duration(w.skew.Load())) },
		TokenLifetime:     24 * time.Hour,
		AllowHTTPChannels: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	w.ca = w.sim.CA()
	srv := httptest.NewServer(w.sim)
	tb.Cleanup(srv.Close)

	const apiKey = "bench-notify-key-0123456789abcdef"
	w.sim.AddAPIKey(apiKey)
	w.source = w.sim.AddInstance("us-south")
	w.sim.Grant(apiKey, w.source, cmsim.Writer)
	endpoints := map[string]string{"us-south": w.sim.RegionURL(srv.URL, "us-south")}
	for i := range nBackups {
		r := benchRegions[i%len(benchRegions)]
		b := w.sim.AddInstance(r)
		w.sim.Grant(apiKey, b, cmsim.Manager)
		endpoints[r] = w.sim.RegionURL(srv.URL, r)
		w.backups = append(w.backups, b)
	}

	w.tokens = harness.TokenSink(tb, w.sim, w.source, 16)
	w.cert = w.sim.Seed(w.source, "web", "the web front end", w.ca.MustIssue("www.example.com", "example.com"))

	ep, _ := json.Marshal(endpoints)
	bk, _ := json.Marshal(w.backups)
	w.params = map[string]any{
		"mode":                 "notify",
		"apikey":               apiKey,
		"backup_apikey":        "",
		"source_instance_crn":  w.source,
		"backup_instance_crns": string(bk),
		"source_public_key":    "", // fetched once per container, as deployed without SOURCE_PUBLIC_KEY
		"iam_url":              w.sim.IAMURL(srv.URL),
		"endpoints":            string(ep),
		"private_endpoints":    "",
	}
	return w
}

// renew reimports a new certificate for the same domains into the source, as an
// operator or a renewal would, and returns the cert_reimported notification the
// simulator signed and sent for it. The simulator's clock moves on a minute and a
// second, so that its limit of 5 reimports a minute per copy never answers 429.
func (w *notifyWorld) renew(tb testing.TB) string {
	tb.Helper()
	w.skew.Add(int64(time.Minute + time.Second))
	i := w.ca.MustIssue("www.example.com", "example.com")
	if err := w.sim.Reimport(w.cert, i.CertPEM, i.KeyPEM, i.Intermediate); err != nil {
		tb.Fatal(err)
	}
	select {
	case tok := <-w.tokens:
		return tok
	case <-time.After(10 * time.Second):
		tb.Fatal("the simulator sent no notification")
		return ""
	}
}

// newCert seeds a new certificate in the source, which no backup holds yet, and
// returns the notification the simulator signed and sent about it.
func (w *notifyWorld) newCert(tb testing.TB) string {
	tb.Helper()
	w.made++
	d := fmt.Sprintf("new-%04d.example.com", w.made)
	w.cert = w.sim.Seed(w.source, fmt.Sprintf("new-%04d", w.made), "a new front end", w.ca.MustIssue(d))
	if err := w.sim.SendEvent(w.source, cmsim.EventCertReimported, w.cert); err != nil {
		tb.Fatal(err)
	}
	select {
	case tok := <-w.tokens:
		return tok
	case <-time.After(10 * time.Second):
		tb.Fatal("the simulator sent no notification")
		return ""
	}
}

// request is the activation's parameters for a POST of {"data": token} to the web
// action: the bound parameters, the web fields and the JSON body's fields merged.
func (w *notifyWorld) request(token string) map[string]any {
	p := make(map[string]any, len(w.params)+4)
	for k, v := range w.params {
		p[k] = v
	}
	p["__ow_method"] = "post"
	p["__ow_headers"] = map[string]any{"content-type": "application/json", "user-agent": "IBM Certificate Manager"}
	p["__ow_path"] = ""
	p["data"] = token
	return p
}

// newContainer is a new Action with its own connections, as a cold container has.
func newContainer() (*openwhisk.Action, *http.Client) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	return openwhisk.New(openwhisk.Options{HTTPClient: hc}), hc
}

// handle runs one activation as exec does (Handle, then the result encoded as the
// JSON line ActionLoop writes) and returns the time it took.
func handle(tb testing.TB, a *openwhisk.Action, params map[string]any, want string) time.Duration {
	start := time.Now()
	res := a.Handle(context.Background(), openwhisk.Meta{ActivationID: "bench", Deadline: time.Now().Add(60 * time.Second)}, params)
	line, err := json.Marshal(res)
	wall := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	checkResult(tb, res, line, want)
	return wall
}

// checkResult requires a 200 web response whose every pair has outcome want.
func checkResult(tb testing.TB, res map[string]any, line []byte, want string) {
	tb.Helper()
	if res["statusCode"] != http.StatusOK {
		tb.Fatalf("status %v: %s", res["statusCode"], line)
	}
	var out struct {
		Body struct {
			Results []struct {
				Outcome string `json:"outcome"`
			} `json:"results"`
		} `json:"body"`
	}
	if err := json.Unmarshal(line, &out); err != nil {
		tb.Fatal(err)
	}
	if len(out.Body.Results) == 0 {
		tb.Fatalf("no results: %s", line)
	}
	for _, r := range out.Body.Results {
		if r.Outcome != want {
			tb.Fatalf("outcome %q, want %q: %s", r.Outcome, want, line)
		}
	}
}

// BenchmarkNotify: one certificate, one backup. warm reuses one Action (the IAM
// token, the public key, the connections and the copy location survive); cold makes a
// new one per activation (an IAM token and a public-key fetch come first, and the copy
// must be found by listing the backup). replay delivers the same notification again
// (nothing to write); renewed reimports the source before each activation, so the copy
// is rewritten and read back; new is a notification about a certificate no backup
// holds yet (a new one before each activation: it is imported, and since the
// ownership proofs of issue "ownership" its proof is rewritten to the copy's ID form
// right after, one more write, then read back).
//
// Metrics: calls/op (HTTP requests the simulator answered: API calls per certificate),
// wall/network, the activation's wall time over calls × latency (every call of a
// one-backup activation waits for the one before it, so calls × latency is its
// network floor), and cpu-ms/op, the CPU time of the process (action and simulator)
// during the activation, from getrusage. Goal (issue 7): warm at most 3 calls,
// wall/network at most 1.05.
func BenchmarkNotify(b *testing.B) {
	for _, container := range []string{"warm", "cold"} {
		for _, event := range []string{"replay", "renewed", "new"} {
			b.Run(container+"/"+event, func(b *testing.B) {
				benchNotify(b, container == "cold", event)
			})
		}
	}
}

func benchNotify(b *testing.B, cold bool, event string) {
	latency := benchLatency(b)
	w := newNotifyWorld(b, 1)
	a, hc := newContainer()
	defer hc.CloseIdleConnections()
	// The first notification imports the copy (no latency yet: setup).
	token := w.renew(b)
	handle(b, a, w.request(token), "imported")
	want := map[string]string{"replay": "unchanged", "renewed": "reimported", "new": "imported"}[event]
	w.sim.SetLatency(latency)

	var wall, cpu time.Duration
	calls := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		switch event {
		case "renewed":
			token = w.renew(b)
		case "new":
			token = w.newCert(b)
		}
		if cold {
			hc.CloseIdleConnections()
			a, hc = newContainer()
		}
		params := w.request(token)
		w.sim.ResetLog()
		b.StartTimer()

		cpu0 := cpuTime()
		wall += handle(b, a, params, want)
		cpu += cpuTime() - cpu0

		b.StopTimer()
		calls += w.sim.Count("", "")
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(calls)/n, "calls/op")
	b.ReportMetric(float64(wall)/float64(time.Duration(calls)*latency), "wall/network")
	b.ReportMetric(float64(cpu)/n/1e6, "cpu-ms/op")
}

// BenchmarkNotifyFanout: the same warm activation with 1 and with 5 backups, measured
// alternately in the same iterations. The engine copies to every backup at once, so
// 5 backups should take about as long as one (wall5/wall1 near 1), not five times as
// long. wall5/network is the 5-backup wall time over the one-backup activation's
// calls × latency: the round trips on the critical path, which 5 backups share.
func BenchmarkNotifyFanout(b *testing.B) {
	for _, event := range []string{"replay", "renewed"} {
		b.Run(event, func(b *testing.B) {
			latency := benchLatency(b)
			renewed := event == "renewed"
			want := "unchanged"
			if renewed {
				want = "reimported"
			}
			type side struct {
				w      *notifyWorld
				a      *openwhisk.Action
				token  string
				wall   time.Duration
				calls  int
				nBkups int
			}
			var sides []*side
			for _, n := range []int{1, 5} {
				s := &side{w: newNotifyWorld(b, n), nBkups: n}
				var hc *http.Client
				s.a, hc = newContainer()
				b.Cleanup(hc.CloseIdleConnections)
				s.token = s.w.renew(b)
				handle(b, s.a, s.w.request(s.token), "imported")
				s.w.sim.SetLatency(latency)
				sides = append(sides, s)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Alternate which side goes first, so that neither always runs on a
				// machine warmed (or disturbed) by the other.
				order := []*side{sides[0], sides[1]}
				if i%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				for _, s := range order {
					b.StopTimer()
					if renewed {
						s.token = s.w.renew(b)
					}
					params := s.w.request(s.token)
					s.w.sim.ResetLog()
					b.StartTimer()
					s.wall += handle(b, s.a, params, want)
					b.StopTimer()
					s.calls += s.w.sim.Count("", "")
					b.StartTimer()
				}
			}
			n := float64(b.N)
			one, five := sides[0], sides[1]
			b.ReportMetric(float64(one.calls)/n, "calls1/op")
			b.ReportMetric(float64(five.calls)/n, "calls5/op")
			b.ReportMetric(float64(one.wall)/n/1e6, "wall1-ms/op")
			b.ReportMetric(float64(five.wall)/n/1e6, "wall5-ms/op")
			b.ReportMetric(float64(five.wall)/float64(one.wall), "wall5/wall1")
			b.ReportMetric(float64(five.wall)/float64(time.Duration(one.calls)*latency), "wall5/network")
		})
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
