//go:build linux

// Package sm holds the benchmarks of the Secrets Manager and Event Notifications issues:
// the real engine (internal/engine/replicate and reconcile, through internal/app where
// a runtime would go through it) against the Certificate Manager and Secrets Manager
// simulators, which answer every request after a fixed latency (SetLatency), so that
// round trips and the per-instance request ceiling decide the time, as with the real
// services. Everything here is a benchmark: `go test ./...` without -bench builds this
// package and runs nothing, and all set-up happens inside the benchmarks.
//
// Run (see docs/PERFORMANCE.md, "After the redesign"):
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/sm
//
// It reads /proc/<pid>/status, so it builds on Linux only (the platforms' OS).
package sm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

const (
	benchAPIKey  = "bench-sm-key-0123456789abcdef0123"
	benchWebhook = "bench-sm-webhook-secret-0123456789abcdef012345"
	// benchLatency is the simulated round trip of every request (IAM included).
	benchLatency = 20 * time.Millisecond
	// ceiling is the per-instance request ceiling IBM advises for Secrets Manager
	// (secretsmanager.DefaultRequestsPerSecond) and the simulator's RateLimit when on.
	ceiling = secretsmanager.DefaultRequestsPerSecond
	// window is the limiter's: at most ceiling requests to one instance leave in any
	// window of 1 s + 50 ms (internal/provider/secretsmanager/limiter.go).
	window = time.Second + 50*time.Millisecond
	// isolated is the untimed pause before each iteration of a single-event benchmark
	// that writes, longer than the window: each event finds the limiter empty, as one
	// rotation does in a warm process, instead of the benchmark's own previous
	// iterations. A replay (two calls) never comes near the ceiling: 60 ms.
	isolated = window + 10*time.Millisecond
	mib      = 1 << 20
)

// benchCA issues every test certificate; made on first use, never in init.
var benchCA = sync.OnceValue(func() *testpki.CA { return testpki.MustNewCA("certbackup bench CA") })

// certPool is a few issued certificates that many secrets share: the cost of a listing
// does not depend on whether the certificates differ, and issuing 10 000 would only
// slow the set-up down.
var certPool = sync.OnceValue(func() []*testpki.Issued {
	out := make([]*testpki.Issued, 50)
	for i := range out {
		out[i] = benchCA().MustIssue(fmt.Sprintf("pool-%02d.example.com", i))
	}
	return out
})

// startSM serves a Secrets Manager simulator whose clock runs skew ahead, with the
// benchmark's API key.
func startSM(tb testing.TB, rateLimit int) (*smsim.Server, *atomic.Int64) {
	tb.Helper()
	skew := &atomic.Int64{}
	srv, err := smsim.Start(smsim.Options{
		Now:           func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		TokenLifetime: 24 * time.Hour,
		RateLimit:     rateLimit,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	srv.AddAPIKey(benchAPIKey)
	return srv, skew
}

// addSM adds an instance in region on which the benchmark's key has role.
func addSM(srv *smsim.Server, region string, role smsim.Role) string {
	inst := srv.AddInstance(region)
	srv.Grant(benchAPIKey, inst, role)
	return inst
}

// seedSM stores an imported certificate and returns its secret CRN.
func seedSM(tb testing.TB, srv *smsim.Server, inst, name string, is *testpki.Issued) string {
	tb.Helper()
	id, err := srv.Seed(inst, smsim.Seed{Name: name, Certificate: is.CertPEM, PrivateKey: is.KeyPEM, Intermediate: is.Intermediate})
	if err != nil {
		tb.Fatal(err)
	}
	return secretCRN(tb, inst, id)
}

func secretCRN(tb testing.TB, inst, id string) string {
	tb.Helper()
	c, err := smsim.ParseInstanceCRN(inst)
	if err != nil {
		tb.Fatal(err)
	}
	return c.SecretCRN(id)
}

func idOf(secretCRN string) string { return secretCRN[strings.LastIndex(secretCRN, ":")+1:] }

// rotateSM gives a source secret a new version holding a new certificate.
func rotateSM(tb testing.TB, srv *smsim.Server, inst, secret string) {
	tb.Helper()
	is := benchCA().MustIssue(fmt.Sprintf("r%d.example.com", time.Now().UnixNano()))
	if _, err := srv.Rotate(inst, idOf(secret), smsim.Version{Certificate: is.CertPEM, PrivateKey: is.KeyPEM, Intermediate: is.Intermediate}); err != nil {
		tb.Fatal(err)
	}
}

// mirrorSM seeds into bk an exact copy of each source secret of srcs (as the engine
// would have made it: the fitted name, the certbackup label, the marker with the proof
// bound to the copy's ID), so that a reconcile finds nothing to do. The proof needs the
// copy's ID, which only the seed returns, so it is set afterwards with a merge patch
// over HTTP (the simulator's Go API has no metadata update), 8 at a time.
func mirrorSM(tb testing.TB, srv *smsim.Server, bk string, srcs []string, names []string, material []*testpki.Issued) {
	tb.Helper()
	owner := match.NewOwner(benchAPIKey)
	holder := secretsmanager.Instance{CRN: bk}
	type job struct{ id, copyCRN, source string }
	jobs := make([]job, len(srcs))
	for i, s := range srcs {
		subj := match.Subject{Certificate: engine.Certificate{ID: s, Name: names[i]}, Origin: s}
		want := owner.Want(holder, subj, false, "")
		is := material[i]
		id, err := srv.Seed(bk, smsim.Seed{
			Name: want.Name, Labels: []string{secretsmanager.Label},
			CustomMetadata: map[string]any{secretsmanager.MetadataSource: s},
			Certificate:    is.CertPEM, PrivateKey: is.KeyPEM, Intermediate: is.Intermediate,
		})
		if err != nil {
			tb.Fatal(err)
		}
		jobs[i] = job{id: id, copyCRN: secretCRN(tb, bk, id), source: s}
	}
	token := iamToken(tb, srv)
	hc := &http.Client{Timeout: 30 * time.Second}
	base := srv.InstanceURL(bk) + "/api/v2/secrets/"
	var wg sync.WaitGroup
	var failed atomic.Int64
	ch := make(chan job)
	for range 8 {
		wg.Go(func() {
			for j := range ch {
				subj := match.Subject{Certificate: engine.Certificate{ID: j.source}, Origin: j.source}
				want := owner.Want(holder, subj, false, j.copyCRN)
				body, _ := json.Marshal(map[string]any{"custom_metadata": map[string]any{
					secretsmanager.MetadataSource: want.Marker.Source,
					secretsmanager.MetadataProof:  want.Marker.Proof,
				}})
				req, _ := http.NewRequest(http.MethodPatch, base+j.id+"/metadata", strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/merge-patch+json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	hc.CloseIdleConnections()
	if n := failed.Load(); n > 0 {
		tb.Fatalf("mirror: %d metadata patches failed", n)
	}
}

// iamToken is an access token of the benchmark's key from the simulator's IAM.
func iamToken(tb testing.TB, srv *smsim.Server) string {
	tb.Helper()
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {benchAPIKey}}
	resp, err := http.PostForm(srv.IAMURL()+"/identity/token", form)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		tb.Fatalf("IAM token: status %d, %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// httpClient is what a runtime lends the app (internal/runtime/codeengine deps): one
// pooled client for every call.
func httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = ibmapi.MaxIdleConnsPerHost
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// smCalls is what the simulator answered since its last ResetLog.
type smCalls struct {
	total, iam int
	per        map[string]int // instance CRN -> calls
	status429  int
}

func countSM(srv *smsim.Server) smCalls {
	c := smCalls{per: map[string]int{}}
	for _, r := range srv.Requests() {
		c.total++
		if r.Op == smsim.OpIAMToken {
			c.iam++
		}
		if r.Status == http.StatusTooManyRequests {
			c.status429++
		}
		c.per[r.Instance]++
	}
	return c
}

func (c smCalls) busiest() int {
	n := 0
	for inst, v := range c.per {
		if inst != "" {
			n = max(n, v)
		}
	}
	return n
}

// cpuTime is the CPU time (user and system) the process has used so far: the client
// and the simulators, which share the machine's cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pacedSpan is how long k requests to one instance take, one after the other at
// latency each, under the client's limiter at the ceiling (at most ceiling of them
// leave in any window), starting from an empty window: k x latency up to the
// ceiling, and then each waits for the one ceiling requests before it to leave the
// window.
func pacedSpan(k int, latency time.Duration) time.Duration {
	sends := make([]time.Duration, k)
	var t time.Duration
	for j := range k {
		if j >= ceiling {
			t = max(t, sends[j-ceiling]+window)
		}
		sends[j] = t
		t += latency
	}
	return t
}

// pause is the untimed pause before an iteration of a single-event benchmark.
func pause(event string) time.Duration {
	if event == "replay" {
		return 60 * time.Millisecond
	}
	return isolated
}
