//go:build linux

// Package bench measures the compiled action binary: built and zipped as
// ./deploy.sh build does (test/harness), unpacked and started as the OpenWhisk Go
// runtime starts it (internal/devtools/owproxy), driven over ActionLoop against a loopback
// Certificate Manager simulator. Everything here is a benchmark: `go test ./...`
// without -bench builds this package and runs nothing.
//
// Run:
//
//	go test -run '^$' -bench . -benchtime 5x ./test/bench
//
// It reads /proc/<pid>/status, so it builds on Linux only (the platform's OS).
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/pemutil"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/test/harness"
)

// world is a loopback simulator with a source and one backup instance, which counts
// the TCP connections it accepts and captures the notifications it sends.
type world struct {
	sim     *cmsim.Simulator
	skew    atomic.Int64
	conns   atomic.Int64
	source  string
	backup  string
	params  map[string]any // bound parameters, as manifest.yaml binds them (all strings)
	tokens  <-chan string
	sources []string
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	w := &world{}
	var err error
	w.sim, err = cmsim.New(cmsim.Options{
		Now:               func() time.Time { return time.Now().Add(time.Duration(w.skew.Load())) },
		TokenLifetime:     24 * time.Hour,
		AllowHTTPChannels: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(w.sim)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			w.conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)

	const apiKey = "bench-exec-key-0123456789abcdef"
	w.sim.AddAPIKey(apiKey)
	w.source = w.sim.AddInstance("us-south")
	w.backup = w.sim.AddInstance("eu-de")
	w.sim.Grant(apiKey, w.source, cmsim.Writer)
	w.sim.Grant(apiKey, w.backup, cmsim.Manager)
	endpoints := map[string]string{
		"us-south": w.sim.RegionURL(srv.URL, "us-south"),
		"eu-de":    w.sim.RegionURL(srv.URL, "eu-de"),
	}

	w.tokens = harness.TokenSink(tb, w.sim, w.source, 16)

	ep, _ := json.Marshal(endpoints)
	bk, _ := json.Marshal([]string{w.backup})
	w.params = map[string]any{
		"apikey":               apiKey,
		"backup_apikey":        "",
		"source_instance_crn":  w.source,
		"backup_instance_crns": string(bk),
		"source_public_key":    "",
		"iam_url":              w.sim.IAMURL(srv.URL),
		"endpoints":            string(ep),
		"private_endpoints":    "",
	}
	return w
}

// mirror seeds n certificates in the source and an exact copy of each (with the
// marker) in the backup.
func (w *world) mirror(tb testing.TB, n int) {
	tb.Helper()
	ca := w.sim.CA()
	for i := range n {
		d := fmt.Sprintf("cert-%04d.example.com", i)
		src := w.sim.Seed(w.source, fmt.Sprintf("cert-%04d", i), "description of "+d, ca.MustIssue(d, "www."+d))
		c, ok := w.sim.Get(src)
		if !ok {
			tb.Fatal("seeded certificate missing")
		}
		leaf, err := pemutil.ParseCertificate(c.Data.Content)
		if err != nil {
			tb.Fatal(err)
		}
		id := w.sim.Seed(w.backup, c.Name, "",
			&testpki.Issued{Cert: leaf, CertPEM: c.Data.Content, KeyPEM: c.Data.PrivKey, Intermediate: c.Data.Intermediate})
		desc := cms.CopyDescription(match.NewOwner(w.params["apikey"].(string)), w.backup, id, cms.Certificate{
			ID: c.ID, Name: c.Name, Description: c.Description, SerialNumber: c.SerialNumber, BeginsOn: c.BeginsOn, ExpiresOn: c.ExpiresOn,
		})
		if err := w.sim.SetName(id, c.Name, desc); err != nil {
			tb.Fatal(err)
		}
		w.sources = append(w.sources, src)
	}
}

// renew gives the first n source certificates a new certificate (the simulator's
// clock moves on a minute so that its reimport rate limit never answers 429) and
// clears the request log and the connection count. The notifications it sends are
// dropped.
func (w *world) renew(tb testing.TB, n int) {
	tb.Helper()
	ca := w.sim.CA()
	for _, s := range w.sources[:n] {
		c, _ := w.sim.Get(s)
		i := ca.MustIssue(c.Domains...)
		if err := w.sim.Reimport(s, i.CertPEM, i.KeyPEM, i.Intermediate); err != nil {
			tb.Fatal(err)
		}
		select {
		case <-w.tokens:
		default:
		}
	}
	w.skew.Add(int64(time.Minute + time.Second))
	w.sim.ResetLog()
	w.conns.Store(0)
}

func (w *world) with(extra map[string]any) map[string]any {
	p := make(map[string]any, len(w.params)+len(extra))
	for k, v := range w.params {
		p[k] = v
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// start starts exec as the runtime does.
func start(tb testing.TB, execPath string) *owproxy.Process {
	tb.Helper()
	p, err := owproxy.Start(context.Background(), execPath, owproxy.Options{ExecutionEnv: harness.ExecutionEnv})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// run sends one activation and returns the decoded result; it fails on anything but
// a 200 answer without an "error" key.
func run(tb testing.TB, p *owproxy.Process, params map[string]any, action string, timeout time.Duration) map[string]any {
	tb.Helper()
	status, body, err := p.Run(context.Background(), params, owproxy.RunMeta{ActionName: "/guest/certbackup/" + action, Timeout: timeout})
	if err != nil {
		tb.Fatal(err)
	}
	var out map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		tb.Fatalf("status %d: %.300s", status, body)
	}
	if e, ok := out["error"]; ok {
		tb.Fatalf("activation failed: %.500v", e)
	}
	return out
}

// cpuTime is the CPU time (user and system, every thread) the process has used, from
// /proc/<pid>/stat in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count the
	// fields after its closing parenthesis; utime and stime are fields 14 and 15.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		tb.Fatalf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("unreadable /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

const mib = 1 << 20

// BenchmarkColdStart starts the real exec (unpacked from the zip built like
// ./deploy.sh build) as the OpenWhisk Go runtime does, and sends it its first
// activation: a signed notification about a certificate whose copy is already in the
// backup (a cold container: IAM token, public key, download, list, read the copy).
// The simulator adds no latency: what is measured is the binary's own start-up and
// first-activation cost on this machine.
//
// Metrics: ack-ms (process start to the ActionLoop ack; goal < 50 ms), first-ms
// (process start to the first result), calls/op of that first activation, hwm-MB
// (peak RSS after it), exec-MB and zip-MB (goal: zip < 10 MB). ns/op is first-ms.
func BenchmarkColdStart(b *testing.B) {
	zip := harness.ActionZip(b)
	execPath := harness.ExecPath(b)
	w := newWorld(b)
	w.mirror(b, 1)
	if err := w.sim.SendEvent(w.source, cmsim.EventCertReimported, w.sources[0]); err != nil {
		b.Fatal(err)
	}
	token := <-w.tokens
	params := w.with(map[string]any{
		"mode": "notify", "data": token,
		"__ow_method": "post", "__ow_path": "",
		"__ow_headers": map[string]any{"content-type": "application/json"},
	})

	var ack, first time.Duration
	var calls int
	var hwm int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w.sim.ResetLog()
		b.StartTimer()
		p := start(b, execPath)
		t0 := time.Now()
		out := run(b, p, params, "notify", time.Minute)
		elapsed := time.Since(t0)
		b.StopTimer()
		if out["statusCode"] != float64(http.StatusOK) {
			b.Fatalf("notify answered %v", out["statusCode"])
		}
		ack += p.AckLatency()
		first += p.AckLatency() + elapsed
		calls += w.sim.Count("", "")
		hwm = max(hwm, harness.PeakRSS(b, p.Pid()))
		_ = p.Close()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(ack)/n/1e6, "ack-ms")
	b.ReportMetric(float64(first)/n/1e6, "first-ms")
	b.ReportMetric(float64(calls)/n, "calls/op")
	b.ReportMetric(float64(hwm)/mib, "hwm-MB")
	b.ReportMetric(float64(fileSize(b, execPath))/mib, "exec-MB")
	b.ReportMetric(float64(fileSize(b, zip))/mib, "zip-MB")
}

// BenchmarkExecReconcile1000 runs the reconcile action (mode reconcile, the deployed
// default concurrency) in a fresh exec over ActionLoop, against a source of 1000
// certificates mirrored into one backup, with 0 or all 1000 renewed before the run,
// at 2 ms simulated latency. hwm-MB is the peak RSS of exec (VmHWM, read before it
// exits; goal < 64 MB), conns/op the TCP connections the action opened during the run
// (against the real service each is a TCP and a TLS handshake), exec-cpu-ms/op the
// CPU time exec used for the activation (10 ms resolution). ns/op is the activation's
// time, start-up excluded.
func BenchmarkExecReconcile1000(b *testing.B) {
	const latency = 2 * time.Millisecond
	execPath := harness.ExecPath(b)
	w := newWorld(b)
	w.mirror(b, 1000)
	w.sim.SetLatency(latency)
	params := w.with(map[string]any{"mode": "reconcile"})
	for _, changed := range []int{0, 1000} {
		b.Run(fmt.Sprintf("changed=%d", changed), func(b *testing.B) {
			var calls, conns int
			var hwm int64
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				w.renew(b, changed)
				p := start(b, execPath)
				cpu0 := cpuTime(b, p.Pid())
				b.StartTimer()
				out := run(b, p, params, "reconcile", 5*time.Minute)
				b.StopTimer()
				if out["match"] != true || out["source_downloads"] != float64(changed) {
					b.Fatalf("reconcile did not converge: match=%v source_downloads=%v", out["match"], out["source_downloads"])
				}
				calls += w.sim.Count("", "")
				conns += int(w.conns.Load())
				cpu += cpuTime(b, p.Pid()) - cpu0
				hwm = max(hwm, harness.PeakRSS(b, p.Pid()))
				_ = p.Close()
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(hwm)/mib, "hwm-MB")
			b.ReportMetric(float64(calls)/n, "calls/op")
			b.ReportMetric(float64(conns)/n, "conns/op")
			b.ReportMetric(float64(cpu)/n/1e6, "exec-cpu-ms/op")
		})
	}
}
