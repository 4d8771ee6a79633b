package localdemo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// The Code Engine demo's instances and sizes.
const (
	ceSourceRegion  = "us-south"
	ceBackupRegion  = "eu-de"
	ceForeignRegion = "us-east"
	batchSize       = 20
	batchRepeats    = 5 // entries listed a second time, by bare UUID
	// enRetries is how often Event Notifications retries a webhook that answered
	// 5xx or did not answer (docs/services/event-notifications.md §3).
	enRetries = 3
	// serverStart bounds the wait for /healthz; serverStop the wait for the exit
	// after SIGTERM (the contract's 10 s drain, and a margin).
	serverStart = 10 * time.Second
	serverStop  = 15 * time.Second
)

// RunCodeEngine is `./deploy.sh local codeengine`: the real `build/exec serve` (the
// Code Engine application) on a loopback port, sent Event Notifications envelopes for
// a Secrets Manager source, single, batched, replayed and forged, then the reconcile
// job as Code Engine runs it, and SIGTERM. It returns nil when every step behaved.
func RunCodeEngine(ctx context.Context, opts Options, out io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if opts.WebhookSecret == "" {
		opts.WebhookSecret = "localdemo-webhook-" + randomHex(24)
	}
	w := &smWorld{reporter: newReporter(out), opts: opts}
	d := &ceDemo{smWorld: w, client: &http.Client{Timeout: 30 * time.Second}, serverLog: &logBuffer{}}
	defer d.close()
	rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	w.printf("certbackup local demo, Code Engine: the real `%s serve` as Code Engine runs it, notified by\n", opts.Exec)
	w.printf("Event Notifications for a Secrets Manager source, then the reconcile job; all on 127.0.0.1\n\n")
	for _, step := range []func(context.Context) error{
		w.stepBinary, d.stepSimulator, d.stepServer, d.stepEvents, d.stepBatch, d.stepForged,
		d.stepJob, d.stepStop, d.stepSecrets,
	} {
		if err := step(rctx); err != nil {
			return w.stepError(ctx, rctx, opts.Timeout, err)
		}
	}
	return w.verdict()
}

// ceDemo is one run of RunCodeEngine. It shares smWorld's binary, reporter and
// instances (sm1 is the source, sm2 the backup); foreign is an instance that is not
// the source.
type ceDemo struct {
	*smWorld
	client    *http.Client
	foreign   string
	eventsURL string
	server    *exec.Cmd
	exited    chan error // the server's Wait, once started
	serverLog *logBuffer
	shop      string // the secret rotated in step 4
}

// ---- 2. the simulator ----

func (d *ceDemo) stepSimulator(context.Context) error {
	var err error
	if d.sm, err = smsim.Start(smsim.Options{}); err != nil {
		return fmt.Errorf("start the Secrets Manager simulator: %w", err)
	}
	d.sm1 = d.sm.AddInstance(ceSourceRegion)
	d.sm2 = d.sm.AddInstance(ceBackupRegion)
	d.foreign = d.sm.AddInstance(ceForeignRegion)
	d.aliases = map[string]string{d.sm1: "SRC", d.sm2: "BAK", d.foreign: "OTHER"}
	endpoints, err := json.Marshal(d.sm.Endpoints())
	if err != nil {
		return fmt.Errorf("encode endpoints: %w", err)
	}
	d.endpoints, d.iamURL = string(endpoints), d.sm.IAMURL()
	// Reading a source's payload needs SecretsReader; copies need Writer (Manager to
	// remove a duplicate). The key has no role on OTHER.
	d.sm.Grant(d.opts.APIKey, d.sm1, smsim.SecretsReader)
	d.sm.Grant(d.opts.APIKey, d.sm2, smsim.Manager)
	if d.opts.afterSMSetup != nil {
		d.opts.afterSMSetup(nil, d.sm.Simulator, "", d.sm1, d.sm2)
	}
	d.printf("[2] simulator      %s  (IAM and Secrets Manager)\n", d.sm.URL())
	d.printf("                   SRC    Secrets Manager %-9s instance %s  the source\n", ceSourceRegion, lastID(d.sm1))
	d.printf("                   BAK    Secrets Manager %-9s instance %s  its backup\n", ceBackupRegion, lastID(d.sm2))
	d.printf("                   OTHER  Secrets Manager %-9s instance %s  someone else's\n", ceForeignRegion, lastID(d.foreign))
	d.printf("                   API key and webhook secret random and not shown; the key is SecretsReader on\n")
	d.printf("                   SRC and Manager on BAK\n")
	return nil
}

// ---- 3. the server ----

func (d *ceDemo) stepServer(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	env := d.env(d.sm1, d.sm2)
	// What Code Engine sets for an application (docs/services/code-engine-runtime.md),
	// with the secret and the configmap that deploy.sh codeengine makes.
	env["PORT"] = strconv.Itoa(port)
	env["WEBHOOK_SECRET"] = d.opts.WebhookSecret
	env["CE_APP"] = "certbackup"
	env["K_REVISION"] = "certbackup-00001"
	t0 := time.Now()
	if d.server, err = d.bin.start(env, d.serverLog, "serve"); err != nil {
		return err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.server.Wait() }()
	base := "http://127.0.0.1:" + env["PORT"]
	d.eventsURL = base + "/events"
	status, err := d.waitHealthy(ctx, base+"/healthz")
	if err != nil {
		return err
	}
	d.printf("[3] server         %s serve, PORT=%s: GET /healthz %d after %s\n", d.opts.Exec, env["PORT"], status,
		time.Since(t0).Round(time.Millisecond))
	d.printf("                   (its environment: APIKEY, SOURCE_INSTANCE_CRN=SRC, BACKUP_INSTANCE_CRNS=BAK, IAM_URL,\n")
	d.printf("                   ENDPOINTS, WEBHOOK_SECRET, PORT, CE_APP, K_REVISION)\n")
	return nil
}

// waitHealthy polls /healthz until it answers 200, the server exits, or time is up.
func (d *ceDemo) waitHealthy(ctx context.Context, url string) (int, error) {
	deadline := time.Now().Add(serverStart)
	last := 0
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.exited <- err
			return 0, fmt.Errorf("%s serve exited before it was healthy (%v); it said:\n%s", d.opts.Exec, err, indent(d.serverLog.String()))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := d.client.Do(req)
		if err != nil {
			continue // not listening yet
		}
		resp.Body.Close()
		if last = resp.StatusCode; last == http.StatusOK {
			return last, nil
		}
	}
	return last, fmt.Errorf("%s serve: /healthz did not answer 200 within %s (last: %d); it said:\n%s", d.opts.Exec, serverStart, last, indent(d.serverLog.String()))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// post sends an envelope and prints one line: what was sent, the status, what the
// server did, how long it took and how many requests it made of the simulator.
func (d *ceDemo) post(ctx context.Context, label, bearer string, body []byte) (int, answer, int, error) {
	requests := len(d.sm.Requests())
	status, ans, elapsed, err := postEvent(ctx, d.client, d.eventsURL, bearer, body)
	if err != nil {
		return 0, ans, 0, err
	}
	made := len(d.sm.Requests()) - requests
	what := ""
	switch {
	case ans.Error != "":
		what = "refused (" + ans.Error + ")"
	case ans.Action == "replicate":
		what = countsText(ans.Summary)
	default:
		what = ans.Action
	}
	if len(ans.Left) > 0 {
		what += fmt.Sprintf(", %d left for the retry", len(ans.Left))
	}
	d.printf("      %-44s -> %d  %s  (%s, %d request(s) to Secrets Manager)\n", label, status, what, elapsed.Round(10*time.Millisecond), made)
	return status, ans, made, nil
}

// ---- 4. single events ----

func (d *ceDemo) stepEvents(ctx context.Context) error {
	d.printf("[4] events         Event Notifications POSTs envelopes to /events, the webhook secret as the bearer token\n")
	issued, err := d.issue(shopName)
	if err != nil {
		return err
	}
	if d.shop, err = d.sm.Seed(d.sm1, smsim.Seed{Name: "shop-example-com", Certificate: issued.CertPEM, Intermediate: issued.Intermediate, PrivateKey: issued.KeyPEM}); err != nil {
		return fmt.Errorf("seed the source: %w", err)
	}
	shop := []enSecret{{ID: d.secretCRN(d.sm1, d.shop), Name: "shop-example-com"}}
	created, err := enEnvelope("secret_created", d.sm1, smsim.ImportedCert, shop)
	if err != nil {
		return err
	}
	status, ans, _, err := d.post(ctx, "secret_created  shop-example-com", d.opts.WebhookSecret, created)
	if err != nil {
		return err
	}
	d.check(status == http.StatusOK && ans.Summary["imported"] == 1, "secret_created: %d (%s), want 200 and one import", status, countsText(ans.Summary))

	again, err := d.issue(shopName)
	if err != nil {
		return err
	}
	if _, err := d.sm.Rotate(d.sm1, d.shop, smsim.Version{Certificate: again.CertPEM, Intermediate: again.Intermediate, PrivateKey: again.KeyPEM}); err != nil {
		return fmt.Errorf("rotate in the source: %w", err)
	}
	rotated, err := enEnvelope("secret_rotated", d.sm1, smsim.ImportedCert, shop)
	if err != nil {
		return err
	}
	status, ans, _, err = d.post(ctx, "secret_rotated  shop-example-com (rotated)", d.opts.WebhookSecret, rotated)
	if err != nil {
		return err
	}
	d.check(status == http.StatusOK && ans.Summary["reimported"] == 1, "secret_rotated: %d (%s), want 200 and one new version", status, countsText(ans.Summary))
	cp, ok := d.copyOf(d.sm1, d.shop)
	if d.check(ok, "BAK holds no copy of shop-example-com") {
		var serials []string
		for _, v := range cp.Versions {
			serials = append(serials, shortSerial(v.SerialNumber))
		}
		d.printf("      %-44s    its copy in BAK, %s: %s, %d version(s), oldest first: %s\n", "", cp.Name, cp.Type,
			cp.VersionsTotal, strings.Join(serials, ", "))
		d.check(cp.VersionsTotal == 2 && len(cp.Versions) == 2 && cp.Versions[0].PayloadAvailable && cp.Current().SerialNumber == serialOf(again),
			"BAK's copy has %d version(s); want 2, the previous kept and the rotated certificate current", cp.VersionsTotal)
	}

	writes := d.sm.Writes("")
	if _, _, _, err := d.post(ctx, "the same secret_rotated again (a retry)", d.opts.WebhookSecret, rotated); err != nil {
		return err
	}
	d.check(d.sm.Writes("") == writes, "a replayed event wrote %d time(s)", d.sm.Writes("")-writes)
	return nil
}

func (d *ceDemo) issue(domain string) (*testpki.Issued, error) {
	ca, err := d.ca()
	if err != nil {
		return nil, err
	}
	issued, err := ca.Issue(testpki.Options{Domains: []string{domain}})
	if err != nil {
		return nil, fmt.Errorf("issue a certificate for %s: %w", domain, err)
	}
	return issued, nil
}

var (
	demoCA     *testpki.CA
	demoCAErr  error
	demoCAOnce sync.Once
)

// ca is the demo's test CA, made once per process.
func (d *ceDemo) ca() (*testpki.CA, error) {
	demoCAOnce.Do(func() { demoCA, demoCAErr = testpki.NewCA("certbackup local demo") })
	return demoCA, demoCAErr
}

func (d *ceDemo) secretCRN(instance, id string) string {
	c, err := smsim.ParseInstanceCRN(instance)
	if err != nil {
		return id
	}
	return c.SecretCRN(id)
}

// copyOf is BAK's copy of the source's secret id, found by its marker.
func (d *ceDemo) copyOf(instance, id string) (smsim.Secret, bool) {
	want := d.secretCRN(instance, id)
	list, err := d.sm.List(d.sm2)
	if err != nil {
		return smsim.Secret{}, false
	}
	for _, s := range list {
		if asString(s.CustomMetadata[metadataSource]) == want {
			return s, true
		}
	}
	return smsim.Secret{}, false
}

// ---- 5. a batch ----

func (d *ceDemo) stepBatch(ctx context.Context) error {
	d.printf("[5] batch          one envelope naming %d new secrets, %d of them twice (the second time by bare UUID)\n", batchSize, batchRepeats)
	var entries []enSecret
	var ids []string
	for i := 1; i <= batchSize; i++ {
		name := fmt.Sprintf("batch-%02d-example-com", i)
		issued, err := d.issue(fmt.Sprintf("batch-%02d.example.com", i))
		if err != nil {
			return err
		}
		id, err := d.sm.Seed(d.sm1, smsim.Seed{Name: name, Certificate: issued.CertPEM, Intermediate: issued.Intermediate, PrivateKey: issued.KeyPEM})
		if err != nil {
			return fmt.Errorf("seed the source: %w", err)
		}
		ids = append(ids, id)
		entries = append(entries, enSecret{ID: d.secretCRN(d.sm1, id), Name: name})
	}
	for i := range batchRepeats {
		entries = append(entries, enSecret{ID: ids[i], Name: entries[i].Name})
	}
	body, err := enEnvelope("secret_created", d.sm1, smsim.ImportedCert, entries)
	if err != nil {
		return err
	}
	creates := d.created(d.sm2)
	label := fmt.Sprintf("secret_created  %d entries, %d secrets", len(entries), batchSize)
	status := 0
	for attempt := 0; attempt <= enRetries; attempt++ {
		if attempt > 0 {
			label = fmt.Sprintf("  Event Notifications' retry %d", attempt)
		}
		var err error
		if status, _, _, err = d.post(ctx, label, d.opts.WebhookSecret, body); err != nil {
			return err
		}
		if status < 500 {
			break
		}
	}
	d.check(status == http.StatusOK, "the batch: %d, want 200 (within Event Notifications' retries)", status)
	copies := 0
	for _, id := range ids {
		if _, ok := d.copyOf(d.sm1, id); ok {
			copies++
		}
	}
	created := d.created(d.sm2) - creates
	d.printf("      %-44s    BAK now holds a copy of %d of the %d; %d secret(s) created in BAK\n", "", copies, batchSize, created)
	d.printf("      %-44s    (the server keeps each instance under 20 requests/s, IBM's advice: that is the time)\n", "")
	d.check(copies == batchSize && created == batchSize, "the batch left %d copies after %d creates, want %d of each", copies, created, batchSize)
	return nil
}

// created counts the secrets the API created in instance, from the request log.
func (d *ceDemo) created(instance string) int {
	n := 0
	for _, r := range d.sm.Requests() {
		if r.Op == smsim.OpCreateSecret && r.Instance == instance && r.Status/100 == 2 {
			n++
		}
	}
	return n
}

// ---- 6. forged envelopes ----

func (d *ceDemo) stepForged(ctx context.Context) error {
	d.printf("[6] forged         refused before anything is read (the simulator's request log counts every request)\n")
	// OTHER holds a certificate of its own, which a forger would like copied.
	issued, err := d.issue("other.example.com")
	if err != nil {
		return err
	}
	otherID, err := d.sm.Seed(d.foreign, smsim.Seed{Name: "other-example-com", Certificate: issued.CertPEM, Intermediate: issued.Intermediate, PrivateKey: issued.KeyPEM})
	if err != nil {
		return fmt.Errorf("seed OTHER: %w", err)
	}
	shop := []enSecret{{ID: d.secretCRN(d.sm1, d.shop), Name: "shop-example-com"}}
	other := []enSecret{{ID: d.secretCRN(d.foreign, otherID), Name: "other-example-com"}}
	genuine, err := enEnvelope("secret_rotated", d.sm1, smsim.ImportedCert, shop)
	if err != nil {
		return err
	}
	foreignSource, err := enEnvelope("secret_rotated", d.foreign, smsim.ImportedCert, other)
	if err != nil {
		return err
	}
	foreignSecret, err := enEnvelope("secret_rotated", d.sm1, smsim.ImportedCert, append(other, shop...))
	if err != nil {
		return err
	}
	for _, c := range []struct {
		label, bearer string
		body          []byte
		want          int
	}{
		{"no Authorization header", "", genuine, http.StatusUnauthorized},
		{"a wrong bearer", "localdemo-not-the-webhook-secret-" + randomHex(8), genuine, http.StatusUnauthorized},
		{"the right bearer, source OTHER", d.opts.WebhookSecret, foreignSource, http.StatusForbidden},
		{"the right bearer, SRC, one secret of OTHER", d.opts.WebhookSecret, foreignSecret, http.StatusForbidden},
	} {
		status, _, made, err := d.post(ctx, c.label, c.bearer, c.body)
		if err != nil {
			return err
		}
		d.check(status == c.want, "%s: %d, want %d", c.label, status, c.want)
		d.check(made == 0, "%s: %d request(s) reached Secrets Manager, want none", c.label, made)
	}
	return nil
}

// ---- 7. the job ----

func (d *ceDemo) stepJob(ctx context.Context) error {
	issued, err := d.issue("missed.example.com")
	if err != nil {
		return err
	}
	missed, err := d.sm.Seed(d.sm1, smsim.Seed{Name: "missed-example-com", Certificate: issued.CertPEM, Intermediate: issued.Intermediate, PrivateKey: issued.KeyPEM})
	if err != nil {
		return fmt.Errorf("seed the source: %w", err)
	}
	d.printf("[7] job            missed-example-com was created in SRC and its event never came; the cron's job\n")
	d.printf("                   run (CE_JOB and CE_JOBRUN set, as Code Engine sets them):\n")
	env := d.env(d.sm1, d.sm2)
	// What Code Engine sets for a job run (docs/services/code-engine-runtime.md).
	env["CE_JOB"] = "certbackup-reconcile"
	env["CE_JOBRUN"] = "certbackup-reconcile-" + randomHex(3)
	if _, err := d.command(ctx, env, 0, "reconcile"); err != nil {
		return err
	}
	_, ok := d.copyOf(d.sm1, missed)
	d.check(ok, "the job did not copy missed-example-com")
	return nil
}

// ---- 8. SIGTERM ----

func (d *ceDemo) stepStop(context.Context) error {
	t0 := time.Now()
	if err := d.server.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM the server: %w", err)
	}
	code := -1
	select {
	case err := <-d.exited:
		d.exited <- err
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			code = 0
		case errors.As(err, &exitErr):
			code = exitErr.ExitCode()
		}
	case <-time.After(serverStop):
	}
	if code < 0 {
		d.printf("[8] SIGTERM        the server did not exit within %s\n", serverStop)
		d.check(false, "the server did not exit after SIGTERM")
		return nil
	}
	d.printf("[8] SIGTERM        the server stopped accepting, finished, and exited %d after %s\n", code, time.Since(t0).Round(time.Millisecond))
	d.check(code == 0, "the server exited %d after SIGTERM, want 0", code)
	return nil
}

// ---- 9. secrets ----

func (d *ceDemo) stepSecrets(context.Context) error {
	logs := d.serverLog.String()
	if d.opts.Verbose {
		d.printf("\nthe server's log lines:\n%s\n", indent(logs))
	}
	d.bin.keep(logs)
	out := d.bin.output()
	leaks := secretsIn(out, map[string]string{"the API key": d.opts.APIKey, "the webhook secret": d.opts.WebhookSecret})
	d.printf("[9] security       %d lines of output from the server and the job: no API key, webhook secret,\n", strings.Count(out, "\n"))
	d.printf("                   bearer token or private key in them\n")
	d.check(len(leaks) == 0, "the binary's output holds %s", strings.Join(leaks, ", "))
	return nil
}

func (d *ceDemo) close() {
	if d.server != nil && d.exited != nil {
		select {
		case err := <-d.exited:
			d.exited <- err
		default:
			_ = d.server.Process.Kill()
			<-d.exited
		}
	}
	d.smWorld.close()
}

// logBuffer keeps what a process writes, safe for its writers and the demo's reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
