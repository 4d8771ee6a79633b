package codeengine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/test/harness"
)

// webhookSecret is the bearer Event Notifications sends (a sensitive custom header).
const webhookSecret = "ce-suite-webhook-secret-0123456789abcdef-QwErTy"

var ca = testpki.MustNewCA("codeengine suite CA")

// world is a Secrets Manager source and two Secrets Manager backups on loopback, an API
// key with SecretsReader on the source and Manager on the backups, and the
// environment that configures the binary against them.
type world struct {
	cloud   *harness.Cloud
	key     string
	source  string
	backups []string
	env     map[string]string

	mu   sync.Mutex
	keys []string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{cloud: harness.NewCloud(t, harness.CloudOptions{}), key: "ce-suite-key-" + randomHex(12)}
	w.cloud.AddAPIKey(w.key)
	w.source = w.cloud.SM.AddInstance("us-south")
	w.cloud.SM.Grant(w.key, w.source, smsim.SecretsReader)
	for _, r := range []string{"eu-de", "eu-gb"} {
		b := w.cloud.SM.AddInstance(r)
		w.cloud.SM.Grant(w.key, b, smsim.Manager)
		w.backups = append(w.backups, b)
	}
	w.env = map[string]string{
		"APIKEY":                  w.key,
		"SOURCE_INSTANCE_CRN":     w.source,
		"BACKUP_INSTANCE_CRNS":    strings.Join(w.backups, ","),
		"IAM_URL":                 w.cloud.IAMURL(),
		"ENDPOINTS":               w.cloud.Endpoints(append([]string{w.source}, w.backups...)...),
		"WEBHOOK_SECRET":          webhookSecret,
		"MAX_REQUESTS_PER_SECOND": "500",
	}
	t.Cleanup(func() {
		w.mu.Lock()
		keys := append(w.keys, w.cloud.SMPrivateKeys(w.cloud.SM.Instances()...)...)
		w.mu.Unlock()
		harness.RegisterSecrets([]string{w.key, webhookSecret}, keys, w.cloud.Tokens())
	})
	return w
}

// seed adds n imported certificates to the source and returns their CRNs.
func (w *world) seed(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		name := "svc-" + randomHex(4)
		iss := ca.MustIssue(name + ".ce.example")
		w.mu.Lock()
		w.keys = append(w.keys, iss.KeyPEM)
		w.mu.Unlock()
		id, err := w.cloud.SM.Seed(w.source, smsim.Seed{Name: name, Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, Intermediate: iss.Intermediate})
		require.NoError(t, err)
		out = append(out, secretCRN(w.source, id))
	}
	return out
}

func secretCRN(instance, id string) string { return strings.TrimSuffix(instance, ":") + "secret:" + id }

func secretID(crn string) string { return crn[strings.LastIndex(crn, ":")+1:] }

// copies counts, per source secret CRN, the secrets of backup that name it in
// certbackup's marker.
func (w *world) copies(t testing.TB, backup string) map[string]int {
	t.Helper()
	all, err := w.cloud.SM.List(backup)
	require.NoError(t, err)
	out := map[string]int{}
	for _, s := range all {
		if src, _ := s.CustomMetadata["certbackup_source"].(string); src != "" {
			out[src]++
		}
	}
	return out
}

// requests is every request either simulator logged (IAM included).
func (w *world) requests() int { return len(w.cloud.SM.Requests()) + len(w.cloud.CM.Requests()) }

// envelope is Event Notifications' envelope of a Secrets Manager event about secrets
// (their secret_id as given: CRN or UUID).
func (w *world) envelope(event, secretType string, secrets ...string) []byte {
	return envelopeFrom(w.source, event, secretType, secrets...)
}

func envelopeFrom(source, event, secretType string, secrets ...string) []byte {
	list := []map[string]any{}
	for _, s := range secrets {
		list = append(list, map[string]any{"secret_id": s, "secret_name": "n", "secret_group_id": "default"})
	}
	b, _ := json.Marshal(map[string]any{
		"id": "ev-" + randomHex(6), "source": source, "specversion": "1.0",
		"type": "com.ibm.cloud.secrets-manager." + event, "time": time.Now().UTC().Format(time.RFC3339),
		"datacontenttype": "application/json", "ibmenseverity": "LOW", "notification_id": randomHex(8),
		"data": map[string]any{"event_type": event, "secret_type": secretType, "secrets": list, "source_instance_crn": source},
	})
	return b
}

// process is the binary running.
type process struct {
	cmd    *exec.Cmd
	url    string
	addr   string
	out    *harness.Buffer
	exited chan struct{}
	err    error
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the binary with args and exactly env (Code Engine gives the container its
// own environment, not the test's). Its output is collected for the scan.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	p := &process{cmd: cmd, out: &harness.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		harness.Collect(p.out.String())
	})
	return p
}

// serve starts `exec serve` on a free port with env, and waits until it is healthy.
func serve(t testing.TB, env map[string]string) *process {
	t.Helper()
	port := freePort(t)
	e := maps.Clone(env)
	e["PORT"] = strconv.Itoa(port)
	p := start(t, e, "serve")
	p.addr = "127.0.0.1:" + strconv.Itoa(port)
	p.url = "http://" + p.addr
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		resp, err := c.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "healthy\n%s", p.out)
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("serve exited: %v\n%s", p.err, p.out)
		default:
		}
	}
	t.Fatalf("serve never answered /healthz\n%s", p.out)
	return nil
}

// exitCode waits for the process to end.
func (p *process) exitCode(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("the process did not exit within %v\n%s", within, p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// logLines decodes every line the process printed as JSON: serve prints nothing else.
func (p *process) logLines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if !assert.NoError(t, json.Unmarshal(sc.Bytes(), &m), "not a JSON line: %.200q", sc.Text()) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// answer is an HTTP answer of the binary.
type answer struct {
	status int
	body   map[string]any
	raw    string
	took   time.Duration
	err    error
}

// results are the answer's per-pair results.
func (a answer) results() []map[string]any {
	var out []map[string]any
	rs, _ := a.body["results"].([]any)
	for _, r := range rs {
		m, _ := r.(map[string]any)
		out = append(out, m)
	}
	return out
}

// post sends body to path with the headers and records the whole answer (status line,
// headers, body) for the scan. It never fails the test: the caller asserts.
func (p *process) post(path string, headers map[string]string, body []byte) answer {
	req, _ := http.NewRequest(http.MethodPost, p.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return do(req)
}

func do(req *http.Request) answer {
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw), took: time.Since(start)}
	var hdr strings.Builder
	for k, v := range resp.Header {
		fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(v, ","))
	}
	harness.Collect(resp.Status + "\n" + hdr.String() + a.raw)
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// events posts an envelope to /events with the webhook's bearer.
func (p *process) events(body []byte) answer {
	return p.post("/events", map[string]string{"Authorization": "Bearer " + webhookSecret}, body)
}

// noSecrets asserts that text holds none of the world's secrets.
func (w *world) noSecrets(t testing.TB, what, text string) {
	t.Helper()
	for _, s := range []string{w.key, webhookSecret} {
		assert.NotContains(t, text, s, "%s", what)
	}
	assert.NotContains(t, text, "PRIVATE KEY", "%s", what)
	for _, tok := range w.cloud.Tokens() {
		assert.NotContains(t, text, tok, "%s", what)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
