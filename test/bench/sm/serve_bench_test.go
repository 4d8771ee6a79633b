//go:build linux

package sm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/test/harness"
)

// serveBinary is ./function built exactly as the Dockerfile builds it (static,
// linux/amd64, -trimpath, -ldflags "-s -w -buildid="), once per process.
var serveBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "certbackup-bench-serve-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "exec")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", bin, "./function")
	cmd.Dir = filepath.Join("..", "..", "..") // the module's root, from test/bench/sm
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./function: %v\n%s", err, out)
	}
	return bin, nil
})

// served is `exec serve` running with exactly env (and PORT).
type served struct {
	cmd  *exec.Cmd
	url  string
	out  bytes.Buffer
	done chan struct{}
}

func startServe(tb testing.TB, bin string, env map[string]string) *served {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &served{cmd: exec.Command(bin, "serve"), url: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	s.cmd.Env = []string{"PORT=" + strconv.Itoa(port)}
	for k, v := range env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// healthy polls /healthz until it answers 200.
func (s *served) healthy(tb testing.TB) {
	tb.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Microsecond) {
		if resp, err := c.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			tb.Fatalf("healthz %d", resp.StatusCode)
		}
	}
	tb.Fatal("no answer on /healthz within 10 s")
}

// stop sends SIGTERM and waits for the exit.
func (s *served) stop(tb testing.TB) {
	tb.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		tb.Fatal("serve did not stop within 15 s")
	}
}

// BenchmarkServeBatch100 runs the Code Engine application (`exec serve`, built as the
// Dockerfile builds it) against the Secrets Manager simulator: a Secrets Manager
// source of 100 certificates mirrored in 2 backups, all 100 rotated; a new process
// (scaled from zero: no IAM token, no copy cache) gets Event Notifications'
// notification naming the 100 over HTTP, again after each 503 (1 s later), until it
// answers 200; 20 ms per request, the default ceiling of 20 requests a second per
// instance. hwm-MB is the process's peak RSS (VmHWM, read before it stops).
//
// Metrics: hwm-MB, exec-MB (the binary's size), healthz-ms (exec to the first 200 on
// /healthz), requests/op, first-s and max-answer-s (time to answer each request; EN
// waits 10 s).
//
// Run: go test -run '^$' -bench ServeBatch100 -benchtime 1x ./test/bench/sm
func BenchmarkServeBatch100(b *testing.B) {
	bin, err := serveBinary()
	if err != nil {
		b.Fatal(err)
	}
	const n = 100
	w := &appWorld{}
	w.sm, _ = startSM(b, 0)
	w.src = addSM(w.sm, "us-south", smsim.SecretsReader)
	w.bks = []string{addSM(w.sm, "eu-de", smsim.Manager), addSM(w.sm, "eu-gb", smsim.Manager)}
	names := make([]string, n)
	material := make([]*testpki.Issued, n)
	for i := range n {
		names[i], material[i] = fmt.Sprintf("site-%03d", i), certPool()[i%len(certPool())]
		w.ids = append(w.ids, seedSM(b, w.sm, w.src, names[i], material[i]))
	}
	for _, bk := range w.bks {
		mirrorSM(b, w.sm, bk, w.ids, names, material)
	}
	ep, _ := json.Marshal(w.sm.Endpoints())
	env := map[string]string{
		"APIKEY": benchAPIKey, "SOURCE_INSTANCE_CRN": w.src, "BACKUP_INSTANCE_CRNS": strings.Join(w.bks, ","),
		"IAM_URL": w.sm.IAMURL(), "ENDPOINTS": string(ep), "WEBHOOK_SECRET": benchWebhook,
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var hwm int64
	var healthz, first, maxAnswer time.Duration
	requests := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w.sm.SetLatency(0)
		for _, id := range w.ids {
			rotateSM(b, w.sm, w.src, id)
		}
		body := w.envelope("secret_rotated", w.ids...)
		w.sm.SetLatency(benchLatency)
		w.sm.ResetLog()
		b.StartTimer()
		begin := time.Now()
		s := startServe(b, bin, env)
		s.healthy(b)
		healthz += time.Since(begin)
		done := false
		for attempt := 1; attempt <= 10 && !done; attempt++ {
			req, _ := http.NewRequest(http.MethodPost, s.url+"/events", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+benchWebhook)
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			d := time.Since(t0)
			requests++
			maxAnswer = max(maxAnswer, d)
			if attempt == 1 {
				first += d
			}
			b.Logf("request %d: %d in %v, summary %v", attempt, resp.StatusCode, d.Round(time.Millisecond), out["summary"])
			switch resp.StatusCode {
			case http.StatusOK:
				done = true
			case http.StatusServiceUnavailable, http.StatusBadGateway:
				b.StopTimer()
				time.Sleep(time.Second)
				b.StartTimer()
			default:
				b.Fatalf("request %d: %d %v\n%s", attempt, resp.StatusCode, out, s.out.String())
			}
		}
		b.StopTimer()
		if !done {
			b.Fatal("not every secret copied after 10 requests")
		}
		hwm = max(hwm, harness.PeakRSS(b, s.cmd.Process.Pid))
		s.stop(b)
		b.StartTimer()
	}
	b.StopTimer()
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	f := float64(b.N)
	b.ReportMetric(float64(hwm)/mib, "hwm-MB")
	b.ReportMetric(float64(fi.Size())/mib, "exec-MB")
	b.ReportMetric(float64(healthz.Microseconds())/1000/f, "healthz-ms")
	b.ReportMetric(float64(requests)/f, "requests/op")
	b.ReportMetric(first.Seconds()/f, "first-s")
	b.ReportMetric(maxAnswer.Seconds(), "max-answer-s")
}
