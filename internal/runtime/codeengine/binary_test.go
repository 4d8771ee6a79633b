package codeengine

import (
	"bufio"
	"encoding/json"
	"errors"
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

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests and the benchmark below run the real binary, built once from ./function
// as the Dockerfile builds it (static, CGO_ENABLED=0).
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

func binary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs the binary")
	}
	build.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = err
			return
		}
		if build.dir, build.err = os.MkdirTemp("", "certbackup-serve-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "exec")
		cmd := exec.Command(goTool, "build", "-o", build.bin, "github.com/certbackup/certbackup/function")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		tb.Fatalf("go build ./function: %v\n%s", build.err, build.out)
	}
	return build.bin
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is `exec serve` running.
type process struct {
	cmd    *exec.Cmd
	url    string
	addr   string
	out    *syncBuffer // stdout and stderr
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// startServe starts the binary with `serve` and exactly env (plus PORT): Code Engine
// gives the container its own environment, not the test's.
func startServe(tb testing.TB, bin string, env map[string]string) *process {
	tb.Helper()
	port := freePort(tb)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PORT=" + strconv.Itoa(port)}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	p := &process{cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, exited: make(chan struct{})}
	p.url = "http://" + p.addr
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(tb, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitHealth polls /healthz until it answers, and returns its status.
func (p *process) waitHealth(tb testing.TB, within time.Duration) int {
	tb.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		resp, err := c.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return resp.StatusCode
		}
		select {
		case <-p.exited:
			tb.Fatalf("serve exited: %v\n%s", p.err, p.out)
		case <-time.After(200 * time.Microsecond):
		}
	}
	tb.Fatalf("no answer on /healthz within %v\n%s", within, p.out)
	return 0
}

func (p *process) exitCode(tb testing.TB, within time.Duration) int {
	tb.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		tb.Fatalf("serve did not exit within %v\n%s", within, p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(tb, p.err)
	return 0
}

// logLines decodes every output line as JSON: serve writes nothing else.
func (p *process) logLines(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(tb, json.Unmarshal(sc.Bytes(), &m), "not a JSON line: %q", sc.Text())
		out = append(out, m)
	}
	return out
}

// TestBinarySIGTERMFinishesRequestInFlight: SIGTERM while a notification is being
// copied (the import is slow): the process stops accepting, the request completes
// with 200, the process exits 0 well within 10 s, and the copy happened once.
func TestBinarySIGTERMFinishesRequestInFlight(t *testing.T) {
	bin := binary(t)
	importing := make(chan struct{}, 1)
	w := newWorld(t, func(sim http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/certificates/import") {
				select {
				case importing <- struct{}{}:
				default:
				}
			}
			sim.ServeHTTP(rw, r)
		})
	})
	const slowImport = 2 * time.Second
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Delay: slowImport, Times: 1})
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	p := startServe(t, bin, w.env)
	require.Equal(t, 200, p.waitHealth(t, 10*time.Second))

	// The webhook secret and a token pass through the server before the stop.
	a := do(t, "POST", p.url+"/events", strings.NewReader(`{"id":"1"}`), map[string]string{"Authorization": "Bearer " + testWebhookSecret})
	assert.NotEqual(t, 200, a.status, "not an event of the configured source: %v", a.body)
	tok := w.token("cert_issued", cert)

	res := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/notify", notifyBody(tok))
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			res <- answer{}
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		res <- answer{status: resp.StatusCode, body: body}
	}()
	select {
	case <-importing:
	case <-time.After(10 * time.Second):
		t.Fatalf("the notification never reached the import\n%s", p.out)
	}
	sent := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))

	time.Sleep(300 * time.Millisecond) // the import is still delayed
	_, err := net.DialTimeout("tcp", p.addr, time.Second)
	assert.Error(t, err, "no new connections after SIGTERM")

	got := <-res
	assert.Equal(t, 200, got.status, "the request in flight completes: %v", got.body)
	assert.Equal(t, "replicate", got.body["action"])
	assert.Equal(t, 0, p.exitCode(t, 10*time.Second), "exit 0")
	took := time.Since(sent)
	assert.Less(t, took, 10*time.Second)
	t.Logf("SIGTERM to exit: %v (import delayed %v)", took.Round(time.Millisecond), slowImport)

	assert.Equal(t, 1, w.sim.Count(cmsim.OpImport, w.bk), "one import")
	assert.Len(t, w.sim.Snapshot(w.bk), 1, "one copy")

	lines := p.logLines(t)
	var notify, stopped int
	for _, l := range lines {
		if l["msg"] == "request" && l["path"] == "/notify" {
			notify++
			assert.Equal(t, 200.0, l["status"])
		}
		if l["msg"] == "stopped" {
			stopped++
		}
	}
	assert.Equal(t, 1, notify, "one line for the request")
	assert.Equal(t, 1, stopped)
	assert.Empty(t, secretsIn(p.out.String(), tok), "no secret in any log line")
}

// TestBinaryInvalidConfiguration: the binary keeps serving, unhealthy, names the
// parameter (never a value), and stops cleanly.
func TestBinaryInvalidConfiguration(t *testing.T) {
	bin := binary(t)
	w := newWorld(t, nil)
	env := w.getenv(map[string]string{"SOURCE_INSTANCE_CRN": ""})
	vars := map[string]string{}
	for k := range w.env {
		vars[k] = env(k)
	}
	p := startServe(t, bin, vars)
	require.Equal(t, 503, p.waitHealth(t, 10*time.Second))
	a := do(t, "POST", p.url+"/notify", notifyBody("x.y.z"), nil)
	assert.Equal(t, 500, a.status)
	assert.Equal(t, "configuration", a.body["error"])
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.exitCode(t, 10*time.Second))
	var named []string
	for _, l := range p.logLines(t) {
		if l["msg"] == "invalid configuration" {
			named = append(named, fmt.Sprint(l["parameter"]))
		}
	}
	assert.Equal(t, []string{"source_instance_crn"}, named)
	assert.Empty(t, secretsIn(p.out.String()))
}

// BenchmarkColdStart measures the binary from exec to the first 200 on /healthz with a
// valid configuration (what a scale-from-zero request waits for, minus the platform's
// own share). Reported as ns/op and ms/op.
func BenchmarkColdStart(b *testing.B) {
	bin := binary(b)
	w := newWorld(b, nil)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		begin := time.Now()
		p := startServe(b, bin, w.env)
		if status := p.waitHealth(b, 10*time.Second); status != 200 {
			b.Fatalf("healthz %d\n%s", status, p.out)
		}
		total += time.Since(begin)
		b.StopTimer()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exitCode(b, 10*time.Second); code != 0 {
			b.Fatalf("exit %d", code)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/op")
}

// TestColdStartWithinBudget keeps the cold start far below Event Notifications' 10 s.
func TestColdStartWithinBudget(t *testing.T) {
	bin := binary(t)
	w := newWorld(t, nil)
	begin := time.Now()
	p := startServe(t, bin, w.env)
	require.Equal(t, 200, p.waitHealth(t, 10*time.Second))
	took := time.Since(begin)
	t.Logf("exec to the first 200 on /healthz: %v", took.Round(time.Microsecond))
	assert.Less(t, took, 2*time.Second)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.exitCode(t, 10*time.Second))
}
