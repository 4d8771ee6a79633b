package codeengine

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

// job runs the Code Engine job: the binary with no argument and CE_JOB set, as a job
// run starts it, with env over the world's. It returns the exit code and the output.
func (w *world) job(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	e := copyEnv(w.env)
	e["CE_JOB"] = "certbackup-reconcile"
	e["CE_JOBRUN"] = "certbackup-reconcile-" + randomHex(3)
	for k, v := range env {
		e[k] = v
	}
	p := start(t, e, args...)
	code := p.exitCode(t, 90*time.Second)
	w.noSecrets(t, "the job's output", p.out.String())
	return code, p.out.String()
}

// requireAllCopiedOnce: every source secret has exactly one copy in every backup.
func (w *world) requireAllCopiedOnce(t *testing.T, ids []string) {
	t.Helper()
	for _, b := range w.backups {
		got := w.copies(t, b)
		assert.Len(t, got, len(ids), "%s holds copies of the source's secrets only", b)
		for _, id := range ids {
			assert.Equal(t, 1, got[id], "%s is in %s exactly once", id, b)
		}
	}
}

// TestSIGTERMMidBatch: SIGTERM while a batch of 30 secrets is being copied, every
// import taking 2.5 s (more than the 8 s budget allows for 30 at 8 at a time): the
// process stops accepting new connections, answers the request in flight with 503 and
// what is left for Event Notifications' retry, exits 0 within 10 s of the signal, and
// nothing is duplicated; the job's reconcile then copies what was left, each secret
// once.
func TestSIGTERMMidBatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 30)
	importing := make(chan struct{})
	var once sync.Once
	w.cloud.FrontSM(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/api/v2/secrets") {
				once.Do(func() { close(importing) })
			}
			next.ServeHTTP(rw, r)
		})
	})
	for _, b := range w.backups {
		w.cloud.SM.Inject(smsim.Fault{Op: smsim.OpCreateSecret, Instance: b, Delay: 2500 * time.Millisecond})
	}
	p := serve(t, w.env)
	res := make(chan answer, 1)
	go func() { res <- p.events(w.envelope("secret_created", "imported_cert", ids...)) }()
	select {
	case <-importing:
	case <-time.After(10 * time.Second):
		t.Fatalf("the batch never reached an import\n%s", p.out)
	}
	sent := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(300 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}
	a := <-res
	require.NoError(t, a.err, "the request in flight is answered")
	assert.Equal(t, 0, p.exitCode(t, 11*time.Second), "exit 0")
	took := time.Since(sent)
	assert.Less(t, took, 10*time.Second, "exits within 10 s of SIGTERM")
	assert.Equal(t, http.StatusServiceUnavailable, a.status, "%.600s", a.raw)
	left, _ := a.body["left_for_retry"].([]any)
	assert.NotEmpty(t, left, "a 503 says what is left: %.600s", a.raw)
	verified := map[string]int{}
	for _, r := range a.results() {
		if r["verified"] == true {
			verified[r["source_crn"].(string)]++
		}
	}
	for _, b := range w.backups {
		for src, n := range w.copies(t, b) {
			assert.Equal(t, 1, n, "never two copies of %s in %s", src, b)
		}
	}
	t.Logf("SIGTERM to exit %v: answered %d with %d secrets copied to both backups, %d left for the retry", took.Round(time.Millisecond), a.status, len(verified), len(left))

	w.cloud.SM.ClearFaults()
	code, out := w.job(t, map[string]string{"MAX_REQUESTS_PER_SECOND": "1000"})
	assert.Equal(t, 0, code, "the job's reconcile completes: %.2000s", out)
	w.requireAllCopiedOnce(t, ids)
	w.noSecrets(t, "the process's output", p.out.String())
}

// TestBackupDown: one backup's region is down (every call 503) when a cold process
// gets a notification: the answer is a 5xx, so that Event Notifications retries, in
// time, and the other backup is copied; the retry after the region is back copies the
// rest, once.
func TestBackupDown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 5)
	down, up := w.backups[1], w.backups[0]
	fault := w.cloud.SM.Inject(smsim.Fault{Instance: down, Status: http.StatusServiceUnavailable})
	p := serve(t, w.env)
	body := w.envelope("secret_created", "imported_cert", ids...)
	a := p.events(body)
	require.NoError(t, a.err)
	assert.GreaterOrEqual(t, a.status, 500, "a 5xx, so that Event Notifications retries: %.600s", a.raw)
	assert.Less(t, a.took, 10*time.Second, "answered within Event Notifications' 10 s")
	got := w.copies(t, up)
	for _, id := range ids {
		assert.Equal(t, 1, got[id], "%s is copied into the backup that is up", id)
	}
	assert.Zero(t, w.cloud.SM.Writes(down))
	for _, r := range a.results() {
		if r["backup_instance_crn"] == up {
			assert.Equal(t, true, r["verified"], "%v", r)
		} else {
			assert.Equal(t, "failed", r["outcome"], "%v", r)
			assert.Equal(t, "retryable", r["error_class"], "a region down is retryable: %v", r)
		}
	}

	w.cloud.SM.RemoveFault(fault)
	a = p.events(body) // Event Notifications' retry
	assert.Equal(t, http.StatusOK, a.status, "%.600s", a.raw)
	w.requireAllCopiedOnce(t, ids)
	w.noSecrets(t, "the process's output", p.out.String())
}

// TestBudgetThenJobRepairs: a batch that cannot be copied within Event
// Notifications' 10 s (at the default 20 requests a second per instance) is answered
// 503 in time with left_for_retry; what was copied is copied once; the job's reconcile
// (CE_JOB) then copies everything, exit 0, and verify agrees. The job's exit codes:
// 1 when work is left (a backup down), 2 on a configuration error (nothing called).
func TestBudgetThenJobRepairs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 60)
	env := copyEnv(w.env)
	delete(env, "MAX_REQUESTS_PER_SECOND") // the default, 20
	p := serve(t, env)
	a := p.events(w.envelope("secret_created", "imported_cert", ids...))
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusServiceUnavailable, a.status, "%.600s", a.raw)
	assert.Less(t, a.took, 10*time.Second, "answered within Event Notifications' 10 s")
	left, _ := a.body["left_for_retry"].([]any)
	assert.NotEmpty(t, left, "what is left is named: %.600s", a.raw)
	for _, l := range left {
		assert.Contains(t, ids, l, "left_for_retry names the source's secrets")
	}
	for _, b := range w.backups {
		for src, n := range w.copies(t, b) {
			assert.Equal(t, 1, n, "never two copies of %s in %s", src, b)
		}
	}
	t.Logf("100%% of the budget: %d of %d secrets left for the retry, answered in %v", len(left), len(ids), a.took.Round(time.Millisecond))

	// A backup down: the job exits 1 and says why.
	fault := w.cloud.SM.Inject(smsim.Fault{Instance: w.backups[1], Status: http.StatusServiceUnavailable})
	code, out := w.job(t, map[string]string{"MAX_REQUESTS_PER_SECOND": "1000"})
	assert.Equal(t, 1, code, "work left: %.1500s", out)
	w.cloud.SM.RemoveFault(fault)

	// The job repairs everything.
	code, out = w.job(t, map[string]string{"MAX_REQUESTS_PER_SECOND": "1000"})
	assert.Equal(t, 0, code, "%.2000s", out)
	w.requireAllCopiedOnce(t, ids)
	code, out = w.job(t, nil, "verify")
	assert.Equal(t, 0, code, "verify: %.1500s", out)

	// A configuration error: exit 2, nothing called, the variable named, no value.
	before := w.requests()
	code, out = w.job(t, map[string]string{"BACKUP_INSTANCE_CRNS": "crn:v1:bluemix:public:kms:us-south:a/0123:4567::"})
	assert.Equal(t, 2, code, "%.1500s", out)
	assert.Contains(t, out, "BACKUP_INSTANCE_CRNS")
	assert.NotContains(t, out, "kms:us-south")
	assert.Equal(t, before, w.requests(), "nothing called")
}

// TestServeWithBadConfiguration: an invalid configuration keeps the application up but
// unhealthy; it refuses every notification, names the variable, and reads nothing.
func TestServeWithBadConfiguration(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.seed(t, 1)
	env := copyEnv(w.env)
	env["ENDPOINTS"] = `{"not a region":"http://127.0.0.1:9"}`
	port := strconv.Itoa(freePort(t))
	env["PORT"] = port
	p := start(t, env, "serve")
	p.url = "http://127.0.0.1:" + port
	var status int
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			status = resp.StatusCode
			break
		}
	}
	assert.Equal(t, http.StatusServiceUnavailable, status, "unhealthy")
	a := p.events(w.envelope("secret_created", "imported_cert", ids...))
	assert.Equal(t, http.StatusInternalServerError, a.status, "%.300s", a.raw)
	assert.Equal(t, "configuration", a.body["error"])
	assert.Zero(t, w.requests(), "nothing called")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.exitCode(t, 10*time.Second))
	named := false
	for _, l := range p.logLines(t) {
		if l["msg"] == "invalid configuration" && l["parameter"] == "endpoints" {
			named = true
		}
	}
	assert.True(t, named, "the log names the parameter: %s", p.out)
	assert.NotContains(t, p.out.String(), "not a region", "no value quoted")
	w.noSecrets(t, "the process's output", p.out.String())
}
