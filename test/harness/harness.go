// Package harness sets up what the end-to-end tests need: the real action zip built
// the way ./deploy.sh build builds it, a loopback Certificate Manager simulator, and the
// compiled `exec` started and driven over ActionLoop exactly as the OpenWhisk Go runtime
// does (internal/devtools/owproxy), behind a local web-action endpoint.
//
// Everything the action prints and returns passes through Collect, so that a test can
// scan the whole suite's output for secrets.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/build/buildzip"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// ExecutionEnv is what IBM's go:1.21 kind expects in exec.env (manifest default).
const ExecutionEnv = "openwhisk/action-golang-v1.21"

var (
	buildOnce sync.Once
	zipPath   string
	buildErr  error
	buildDir  string
)

// RepoRoot is the module root (this file is in test/harness).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ActionZip builds build/action.zip's equivalent once per test binary, in a temporary
// directory, with the flags of deploy.sh build.
func ActionZip(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "certbackup-e2e-")
		if buildErr != nil {
			return
		}
		execPath := filepath.Join(buildDir, "exec")
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", execPath, "./function")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = &buildError{err: err, out: out.String()}
			return
		}
		zipPath = filepath.Join(buildDir, "action.zip")
		_, buildErr = buildzip.BuildFile(execPath, zipPath, ExecutionEnv)
	})
	if buildErr != nil {
		tb.Fatalf("build the action: %v", buildErr)
	}
	return zipPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// ExecPath unpacks the zip as the runtime does and returns the exec to start.
func ExecPath(tb testing.TB) string {
	tb.Helper()
	p, err := owproxy.Unpack(ActionZip(tb), tb.TempDir(), ExecutionEnv)
	if err != nil {
		tb.Fatalf("unpack: %v", err)
	}
	return p
}

// Options of a Stack.
type Options struct {
	Backups int // default 2
	Pool    int // exec processes behind the web action; default 1
	// Register the web action as the source's Callback URL channel (so that the
	// simulator's Order/Renew/Reimport deliver notifications to it). Default true.
	NoChannel bool
	// ChannelVersion of that channel; default 4.
	ChannelVersion int
	// Timeout is the activation time limit; default 30 s.
	Timeout time.Duration
	// Exec is the unpacked action binary to start (SharedExecPath); default: the zip
	// unpacked for this stack alone (ExecPath).
	Exec string
}

// Stack is a simulator, a pool of exec processes and a web action in front of them.
type Stack struct {
	Sim     *cmsim.Simulator
	SimURL  string
	Source  string
	Backups []string
	APIKey  string
	// Params are the parameters bound to the notify action, as manifest.yaml binds them.
	Params map[string]any
	Pool   *owproxy.Pool
	WebURL string

	tb        testing.TB
	execPath  string
	timeout   time.Duration
	responses []string
	mu        sync.Mutex
}

var regions = []string{"eu-de", "eu-gb", "jp-tok", "au-syd", "us-east", "jp-osa"}

// NewStack starts everything; it is torn down when the test ends.
func NewStack(tb testing.TB, o Options) *Stack {
	tb.Helper()
	if o.Backups == 0 {
		o.Backups = 2
	}
	if o.Pool == 0 {
		o.Pool = 1
	}
	if o.ChannelVersion == 0 {
		o.ChannelVersion = 4
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	sim, err := cmsim.New(cmsim.Options{AllowHTTPChannels: true, DeliveryTimeout: 40 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	if o.Exec == "" {
		o.Exec = ExecPath(tb)
	}
	s := &Stack{Sim: sim, SimURL: srv.URL, tb: tb, execPath: o.Exec, timeout: o.Timeout}
	s.APIKey = "e2e-" + randomHex(16)
	sim.AddAPIKey(s.APIKey)
	s.Source = sim.AddInstance("us-south")
	sim.Grant(s.APIKey, s.Source, cmsim.Writer)
	endpoints := map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south")}
	for i := range o.Backups {
		r := regions[i%len(regions)]
		b := sim.AddInstance(r)
		sim.Grant(s.APIKey, b, cmsim.Manager)
		endpoints[r] = sim.RegionURL(srv.URL, r)
		s.Backups = append(s.Backups, b)
	}
	ep, _ := json.Marshal(endpoints)
	backups, _ := json.Marshal(s.Backups)
	// As wskdeploy binds them: every value a string, unset optional ones "".
	s.Params = map[string]any{
		"mode":                 "notify",
		"apikey":               s.APIKey,
		"backup_apikey":        "",
		"source_instance_crn":  s.Source,
		"backup_instance_crns": string(backups),
		"source_public_key":    "",
		"iam_url":              sim.IAMURL(srv.URL),
		"endpoints":            string(ep),
		"private_endpoints":    "",
	}
	s.Pool, err = owproxy.StartPool(context.Background(), s.execPath, o.Pool, owproxy.Options{ExecutionEnv: ExecutionEnv})
	if err != nil {
		tb.Fatalf("start exec: %v", err)
	}
	tb.Cleanup(func() {
		Collect(s.AllLogs())
		s.mu.Lock()
		Collect(s.responses...)
		s.mu.Unlock()
		_ = s.Pool.Close()
	})
	web := owproxy.NewWebAction(s.Pool.RunFunc(owproxy.RunMeta{ActionName: "/guest/certbackup/notify", Timeout: o.Timeout}), owproxy.WebOptions{
		ActionPath: "/api/v1/web/guest/certbackup/notify",
		Params:     s.Params,
		Final:      true,
	})
	websrv := httptest.NewServer(s.record(web))
	tb.Cleanup(websrv.Close)
	s.WebURL = websrv.URL + "/api/v1/web/guest/certbackup/notify.http"
	if !o.NoChannel {
		if _, err := sim.AddChannel(s.Source, s.WebURL, o.ChannelVersion); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// record keeps every web response so that the secrets scan sees it.
func (s *Stack) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		s.mu.Lock()
		s.responses = append(s.responses, rec.Body.String())
		s.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Post sends body to the web action as Certificate Manager does and returns the status
// and the decoded JSON body (nil when it is not JSON).
func (s *Stack) Post(body []byte, contentType string) (int, map[string]any) {
	s.tb.Helper()
	if contentType == "" {
		contentType = "application/json"
	}
	resp, err := http.Post(s.WebURL, contentType, bytes.NewReader(body))
	if err != nil {
		s.tb.Fatalf("post to the web action: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// Notify posts {"data": token}.
func (s *Stack) Notify(token string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]string{"data": token})
	return s.Post(b, "")
}

// Run invokes the action directly (as a trigger or the CLI would), with params merged
// over the bound ones.
func (s *Stack) Run(params map[string]any) (int, map[string]any) {
	s.tb.Helper()
	merged := map[string]any{}
	for k, v := range s.Params {
		merged[k] = v
	}
	for k, v := range params {
		merged[k] = v
	}
	status, body, err := s.Pool.Run(context.Background(), merged, owproxy.RunMeta{ActionName: "/guest/certbackup/reconcile", Timeout: s.timeout})
	if err != nil {
		s.tb.Fatalf("run: %v", err)
	}
	s.mu.Lock()
	s.responses = append(s.responses, string(body))
	s.mu.Unlock()
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return status, out
}

// AllLogs is everything the exec processes printed so far.
func (s *Stack) AllLogs() string {
	var b bytes.Buffer
	for _, l := range s.Pool.Logs() {
		b.Write(l.Stdout)
		b.Write(l.Stderr)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	collectedMu sync.Mutex
	collected   []string
)

// Collect records output for the suite-wide secrets scan.
func Collect(texts ...string) {
	collectedMu.Lock()
	defer collectedMu.Unlock()
	collected = append(collected, texts...)
}

// Collected returns everything recorded so far.
func Collected() []string {
	collectedMu.Lock()
	defer collectedMu.Unlock()
	return append([]string(nil), collected...)
}

// CopyDescription is the description certbackup writes on copy copyID ("": an
// import) of stored source certificate c in backup, with the stack's API key's proof.
func (s *Stack) CopyDescription(backup, copyID string, c cmsim.StoredCertificate) string {
	return cms.CopyDescription(match.NewOwner(s.APIKey), backup, copyID, cms.Certificate{
		ID: c.ID, Name: c.Name, Description: c.Description, SerialNumber: c.SerialNumber, BeginsOn: c.BeginsOn, ExpiresOn: c.ExpiresOn,
	})
}
