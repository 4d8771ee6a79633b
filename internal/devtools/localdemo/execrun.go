package localdemo

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// binary is the real build/exec, run as a subprocess with nothing in its environment
// but what a demo gives it (the platform's own environment, in Code Engine), its
// output kept for the report and for the secret scan.
type binary struct {
	path   string
	copyTo io.Writer // Options.ActionLogs, may be nil

	mu      sync.Mutex
	outputs []string // everything every run wrote, for the secret scan
}

// checkBinary makes sure path is the linux/amd64 executable that deploy.sh build
// makes, and that this machine can run it, and says what it is.
func checkBinary(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("the binary: %w (./deploy.sh build makes it)", err)
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not an ELF executable (./deploy.sh build makes it): %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%s is not a linux/amd64 executable", path)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("%s is built for linux/amd64, as deployed, and this demo runs it: it needs a linux/amd64 machine (this is %s/%s)", path, runtime.GOOS, runtime.GOARCH)
	}
	return fmt.Sprintf("%s (%.1f MB), linux/amd64", path, float64(st.Size())/(1<<20)), nil
}

// execRun is one finished run of the binary.
type execRun struct {
	args           []string
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// run runs the binary with args and exactly env, and waits for it.
func (b *binary) run(ctx context.Context, env map[string]string, args ...string) (execRun, error) {
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.Env = envList(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = b.tee(&stdout), b.tee(&stderr)
	t0 := time.Now()
	err := cmd.Run()
	r := execRun{args: args, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(t0)}
	b.keep(r.stdout + r.stderr)
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		r.code = exitErr.ExitCode()
	case err != nil:
		return r, fmt.Errorf("run %s %s: %w", b.path, strings.Join(args, " "), err)
	}
	return r, nil
}

// start starts the binary with args and env and returns at once; wait for it with
// cmd.Wait. Its output is read as it comes (copyTo), and kept.
func (b *binary) start(env map[string]string, out io.Writer, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(b.path, args...)
	cmd.Env = envList(env)
	cmd.Stdout, cmd.Stderr = b.tee(out), b.tee(out)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", b.path, strings.Join(args, " "), err)
	}
	return cmd, nil
}

func (b *binary) tee(w io.Writer) io.Writer {
	if b.copyTo == nil {
		return w
	}
	return io.MultiWriter(w, b.copyTo)
}

func (b *binary) keep(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outputs = append(b.outputs, s)
}

// output is everything the binary wrote in every run so far.
func (b *binary) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.outputs, "\n")
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// secretsIn names the kinds of secret found in text: any of keys, a private key, a
// bearer token or a simulator token.
func secretsIn(text string, keys map[string]string) []string {
	var found []string
	for _, what := range slices.Sorted(maps.Keys(keys)) {
		if k := keys[what]; k != "" && strings.Contains(text, k) {
			found = append(found, what)
		}
	}
	lower := strings.ToLower(text)
	if strings.Contains(text, "PRIVATE KEY") {
		found = append(found, "a private key")
	}
	// "the bearer token is not the webhook secret" is a fine thing to log; a bearer
	// followed by a token is not.
	if bearerRE.MatchString(text) || strings.Contains(lower, "access_token") ||
		strings.Contains(lower, "refresh_token") || strings.Contains(text, simulatorTokenPrefix) {
		found = append(found, "a bearer token")
	}
	return found
}

var bearerRE = regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/=-]{12,}`)

// listenLoopback serves h on a fresh loopback port and returns the server and its base
// URL. Never any other address: the simulators accept throwaway keys.
func listenLoopback(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// shutdown stops srv, waiting a little for requests in flight.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
}

// freePort is a loopback port nothing listens on now, for a server the demo starts as
// a process (PORT).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
