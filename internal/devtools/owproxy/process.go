package owproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors from Start and Run. The first three carry the runtime proxy's own
// messages for a failed start (docs/services/openwhisk.md §4.2).
var (
	ErrExitedDuringInit = errors.New("command exited abruptly during initialization")
	ErrNotInitialized   = errors.New("the action did not initialize properly")
	ErrBadAck           = errors.New("the action's ack is not a JSON {\"ok\": bool} line")
	ErrAckTimeout       = errors.New("the action did not ack in time")
	// ErrTimeLimit: the activation outlived its deadline or its context and
	// the process was killed, as the platform does at the action time limit.
	ErrTimeLimit = errors.New("the action exceeded its time limit and was killed")
	// ErrClosed: the Process or Pool was closed.
	ErrClosed = errors.New("owproxy: closed")
)

// Proxy answers to /run (docs/services/openwhisk.md §3.4), newline included as the proxy
// sends them.
var (
	bodyCommandExited  = []byte(`{"error":"command exited"}` + "\n")
	bodyNoAction       = []byte(`{"error":"no action defined yet"}` + "\n")
	bodyNotDictOrArray = []byte(`{"error":"The action did not return a dictionary or array."}` + "\n")
)

// Options configure how Start launches exec.
type Options struct {
	// ExecutionEnv is passed as __OW_EXECUTION_ENV; default DefaultExecutionEnv.
	ExecutionEnv string
	// ProxyVersion is passed as __OW_PROXY_VERSION; default DefaultProxyVersion.
	ProxyVersion string
	// APIHost is passed as __OW_API_HOST (always set, possibly empty, so the
	// action always sees the same set of names).
	APIHost string
	// InitEnv is the /init "env" map (init parameters, __OW_* values of the
	// init request). Values are stringified as the invoker does: strings as
	// they are, nil as "", numbers and booleans as text, objects and arrays
	// as compact JSON. They override the four variables above.
	InitEnv map[string]any
	// AckTimeout bounds the wait for the start-up ack; default DefaultAckTimeout.
	AckTimeout time.Duration
	// Stdout and Stderr receive a copy of the action's output and the
	// sentinels, as the container log would. Output is also kept in memory
	// for Process.Logs. If one writer is given for both, or to several
	// processes, it must be safe for concurrent use (Pool takes care of that).
	Stdout, Stderr io.Writer
}

func (o Options) withDefaults() Options {
	if o.ExecutionEnv == "" {
		o.ExecutionEnv = DefaultExecutionEnv
	}
	if o.ProxyVersion == "" {
		o.ProxyVersion = DefaultProxyVersion
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	return o
}

// environment is the child's complete environment. The proxy replaces the
// environment rather than extending it: no PATH, no HOME, no TZ
// (docs/services/openwhisk.md §5.1).
func (o Options) environment() ([]string, error) {
	env := map[string]string{
		"__OW_EXECUTION_ENV": o.ExecutionEnv,
		"__OW_WAIT_FOR_ACK":  "1",
		"__OW_PROXY_VERSION": o.ProxyVersion,
		"__OW_API_HOST":      o.APIHost,
	}
	for k, v := range o.InitEnv {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("owproxy: invalid init env name %q", k)
		}
		s, err := stringify(v)
		if err != nil {
			return nil, fmt.Errorf("owproxy: init env %s: %w", k, err)
		}
		if strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("owproxy: init env %s contains a NUL byte", k)
		}
		env[k] = s
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list, nil
}

// stringify renders an init env value like the invoker (ContainerProxy).
func stringify(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Process is one running action container: exec started by the proxy.
// Its methods are safe for concurrent use; Run serialises activations, as the
// platform sends at most one at a time to a container.
type Process struct {
	cmd        *exec.Cmd
	pgid       int
	stdin      *os.File // write end of the child's stdin
	results    *os.File // read end of the child's fd 3
	reader     *bufio.Reader
	logs       *capture
	ackLatency time.Duration

	exited chan struct{} // closed once the process has been reaped

	runMu   sync.Mutex
	dropped bool // the proxy dropped its executor after a failed interaction

	closeOnce sync.Once
	closing   chan struct{}
}

// Start launches exec as the Go runtime proxy does (docs/services/openwhisk.md §4,
// §5.1, §7):
// no arguments; only the __OW_* variables of Options and InitEnv in the
// environment; stdin a pipe; fd 3 the write end of a pipe for results;
// stdout and stderr captured. It then waits for the ack line, parsed as JSON
// {"ok": true}, and fails if the process exits first, acks ok:false or
// garbage, or does not ack within AckTimeout or before ctx is done.
//
// ctx bounds the start-up only; the process lives until Close. The working
// directory is exec's directory (the platform's is unspecified; the action
// must not depend on it).
func Start(ctx context.Context, execPath string, opts Options) (*Process, error) {
	opts = opts.withDefaults()
	abs, err := filepath.Abs(execPath)
	if err != nil {
		return nil, fmt.Errorf("owproxy: exec path: %w", err)
	}
	env, err := opts.environment()
	if err != nil {
		return nil, err
	}

	// Four pipes: stdin, results (fd 3), stdout, stderr.
	var pipes [4][2]*os.File
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for _, pp := range pipes[:i] {
				closeAll(pp[:])
			}
			return nil, fmt.Errorf("owproxy: pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	stdinR, stdinW := pipes[0][0], pipes[0][1]
	resR, resW := pipes[1][0], pipes[1][1]
	outR, outW := pipes[2][0], pipes[2][1]
	errR, errW := pipes[3][0], pipes[3][1]
	childEnds := []*os.File{stdinR, resW, outW, errW}
	parentEnds := []*os.File{stdinW, resR, outR, errR}

	cmd := &exec.Cmd{
		Path:       abs,
		Args:       []string{abs}, // argv[0] only: no arguments means "speak ActionLoop"
		Env:        env,
		Dir:        filepath.Dir(abs),
		Stdin:      stdinR,
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{resW}, // becomes fd 3
		// A process group lets the harness kill whatever the action
		// spawned, as destroying the container would.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		closeAll(append(parentEnds, childEnds...))
		return nil, fmt.Errorf("owproxy: cannot start action: %w", err)
	}
	// Keep only the parent's ends, so that EOF on fd 3 and the log pipes
	// means the child (and its descendants) are gone.
	closeAll(childEnds)

	logs, err := newCapture(outR, errR, opts.Stdout, opts.Stderr)
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		closeAll(parentEnds)
		return nil, fmt.Errorf("owproxy: capture logs: %w", err)
	}
	p := &Process{
		cmd:     cmd,
		pgid:    cmd.Process.Pid,
		stdin:   stdinW,
		results: resR,
		reader:  bufio.NewReaderSize(resR, 64*1024),
		logs:    logs,
		exited:  make(chan struct{}),
		closing: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait() // the exit status is not part of the protocol
		close(p.exited)
	}()

	if err := p.awaitAck(ctx, opts.AckTimeout); err != nil {
		// With OW_LOG_INIT_ERROR (set in every Go image) a failed init
		// ends with the sentinels, so the log reader finds the cause.
		p.kill()
		p.logs.endActivation()
		_ = p.Close()
		return nil, fmt.Errorf("owproxy: cannot start action: %w", err)
	}
	p.ackLatency = time.Since(started)
	return p, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// lineResult is one read of fd 3.
type lineResult struct {
	line []byte
	err  error
}

// readLine reads one line of fd 3 in the background, so that the caller can
// also watch the process, the clock and its context.
func (p *Process) readLine(send []byte) <-chan lineResult {
	ch := make(chan lineResult, 1)
	go func() {
		if send != nil {
			if _, err := p.stdin.Write(send); err != nil {
				ch <- lineResult{err: err}
				return
			}
		}
		line, err := p.reader.ReadBytes('\n')
		ch <- lineResult{line, err}
	}()
	return ch
}

// abandonRead unblocks a pending readLine and waits for it to return.
func (p *Process) abandonRead(ch <-chan lineResult) lineResult {
	_ = p.stdin.Close()
	_ = p.results.Close()
	return <-ch
}

func (p *Process) awaitAck(ctx context.Context, timeout time.Duration) error {
	ch := p.readLine(nil)
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var a lineResult
	select {
	case a = <-ch:
	case <-p.exited:
		// Prefer an ack written just before the exit; the next Run will
		// then report the exit, as the proxy would.
		select {
		case a = <-ch:
		case <-time.After(50 * time.Millisecond):
			p.abandonRead(ch)
			return ErrExitedDuringInit
		}
	case <-timer.C:
		p.kill()
		p.abandonRead(ch)
		return fmt.Errorf("%w (%v)", ErrAckTimeout, timeout)
	case <-ctx.Done():
		p.kill()
		p.abandonRead(ch)
		return ctx.Err()
	}
	if a.err != nil {
		return ErrExitedDuringInit
	}
	var parsed struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal(a.line, &parsed); err != nil {
		return fmt.Errorf("%w: %w", ErrBadAck, err)
	}
	if !parsed.OK {
		return ErrNotInitialized
	}
	return nil
}

// AckLatency is the time from starting the process to reading its ack: the
// cold-start cost of the action binary itself.
func (p *Process) AckLatency() time.Duration { return p.ackLatency }

// Pid is the process id of exec.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Logs returns everything the action wrote to stdout and stderr so far, with
// a Sentinel after each activation. Use SplitActivations to attribute it.
// The output is kept in memory for the life of the Process.
func (p *Process) Logs() Logs { return p.logs.logs() }

// RunMeta is the activation metadata sent beside "value" in /run.
// Zero fields get defaults.
type RunMeta struct {
	Namespace     string // default "guest"
	ActionName    string // default "/<namespace>/action"; a leading slash is added if missing
	ActionVersion string // default "0.0.1"
	// ActivationID and TransactionID default to the ids in the context
	// (ContextWithIDs), else to fresh random 32-hex-digit ids.
	ActivationID  string
	TransactionID string
	// APIKey is sent as api_key only when set (provide-api-key).
	APIKey string
	// Timeout is the action time limit; default DefaultTimeout. The deadline
	// sent is now+Timeout, or the context deadline if earlier, and the
	// process is killed when it passes.
	Timeout time.Duration
	// Extra top-level string fields (IBM adds some; how exactly is not
	// documented). They may not shadow the fields above.
	Extra map[string]string
}

type idsKey struct{}

type ids struct{ activation, transaction string }

// ContextWithIDs returns a context that makes Run use these ids when RunMeta
// leaves them empty. The web-action front uses it so that the
// x-openwhisk-activation-id header names the activation the action saw.
func ContextWithIDs(ctx context.Context, activationID, transactionID string) context.Context {
	return context.WithValue(ctx, idsKey{}, ids{activationID, transactionID})
}

// NewID returns a random 32-hex-digit id, the shape of OpenWhisk activation ids.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// Run sends one activation and returns the proxy's answer (docs/services/openwhisk.md
// §3.4):
//
//	200 + the result line        result is a JSON object or array (or null, which the proxy lets through)
//	502 did not return a dictionary or array   result line is anything else
//	400 command exited           the process died during the activation; the proxy drops it
//	500 no action defined yet    every Run after that
//	500 command exited           the process died between activations
//
// Bodies are the proxy's, newline included. A Sentinel is appended to both
// log streams after every activation that reached the process.
//
// err is non-nil only when no proxy answer exists: the payload cannot be
// encoded, or the deadline (RunMeta.Timeout) or ctx ended first, in which
// case the process is killed as the platform does at the time limit, err
// wraps ErrTimeLimit and the context error, and later Runs get 500.
func (p *Process) Run(ctx context.Context, params map[string]any, meta RunMeta) (status int, body []byte, err error) {
	payload, deadline, err := encodeRun(ctx, params, meta)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return p.RunRaw(ctx, payload)
}

// RunRaw is /run with an arbitrary body, for hostile-input tests: the proxy
// forwards any body without looking at it, minus its newline bytes. Only ctx
// limits the activation's time.
func (p *Process) RunRaw(ctx context.Context, payload []byte) (status int, body []byte, err error) {
	p.runMu.Lock()
	defer p.runMu.Unlock()

	select {
	case <-p.closing:
		return 500, bodyNoAction, nil
	default:
	}
	if p.dropped {
		return 500, bodyNoAction, nil
	}
	select {
	case <-p.exited:
		return 500, bodyCommandExited, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("owproxy: activation not sent: %w", err)
	}

	// The proxy removes every \n byte (a JSON body may be pretty-printed)
	// and terminates the line with one.
	line := make([]byte, 0, len(payload)+1)
	line = append(line, bytes.ReplaceAll(payload, []byte("\n"), nil)...)
	line = append(line, '\n')

	ch := p.readLine(line)
	var r lineResult
	var killedBy error
	select {
	case r = <-ch:
	case <-p.exited:
		select {
		case r = <-ch: // a result written just before the exit still counts
		case <-time.After(100 * time.Millisecond):
			// A descendant holds fd 3 open; the proxy answers on exit.
			p.kill()
			r = p.abandonRead(ch)
			r.err = io.ErrUnexpectedEOF
		}
	case <-ctx.Done():
		killedBy = ctx.Err()
		p.kill()
		select {
		case r = <-ch:
		case <-time.After(2 * time.Second):
			r = p.abandonRead(ch)
		}
	}
	p.logs.endActivation()

	switch {
	case killedBy != nil:
		p.dropped = true
		return 0, nil, fmt.Errorf("owproxy: activation: %w: %w", ErrTimeLimit, killedBy)
	case r.err != nil:
		p.dropped = true
		return 400, bodyCommandExited, nil
	case !isDictOrArray(r.line):
		return 502, bodyNotDictOrArray, nil
	}
	return 200, r.line, nil
}

// isDictOrArray is the proxy's check: the line unmarshals into a map or a
// slice. JSON null passes, because Go unmarshals null into a nil map.
func isDictOrArray(line []byte) bool {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || !json.Valid(t) {
		return false
	}
	return t[0] == '{' || t[0] == '[' || bytes.Equal(t, []byte("null"))
}

// encodeRun builds the /run object of docs/services/openwhisk.md §3.3 and its deadline.
func encodeRun(ctx context.Context, params map[string]any, meta RunMeta) ([]byte, time.Time, error) {
	timeout := meta.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ns := meta.Namespace
	if ns == "" {
		ns = "guest"
	}
	name := meta.ActionName
	if name == "" {
		name = ns + "/action"
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	version := meta.ActionVersion
	if version == "" {
		version = "0.0.1"
	}
	ctxIDs, _ := ctx.Value(idsKey{}).(ids)
	activationID := firstNonEmpty(meta.ActivationID, ctxIDs.activation, NewID())
	transactionID := firstNonEmpty(meta.TransactionID, ctxIDs.transaction, NewID())
	if params == nil {
		params = map[string]any{} // the invoker always sends an object
	}

	obj := map[string]any{
		"value":          params,
		"namespace":      ns,
		"action_name":    name,
		"action_version": version,
		"activation_id":  activationID,
		"transaction_id": transactionID,
		// A string, as the invoker sends it (.toString.toJson), although
		// the Apache docs say Number.
		"deadline": strconv.FormatInt(deadline.UnixMilli(), 10),
	}
	if meta.APIKey != "" {
		obj["api_key"] = meta.APIKey
	}
	for k, v := range meta.Extra {
		if _, taken := obj[k]; taken || k == "api_key" {
			return nil, time.Time{}, fmt.Errorf("owproxy: extra /run field %q shadows a standard field", k)
		}
		obj[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // spray-json does not escape <, >, &
	if err := enc.Encode(obj); err != nil {
		// json errors name types, not values; params stay out of the message.
		return nil, time.Time{}, fmt.Errorf("owproxy: encode /run payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), deadline, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// kill destroys the process group, like removing the container.
func (p *Process) kill() {
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
}

// closeGrace is how long Close lets the action exit on its own after stdin
// closes before it kills the process group.
const closeGrace = 500 * time.Millisecond

// Close stops the action: it closes stdin (an ActionLoop action exits at
// EOF), kills the process group if it is still there after closeGrace,
// and releases the pipes. A Run in progress fails with 400 command exited;
// later Runs get 500 no action defined yet. Logs stay readable.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(closeGrace):
		}
		// Also ends descendants that outlived the leader. (Once every
		// member is gone the group id could in theory be reused, after a
		// full wrap of the pid space; acceptable for a test harness.)
		p.kill()
		<-p.exited
		p.logs.close()
		// Taking runMu waits for a Run in progress, which the kill ended,
		// before the results pipe goes away under it.
		p.runMu.Lock()
		_ = p.results.Close()
		p.runMu.Unlock()
	})
	return nil
}
