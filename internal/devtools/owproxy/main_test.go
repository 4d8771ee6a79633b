package owproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// echoExec is the test action (testdata/echoaction), built once by TestMain
// for the host, statically (CGO_ENABLED=0) like the real exec.
var echoExec string

// secret is planted in parameters and metadata; no log may contain it.
const secret = "s3cr3t-apikey-0123456789abcdef"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "owproxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	echoExec = filepath.Join(dir, "exec")
	// go test puts its own GOROOT/bin first in PATH, so "go" is the same
	// toolchain.
	build := exec.Command("go", "build", "-o", echoExec, "./testdata/echoaction")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echo action: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startEcho starts the echo action and closes it at the end of the test.
func startEcho(t *testing.T, opts Options) *Process {
	t.Helper()
	p, err := Start(testCtx(t), echoExec, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// echoResult decodes the echo action's default result.
type echoResult struct {
	Params     map[string]any `json:"params"`
	Activation struct {
		ID            string `json:"id"`
		ActionName    string `json:"action_name"`
		ActionVersion string `json:"action_version"`
		Namespace     string `json:"namespace"`
		TransactionID string `json:"transaction_id"`
		DeadlineMS    int64  `json:"deadline_ms"`
	} `json:"activation"`
	CtxDeadlineMS int64    `json:"ctx_deadline_ms"`
	Pid           int      `json:"pid"`
	Env           []string `json:"env"`
}

func decodeEcho(t *testing.T, body []byte) echoResult {
	t.Helper()
	var r echoResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode echo result: %v", err)
	}
	return r
}

// syncBuffer is a bytes.Buffer safe for the capture goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(testCtx(t), d)
}
