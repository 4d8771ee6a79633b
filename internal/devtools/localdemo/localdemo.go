// Package localdemo is `./deploy.sh local`: the product's main job, end to end, on a
// laptop with nothing but Go. Run runs the real action binary from the real zip the way
// OpenWhisk does (owproxy: unpack and check exec.env, start exec over ActionLoop, a
// web-action front with the manifest's bound parameters) against the simulated IAM and
// Certificate Manager, lets Certificate Manager notify it of every certificate change,
// and reports in a few lines what the action did and that the backup matches.
//
// RunSM (`local sm`) runs the real build/exec as a process, the terminal command an
// operator or a Code Engine job runs, against simulated IAM, Certificate Manager and
// Secrets Manager: a Certificate Manager -> Secrets Manager migration, then a Secrets
// Manager -> Secrets Manager sync with a rotation and a replay. The two simulators sit
// behind one IAM (sharedIAM), as IBM Cloud's services do.
//
// RunCodeEngine (`local codeengine`) runs `build/exec serve`, the Code Engine
// application, on a loopback port and plays Event Notifications to it: envelopes
// with the bearer header for a Secrets Manager source (one secret, a batch with
// duplicates, a retry, forged ones), then the reconcile job and SIGTERM.
//
// Everything listens on 127.0.0.1 only. The API keys are random and live for one run.
// In --serve mode the operator's key and the ownership key are printed, labelled as the
// simulator's throwaway keys, so that the README's terminal commands can be tried as
// printed; the action's own API key and every token stay hidden.
package localdemo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/build/buildzip"
	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Options configure Run. The zero value runs the demo from the repository root.
type Options struct {
	// Zip is the action archive; default build/action.zip.
	Zip string
	// Exec is the binary the Secrets Manager and Code Engine demos run as a process;
	// default build/exec (./deploy.sh build makes both).
	Exec string
	// Manifest is the wskdeploy manifest that gives the runtime kind and the bound
	// parameters of the notify action; default manifest.yaml.
	Manifest string
	// Namespace and Package name the web action's URL; defaults guest (OpenWhisk's
	// local namespace) and certbackup (deploy.sh's PACKAGE_NAME default).
	Namespace string
	Package   string
	// PoolSize is how many exec processes serve the web action; default 2, so that
	// activations land on different containers as when OpenWhisk scales out.
	PoolSize int
	// Serve keeps everything running after the report until ctx ends. It prints the
	// environment under which the README's terminal commands work against the demo
	// (an export of the operator's throwaway key, the ownership key, the CRNs and the
	// endpoints), curl commands for the API, and one line per notification as it
	// arrives.
	Serve bool
	// Verbose prints the action's own log lines after the report (and live in --serve).
	Verbose bool
	// ActionLogs, when set, receives a copy of everything the exec processes write to
	// stdout and stderr (tests scan it for secrets).
	ActionLogs io.Writer
	// APIKey is the action's key (Writer on the source, Manager on the backup) and
	// AdminAPIKey the operator's (Manager on the source and the backup: it registers
	// the channel, and in --serve it runs the README's commands, the restore with the
	// roles swapped included). OwnershipKey is the action's ownership_key, which the
	// terminal command needs too to recognise the action's copies. Empty: random. Tests
	// set them to look for them in the output.
	APIKey       string
	AdminAPIKey  string
	OwnershipKey string
	// WebhookSecret is the Code Engine demo's WEBHOOK_SECRET, the bearer token Event
	// Notifications sends. Empty: random.
	WebhookSecret string
	// Timeout bounds the report (not --serve); default 45 s, so that a hang fails
	// with a message instead of waiting forever.
	Timeout time.Duration

	// afterSetup, for tests, runs once the simulator holds both instances: it can
	// inject faults to check that the demo notices what goes wrong.
	afterSetup func(sim *cmsim.Simulator, source, backup string)
	// afterSMSetup, for tests, is the same for RunSM and RunCodeEngine: cmSource is ""
	// when the demo has no Certificate Manager instance.
	afterSMSetup func(cm *cmsim.Simulator, sm *smsim.Simulator, cmSource, sm1, sm2 string)
}

const (
	sourceRegion = "us-south"
	backupRegion = "eu-de"
	actionName   = "notify"
	// actionTimeout is manifest.yaml's limits.timeout of notify (60000 ms).
	actionTimeout = 60 * time.Second
	// answerWait bounds the wait for the web action to finish a response the
	// simulator has already read; it only matters if something is badly wrong.
	answerWait = 10 * time.Second

	shopName     = "shop.example.com"
	legacyName   = "legacy-api"
	legacyDomain = "api.example.com"
)

func (o Options) withDefaults() (Options, error) {
	if o.Zip == "" {
		o.Zip = filepath.Join("build", "action.zip")
	}
	if o.Exec == "" {
		o.Exec = filepath.Join("build", "exec")
	}
	if o.Manifest == "" {
		o.Manifest = "manifest.yaml"
	}
	if o.Namespace == "" {
		o.Namespace = "guest"
	}
	if o.Package == "" {
		o.Package = "certbackup"
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 45 * time.Second
	}
	var err error
	if o.APIKey == "" {
		if o.APIKey, err = randomKey(); err != nil {
			return o, err
		}
	}
	if o.AdminAPIKey == "" {
		if o.AdminAPIKey, err = randomKey(); err != nil {
			return o, err
		}
	}
	if o.OwnershipKey == "" {
		if o.OwnershipKey, err = randomKey(); err != nil {
			return o, err
		}
	}
	if o.APIKey == o.AdminAPIKey {
		return o, errors.New("APIKey and AdminAPIKey must differ: they carry different roles")
	}
	return o, nil
}

func randomKey() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate an API key: %w", err)
	}
	return "localdemo-" + hex.EncodeToString(b), nil
}

// demo is one run: what was started, and the checks that failed.
type demo struct {
	reporter
	opts Options

	manifest []byte
	execPath string
	execEnv  string
	tmp      string
	servers  []*http.Server
	client   *http.Client // the demo's own requests to the web action

	sim       *cmsim.Simulator
	simURL    string
	iamURL    string
	endpoints map[string]string
	source    string
	backup    string

	pool        *owproxy.Pool
	logs        *actionLog
	rec         *recorder
	callbackURL string
	engine      *replicate.Engine

	legacy      string // the imported certificate's CRN
	issuedToken string // a genuine cert_issued token, re-signed for the forgery
	forged      string // that forgery, for the --serve curl example
}

// Run runs the demo and writes its report to out. It returns nil when every step
// behaved as expected, and an error naming what did not otherwise. With opts.Serve it
// returns only once ctx ends.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	d := &demo{
		reporter: newReporter(out),
		opts:     opts,
		client:   &http.Client{Timeout: 30 * time.Second},
		logs:     &actionLog{copyTo: opts.ActionLogs},
	}
	defer d.close()

	rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := d.report(rctx); err != nil {
		return d.stepError(ctx, rctx, opts.Timeout, err)
	}
	result := d.summary()
	if opts.Serve {
		d.serve(ctx)
	}
	return result
}

// report runs the steps in the order of the story. An error is a step that could not
// run at all; a step that ran but did not behave is a failed check.
func (d *demo) report(ctx context.Context) error {
	d.printf("certbackup local demo: the real action from %s, run as OpenWhisk runs it,\n", d.opts.Zip)
	d.printf("against a simulated IBM Cloud IAM + Certificate Manager, all on 127.0.0.1\n\n")
	steps := []func(context.Context) error{
		d.stepUnpack, d.stepSimulator, d.stepAction, d.stepChannel,
		d.stepNotifications, d.stepReconcile, d.stepState, d.stepSecurity,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ---- 1. the zip ----

func (d *demo) stepUnpack(context.Context) error {
	var err error
	if d.manifest, err = os.ReadFile(d.opts.Manifest); err != nil {
		return fmt.Errorf("read the manifest: %w", err)
	}
	kind, err := buildzip.KindFromManifest(d.manifest, actionName)
	if err != nil {
		return fmt.Errorf("runtime of %s in %s: %w", actionName, d.opts.Manifest, err)
	}
	env, err := buildzip.ExecutionEnvForKind(kind)
	if err != nil {
		return fmt.Errorf("runtime of %s in %s: %w", actionName, d.opts.Manifest, err)
	}
	st, err := os.Stat(d.opts.Zip)
	if err != nil {
		return fmt.Errorf("the action zip: %w (./deploy.sh build makes it)", err)
	}
	if d.tmp, err = os.MkdirTemp("", "certbackup-localdemo-"); err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	// The same checks the runtime's proxy makes before it starts anything.
	execPath, err := owproxy.Unpack(d.opts.Zip, filepath.Join(d.tmp, "action"), env)
	if err != nil {
		return fmt.Errorf("unpack %s as the %s runtime does: %w", d.opts.Zip, kind, err)
	}
	d.execPath = execPath
	d.execEnv = env
	d.printf("[1] action zip     %s (%.1f MB) unpacked and checked as the %s runtime does:\n", d.opts.Zip, float64(st.Size())/(1<<20), kind)
	d.printf("                   exec.env = %s, exec = linux/amd64 executable\n", env)
	return nil
}

// ---- 2. the simulator ----

func (d *demo) stepSimulator(context.Context) error {
	sim, err := cmsim.New(cmsim.Options{AllowHTTPChannels: true})
	if err != nil {
		return fmt.Errorf("start the simulator: %w", err)
	}
	d.sim = sim
	base, err := d.listen(sim)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	d.simURL = base
	d.iamURL = sim.IAMURL(base)
	d.endpoints = map[string]string{
		sourceRegion: sim.RegionURL(base, sourceRegion),
		backupRegion: sim.RegionURL(base, backupRegion),
	}
	d.source = sim.AddInstance(sourceRegion)
	d.backup = sim.AddInstance(backupRegion)
	// Least privilege, as the README asks of CM_APIKEY: download needs Writer on the
	// source, import and reimport need Manager on the backup.
	sim.Grant(d.opts.APIKey, d.source, cmsim.Writer)
	sim.Grant(d.opts.APIKey, d.backup, cmsim.Manager)
	// Creating a notification channel needs Manager on the source, which the action's
	// key does not have and must not need: an operator's key does that. Manager on the
	// backup too, as the README's runbook needs: a restore swaps the roles, and the
	// backup becomes the source of an import into the old one.
	sim.Grant(d.opts.AdminAPIKey, d.source, cmsim.Manager)
	sim.Grant(d.opts.AdminAPIKey, d.backup, cmsim.Manager)

	if d.opts.afterSetup != nil {
		d.opts.afterSetup(sim, d.source, d.backup)
	}

	d.printf("[2] simulator      %s  (IAM and Certificate Manager)\n", base)
	d.printf("                   source %-9s instance %s\n", sourceRegion, shortID(d.source))
	d.printf("                   backup %-9s instance %s\n", backupRegion, shortID(d.backup))
	d.printf("                   API keys, random and not shown: the action's (Writer on the source, Manager on\n")
	d.printf("                   the backup) and an operator's (Manager on both: the channel, the runbook)\n")
	return nil
}

// listen serves h on a fresh loopback port and returns its base URL. Never any other
// address: the simulator accepts throwaway keys and the action holds one.
func (d *demo) listen(h http.Handler) (string, error) {
	srv, base, err := listenLoopback(h)
	if err != nil {
		return "", err
	}
	d.servers = append(d.servers, srv)
	return base, nil
}

// ---- 3. the action behind its web-action URL ----

func (d *demo) stepAction(ctx context.Context) error {
	endpoints, err := json.Marshal(d.endpoints)
	if err != nil {
		return fmt.Errorf("encode endpoints: %w", err)
	}
	// What deploy.sh exports before `ibmcloud fn deploy`; unset variables become "".
	vars := map[string]string{
		"CM_APIKEY":            d.opts.APIKey,
		"SOURCE_INSTANCE_CRN":  d.source,
		"BACKUP_INSTANCE_CRNS": d.backup,
		"IAM_URL":              d.iamURL,
		"CM_ENDPOINTS":         string(endpoints),
		"OWNERSHIP_KEY":        d.opts.OwnershipKey,
		"PACKAGE_NAME":         d.opts.Package,
	}
	params, err := boundParams(d.manifest, actionName, vars)
	if err != nil {
		return fmt.Errorf("inputs of %s in %s: %w", actionName, d.opts.Manifest, err)
	}
	// Without these two the action would call IBM Cloud itself; refuse rather than
	// send anything, even a throwaway key, off this machine.
	if params["iam_url"] != d.iamURL || params["endpoints"] != string(endpoints) {
		return fmt.Errorf("%s does not bind iam_url: $IAM_URL and endpoints: $CM_ENDPOINTS to %s: the demo cannot point the action at the simulator", d.opts.Manifest, actionName)
	}
	// The terminal command recognises the action's copies only with the same
	// ownership key (else it would take them for strangers' and adopt them).
	if params["ownership_key"] != d.opts.OwnershipKey {
		return fmt.Errorf("%s does not bind ownership_key: $OWNERSHIP_KEY to %s: the terminal command could not recognise the action's copies", d.opts.Manifest, actionName)
	}

	t0 := time.Now()
	pool, err := owproxy.StartPool(ctx, d.execPath, d.opts.PoolSize, owproxy.Options{
		ExecutionEnv: d.execEnv, Stdout: d.logs, Stderr: d.logs,
	})
	if err != nil {
		return fmt.Errorf("start exec: %w", err)
	}
	d.pool = pool
	started := time.Since(t0)

	actionPath := "/api/v1/web/" + d.opts.Namespace + "/" + d.opts.Package + "/" + actionName
	run := pool.RunFunc(owproxy.RunMeta{
		Namespace:  d.opts.Namespace,
		ActionName: d.opts.Namespace + "/" + d.opts.Package + "/" + actionName,
		Timeout:    actionTimeout,
	})
	d.rec = &recorder{next: owproxy.NewWebAction(run, owproxy.WebOptions{
		ActionPath: actionPath, Params: params, Final: true, // web: true makes bound parameters final
	})}
	base, err := d.listen(d.rec)
	if err != nil {
		return fmt.Errorf("web action: %w", err)
	}
	d.callbackURL = base + actionPath + ".http"

	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	d.printf("[3] action         %d exec processes speaking ActionLoop, started in %s\n", pool.Size(), started.Round(time.Millisecond))
	d.printf("                   web action %s\n", d.callbackURL)
	d.printf("                   bound parameters (manifest.yaml, %s): %s\n", actionName, strings.Join(names, ", "))
	return nil
}

// ---- 4. the Callback URL channel ----

func (d *demo) stepChannel(ctx context.Context) error {
	admin, err := cms.New(cms.Config{APIKey: d.opts.AdminAPIKey, IAMURL: d.iamURL, Endpoints: d.endpoints})
	if err != nil {
		return fmt.Errorf("Certificate Manager client: %w", err)
	}
	ch, err := admin.CreateChannel(ctx, d.source, cms.Channel{Type: cms.ChannelTypeURL, Endpoint: d.callbackURL, IsActive: true})
	if err != nil {
		return fmt.Errorf("register the Callback URL channel: %w", err)
	}
	d.printf("[4] channel        the URL above registered as the source's Callback URL channel\n")
	d.printf("                   Certificate Manager's channel test:\n")
	return d.expectNotification(cmsim.EventTestNotificationChannel, "(test)", "", func() error {
		if err := admin.TestChannel(ctx, d.source, ch.ID); err != nil {
			return fmt.Errorf("test the channel: %w", err)
		}
		return nil
	})
}

// ---- 5. lifecycle notifications ----

func (d *demo) stepNotifications(context.Context) error {
	d.printf("[5] notifications  each change makes Certificate Manager POST a signed JWT to the web action\n")
	var shop string
	err := d.expectNotification(cmsim.EventCertIssued, shopName, replicate.Imported, func() error {
		var err error
		if shop, err = d.sim.Order(d.source, shopName, shopName, "www."+shopName); err != nil {
			return fmt.Errorf("order a certificate: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range d.sim.SentTokens() {
		if t.EventType == cmsim.EventCertIssued {
			d.issuedToken = t.Token
		}
	}
	err = d.expectNotification(cmsim.EventCertRenewed, shopName, replicate.Reimported, func() error {
		if err := d.sim.Renew(shop); err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	issued, err := d.sim.CA().Issue(testpki.Options{Domains: []string{legacyDomain}})
	if err != nil {
		return fmt.Errorf("issue a certificate to import: %w", err)
	}
	deliveries, mark := len(d.sim.Deliveries()), d.rec.mark()
	d.legacy = d.sim.Seed(d.source, legacyName, "imported by hand", issued)
	d.printf("      %-26s %-17s -> no notification: Certificate Manager sends none for a first import\n", "(import)", legacyName)
	d.check(len(d.sim.Deliveries()) == deliveries && d.rec.mark() == mark,
		"a first import sent a notification; the real service sends none")
	return nil
}

// expectNotification carries out change, which must make Certificate Manager notify the
// web action exactly once with event, and prints one line: the event, the certificate,
// what the action answered and what it did in each backup. want is the outcome
// expected in every backup ("" for the test event, which copies nothing).
func (d *demo) expectNotification(event, name string, want replicate.Outcome, change func() error) error {
	deliveries, mark := len(d.sim.Deliveries()), d.rec.mark()
	if err := change(); err != nil {
		return err
	}
	dels := d.sim.Deliveries()[deliveries:]
	exs, err := d.rec.since(mark, answerWait)
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	if !d.check(len(dels) == 1 && len(exs) == 1,
		"%s %s: want one notification to the web action, got %d deliveries and %d requests", event, name, len(dels), len(exs)) {
		return nil
	}
	del, ex := dels[0], exs[0]
	ans := parseAnswer(ex.body.Bytes())
	d.printf("      %-26s %-17s -> %d  %s\n", del.EventType, name, ex.status, d.describe(ans))

	d.check(del.EventType == event, "Certificate Manager sent %s, want %s", del.EventType, event)
	d.check(ex.status == http.StatusOK, "%s %s: the action answered %d, want 200", event, name, ex.status)
	d.check(del.Status == ex.status, "%s: Certificate Manager saw status %d, the web action sent %d", event, del.Status, ex.status)
	d.check(ans.EventType == event, "%s: the action says it handled %q", event, ans.EventType)
	if want == "" {
		d.check(ans.Action == "test", "%s: the action's answer is %q, want test", event, ans.Action)
		return nil
	}
	if !d.check(len(ans.Results) == 1, "%s %s: want a result for the one backup, got %d", event, name, len(ans.Results)) {
		return nil
	}
	r := ans.Results[0]
	d.check(r.Backup == d.backup, "%s %s: result for %s, want the backup", event, name, shortID(r.Backup))
	d.check(replicate.Outcome(r.Outcome) == want && r.Verified,
		"%s %s: the backup's copy: %s; want %s, verified", event, name, outcomeText(r.Outcome, r.Verified, ""), want)
	return nil
}

// describe says in a few words what the action answered.
func (d *demo) describe(a answer) string {
	switch {
	case a.Error != "":
		return "rejected (" + a.Error + ")"
	case a.Action == "test":
		return "test notification verified, nothing to copy"
	case a.Action == "replicate":
		parts := make([]string, 0, len(a.Results))
		for _, r := range a.Results {
			parts = append(parts, regionOf(r.Backup)+": "+outcomeText(string(r.Outcome), r.Verified, r.ErrorClass))
		}
		return strings.Join(parts, "; ")
	case a.Action != "":
		return a.Action
	}
	return "no answer from the action"
}

func outcomeText(outcome string, verified bool, errorClass string) string {
	s := outcome
	if errorClass != "" {
		s += " (" + errorClass + ")"
	}
	if verified {
		return s + ", verified"
	}
	return s + ", not verified"
}

// regionOf is the region of an instance CRN, or a short id if it does not parse.
func regionOf(instanceCRN string) string {
	c, err := crn.Parse(instanceCRN)
	if err != nil {
		return shortID(instanceCRN)
	}
	return c.Region
}

// shortID is the first 8 characters of the last id in a CRN: enough to tell the
// certificates of a demo apart, short enough for a table.
func shortID(s string) string {
	c, err := crn.Parse(s)
	id := s
	if err == nil {
		id = c.Instance
		if c.CertificateID != "" {
			id = c.CertificateID
		}
	}
	if len(id) > 8 {
		id = id[:8]
	}
	return id
}

// ---- the end ----

// summary prints the verdict and returns the error Run returns.
func (d *demo) summary() error {
	if d.opts.Verbose {
		lines := logLines(d.pool)
		d.printf("\naction logs (%d lines):\n", len(lines))
		for _, l := range lines {
			d.printf("  %s\n", l)
		}
	}
	return d.verdict()
}

// close stops everything in dependency order: no new requests to the web action, then
// the action (whose last activation may still call the simulator), then the simulator.
func (d *demo) close() {
	if len(d.servers) > 1 {
		shutdown(d.servers[1])
	}
	if d.pool != nil {
		_ = d.pool.Close()
	}
	if len(d.servers) > 0 {
		shutdown(d.servers[0])
	}
	if d.tmp != "" {
		_ = os.RemoveAll(d.tmp)
	}
}
