package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	apiKey        = "cli-test-api-key-Zq8v1XyW"
	webhookSecret = "cli-test-webhook-secret-0123456789abcdef"
	ownershipKey  = "cli-test-ownership-key-0123456789abcdef"
	srcCRN        = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:11111111-1111-1111-1111-111111111111::"
	bkCRN         = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct1:22222222-2222-2222-2222-222222222222::"
	smCRN         = "crn:v1:bluemix:public:secrets-manager:us-south:a/acct1:33333333-3333-3333-3333-333333333333::"
)

// secrets are the values no output may hold.
var secrets = []string{apiKey, webhookSecret, ownershipKey}

func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, s := range secrets {
		assert.NotContains(t, out, s, "no output holds a secret")
		assert.NotContains(t, out, s[:12], "no output holds part of a secret")
	}
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// TestUsageAndConfigErrors: nothing is called, exit 2, and the error speaks of flags
// and variables, never of a secret.
func TestUsageAndConfigErrors(t *testing.T) {
	full := map[string]string{"APIKEY": apiKey, "SOURCE_INSTANCE_CRN": srcCRN, "BACKUP_INSTANCE_CRNS": bkCRN}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		code      int
		stderr    []string // substrings
		notStderr []string
	}{
		{name: "no command", args: nil, code: ExitUsage, stderr: []string{"usage:", "reconcile", "verify", "check-config"}},
		{name: "unknown command", args: []string{"sync"}, code: ExitUsage, stderr: []string{`unknown command "sync"`}},
		{name: "help", args: []string{"help"}, code: ExitOK,
			stderr: []string{"usage:", "swap", "APIKEY, BACKUP_APIKEY", "ENDPOINTS", "MAX_CONCURRENCY", "CM_APIKEY and CM_ENDPOINTS are still accepted", "Exit status"}},
		{name: "verify help has no reconcile switches", args: []string{"verify", "-h"}, code: ExitOK,
			stderr:    []string{"usage: exec verify", "-backups", "-timeout", "-details", "-max-concurrency", "-secret-group", "-ownership-key", "env SOURCE_INSTANCE_CRN"},
			notStderr: []string{"-prune", "-dry-run", "-webhook-secret"}},
		{name: "reconcile help", args: []string{"reconcile", "--help"}, code: ExitOK, stderr: []string{"-prune", "-dry-run", "-concurrency", "-max-concurrency", "set APIKEY instead"}},
		{name: "check-config help", args: []string{"check-config", "-h"}, code: ExitOK, stderr: []string{"-platform", "-cron", "-webhook-secret", "-prune"}},
		{name: "nothing set", args: []string{"reconcile"}, code: ExitUsage,
			stderr: []string{"--apikey / APIKEY: is required", "--source / SOURCE_INSTANCE_CRN: is required", "--backups / BACKUP_INSTANCE_CRNS: is required"}},
		{name: "source is its own backup", args: []string{"verify", "--backups", srcCRN}, env: full, code: ExitUsage,
			stderr: []string{"--backups / BACKUP_INSTANCE_CRNS: item 1 is the source instance"}},
		{name: "concurrency zero", args: []string{"reconcile", "--concurrency", "0"}, env: full, code: ExitUsage,
			stderr: []string{"--concurrency / CONCURRENCY: must be between 1 and --max-concurrency (16; --max-concurrency itself is at most 64)"}},
		{name: "concurrency 17 needs a raised max", args: []string{"verify", "--concurrency", "17"}, env: full, code: ExitUsage,
			stderr: []string{"--concurrency / CONCURRENCY: must be between 1 and --max-concurrency (16;"}},
		{name: "concurrency 65 has one message", args: []string{"reconcile", "--concurrency", "65"}, env: full, code: ExitUsage,
			stderr:    []string{"--concurrency / CONCURRENCY: must be between 1 and --max-concurrency (16; --max-concurrency itself is at most 64)"},
			notStderr: []string{"above"}},
		{name: "max concurrency above the bound", args: []string{"reconcile", "--max-concurrency", "65", "--concurrency", "20"}, env: full, code: ExitUsage,
			stderr: []string{"--max-concurrency / MAX_CONCURRENCY: must be between 1 and 64"}, notStderr: []string{"--concurrency / CONCURRENCY"}},
		{name: "concurrency from the environment", args: []string{"reconcile"}, env: with(full, "CONCURRENCY", "lots"), code: ExitUsage,
			stderr: []string{"--concurrency / CONCURRENCY: must be a whole number"}},
		{name: "verify ignores PRUNE and DRY_RUN", args: []string{"verify", "--concurrency", "0"}, env: with(full, "PRUNE", "sometimes", "DRY_RUN", "x"), code: ExitUsage,
			notStderr: []string{"PRUNE", "DRY_RUN"}},
		{name: "malformed endpoints", args: []string{"reconcile"}, env: with(full, "CM_ENDPOINTS", `{"eu-de": "http://example.com"}`), code: ExitUsage,
			stderr: []string{"--endpoints / CM_ENDPOINTS"}}, // the variable that was set
		{name: "stray argument", args: []string{"reconcile", "now"}, env: full, code: ExitUsage, stderr: []string{`unexpected argument "now"`}},
		{name: "key on the command line is warned about, not echoed", args: []string{"reconcile", "--apikey", apiKey}, code: ExitUsage,
			stderr: []string{"warning: --apikey puts a secret in the shell history and the process list; set APIKEY instead", "--source / SOURCE_INSTANCE_CRN: is required"}},
		{name: "ownership key on the command line is warned about", args: []string{"verify", "--ownership-key", ownershipKey}, env: with(full, "SOURCE_INSTANCE_CRN", ""), code: ExitUsage,
			stderr: []string{"warning: --ownership-key puts a secret in the shell history and the process list; set OWNERSHIP_KEY instead"}},
		{name: "a key that is not one is refused without quoting it", args: []string{"reconcile"}, env: with(full, "APIKEY", apiKey+" oops"), code: ExitUsage,
			stderr: []string{"--apikey / APIKEY: contains characters"}},
		{name: "a key pasted into the source is not quoted", args: []string{"verify", "--source", apiKey}, env: full, code: ExitUsage,
			stderr: []string{"--source / SOURCE_INSTANCE_CRN:"}},
		{name: "a short ownership key", args: []string{"verify"}, env: with(full, "OWNERSHIP_KEY", ownershipKey[:20]), code: ExitUsage,
			stderr: []string{"--ownership-key / OWNERSHIP_KEY: must be at least 32 characters"}},
		{name: "SOURCE_PUBLIC_KEY has no flag", args: []string{"verify"}, env: with(full, "SOURCE_PUBLIC_KEY", "not a key"), code: ExitUsage,
			stderr: []string{"SOURCE_PUBLIC_KEY: must be one PEM RSA public key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tt.args, &stdout, &stderr, getenv(tt.env))
			assert.Equal(t, tt.code, code, stderr.String())
			for _, s := range tt.stderr {
				assert.Contains(t, stderr.String(), s)
			}
			for _, s := range tt.notStderr {
				assert.NotContains(t, stderr.String(), s)
			}
			assert.Empty(t, stdout.String(), "errors and help go to stderr")
			assertNoSecret(t, stdout.String()+stderr.String())
		})
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestParams: flags that are given win over the environment, which is read through
// config.Environment (the contract's names first, the older ones still accepted);
// flags that are not given leave the parameter to the environment or to config's
// default.
func TestParams(t *testing.T) {
	env := map[string]string{
		"APIKEY": "env-key", "BACKUP_APIKEY": "env-backup-key", "SOURCE_INSTANCE_CRN": "env-src",
		"BACKUP_INSTANCE_CRNS": "env-bk", "IAM_URL": "https://iam.example", "ENDPOINTS": `{"a":"b"}`, "PRIVATE_ENDPOINTS": "true",
		"SECRET_GROUP": "g", "OWNERSHIP_KEY": "env-own", "WEBHOOK_SECRET": "env-hook", "PRUNE": "true", "DRY_RUN": "true",
		"CONCURRENCY": "2", "MAX_CONCURRENCY": "8", "MAX_REQUESTS_PER_SECOND": "5",
	}
	fromEnv := map[string]any{
		"apikey": "env-key", "backup_apikey": "env-backup-key", "source_instance_crn": "env-src",
		"backup_instance_crns": "env-bk", "iam_url": "https://iam.example", "endpoints": `{"a":"b"}`, "private_endpoints": "true",
		"secret_group": "g", "ownership_key": "env-own", "webhook_secret": "env-hook", "prune": "true", "dry_run": "true",
		"concurrency": "2", "max_concurrency": "8", "max_requests_per_second": "5",
	}
	merge := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
				continue
			}
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name    string
		command string // "reconcile" (every flag), "verify" or "channel" (NewFlags alone)
		args    []string
		env     map[string]string
		want    map[string]any
	}{
		{name: "environment only", command: "reconcile", env: env, want: merge(fromEnv, "mode", "reconcile")},
		{name: "older names", command: "reconcile", env: map[string]string{"CM_APIKEY": "old", "CM_ENDPOINTS": "{}"},
			want: map[string]any{"mode": "reconcile", "apikey": "old", "endpoints": "{}"}},
		{name: "the contract's name wins over the older one", command: "reconcile", env: map[string]string{"CM_APIKEY": "old", "APIKEY": "new"},
			want: map[string]any{"mode": "reconcile", "apikey": "new"}},
		{name: "flags win", command: "reconcile", env: env,
			args: []string{"--source", "flag-src", "--backups", "b1,b2", "--private-endpoints=false", "--prune=false", "--dry-run", "--concurrency", "32",
				"--max-concurrency", "32", "--secret-group", "fg", "--ownership-key", "flag-own"},
			want: merge(fromEnv, "mode", "reconcile", "source_instance_crn", "flag-src", "backup_instance_crns", "b1,b2", "private_endpoints", "false",
				"prune", "false", "dry_run", "true", "concurrency", "32", "max_concurrency", "32", "secret_group", "fg", "ownership_key", "flag-own")},
		{name: "flags only", command: "reconcile", args: []string{"--apikey", "k", "--source", "s", "--backups", "b", "--iam-url", "https://i", "--endpoints", "{}"},
			want: map[string]any{"mode": "reconcile", "apikey": "k", "source_instance_crn": "s", "backup_instance_crns": "b", "iam_url": "https://i", "endpoints": "{}"}},
		{name: "verify leaves prune and dry run out", command: "verify", env: env, want: merge(fromEnv, "mode", "verify", "prune", nil, "dry_run", nil)},
		{name: "empty variables are absent", command: "reconcile", env: map[string]string{"APIKEY": "", "IAM_URL": ""}, want: map[string]any{"mode": "reconcile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := NewFlags(fs)
			switch tt.command {
			case "reconcile":
				f.addRun()
				f.addConcurrency()
			case "verify":
				f.ignore = []string{"prune", "dry_run"}
				f.addConcurrency()
			}
			require.NoError(t, fs.Parse(tt.args))
			assert.Equal(t, tt.want, f.Params(tt.command, getenv(tt.env)))
		})
	}
}

// TestFlagsCoverTheTable: every variable of config.Environment reaches a parameter,
// and every flag names a parameter of the table.
func TestFlagsCoverTheTable(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f := NewFlags(fs)
	f.addRun()
	f.addConcurrency()
	f.addWebhookSecret()
	for name, param := range f.params {
		assert.NotEmpty(t, param, name)
		assert.NotNil(t, fs.Lookup(name))
	}
	assert.Len(t, f.params, len(paramFlags), "check-config defines every parameter flag")
}

// cliWorld is a simulator with a source and a backup, and the environment that points
// the command at them.
type cliWorld struct {
	sim    *cmsim.Simulator
	source string
	backup string
	env    map[string]string
	// terminal: the command's stderr is taken for a terminal.
	terminal bool
}

func newCLIWorld(t *testing.T, certs int) *cliWorld {
	t.Helper()
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	w := &cliWorld{sim: sim, source: sim.AddInstance("us-south"), backup: sim.AddInstance("eu-de")}
	for _, inst := range []string{w.source, w.backup} {
		sim.Grant(apiKey, inst, cmsim.Manager)
	}
	endpoints := map[string]string{}
	for _, r := range []string{"us-south", "eu-de", "eu-gb"} {
		endpoints[r] = sim.RegionURL(srv.URL, r)
	}
	ep, err := json.Marshal(endpoints)
	require.NoError(t, err)
	w.env = map[string]string{
		"APIKEY": apiKey, "SOURCE_INSTANCE_CRN": w.source, "BACKUP_INSTANCE_CRNS": w.backup,
		"IAM_URL": sim.IAMURL(srv.URL), "ENDPOINTS": string(ep), "OWNERSHIP_KEY": ownershipKey, "WEBHOOK_SECRET": webhookSecret,
	}
	for i := range certs {
		d := fmt.Sprintf("site-%02d.example.com", i)
		sim.Seed(w.source, fmt.Sprintf("site-%02d", i), "", sim.CA().MustIssue(d))
	}
	return w
}

type outcome struct {
	code           int
	stdout, stderr string
}

func (w *cliWorld) run(t *testing.T, env map[string]string, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	r := &runner{
		stdout: &stdout, stderr: &stderr, getenv: getenv(env),
		deps:       app.Deps{MaxRetries: 1, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 10 * time.Millisecond},
		isTerminal: func(io.Writer) bool { return w.terminal },
	}
	o := outcome{code: r.main(args), stdout: stdout.String(), stderr: stderr.String()}
	assertNoSecret(t, o.stdout+o.stderr)
	return o
}

// TestCommands walks an operator through verify, dry run, reconcile and verify again.
func TestCommands(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 3)

	o := w.run(t, w.env, "verify", "--details")
	assert.Equal(t, ExitFail, o.code, o.stderr)
	assert.Regexp(t, `NAME\s+SOURCE\s+BACKUP\s+OUTCOME\s+VERIFIED\s+DETAIL`, o.stdout)
	assert.Regexp(t, `site-00\s+[0-9a-f]{12}\s+eu-de\s+would import\s+-\s+no copy in the backup`, o.stdout)
	assert.Contains(t, o.stdout, "verify: the backups do NOT match the source (3 steps to carry out)")

	w.sim.ResetLog()
	o = w.run(t, w.env, "reconcile", "--dry-run")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "backup eu-de ("+w.backup+"): 0 certificates listed; 3 would import")
	assert.Contains(t, o.stdout, "--details lists the 3 steps")
	assert.Contains(t, o.stdout, "dry run: 3 steps would be carried out; nothing was written")
	assert.Zero(t, w.sim.Writes(""))
	assert.Zero(t, w.sim.Count(cmsim.OpDownload, ""))

	o = w.run(t, w.env, "reconcile", "--details")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Regexp(t, `site-02\s+[0-9a-f]{12}\s+eu-de\s+imported\s+yes\s+sha256 [0-9a-f]{15}…\n`, o.stdout, "the copy was read back and verified")
	assert.NotRegexp(t, `imported.*no copy in the backup`, o.stdout, "once imported, the plan's reason is stale")
	assert.Contains(t, o.stdout, "source us-south ("+w.source+"): 3 certificates\n")
	assert.Contains(t, o.stdout, "backup eu-de ("+w.backup+"): 0 certificates listed; 3 imported")
	assert.Contains(t, o.stdout, "reconcile: done, the backups match the source")
	assert.Len(t, w.sim.Snapshot(w.backup), 3)

	o = w.run(t, w.env, "verify", "--details")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Regexp(t, `site-00\s+[0-9a-f]{12}\s+eu-de\s+unchanged\s+-\s*\n`, o.stdout, "verify reads no copy back")

	o = w.run(t, w.env, "verify", "--json")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	var rep reconcile.Report
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep), "stdout is the JSON report alone")
	assert.True(t, rep.Match)
	assert.Equal(t, reconcile.ModeVerify, rep.Mode)
	assert.Len(t, rep.Results, 3)

	// The same with flags instead of the environment.
	flags := []string{"verify", "--apikey", apiKey, "--source", w.source, "--backups", w.backup,
		"--iam-url", w.env["IAM_URL"], "--endpoints", w.env["ENDPOINTS"], "--ownership-key", ownershipKey, "--concurrency", "32", "--max-concurrency", "32"}
	o = w.run(t, nil, flags...)
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "verify: the backups match the source")
	assert.Contains(t, o.stderr, "warning: --apikey")
	assert.Contains(t, o.stderr, "warning: --ownership-key")
}

// TestSummaryByDefault: without --details a run prints the summary alone, however
// many certificates; --details adds one line per certificate and backup.
func TestSummaryByDefault(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 30)
	o := w.run(t, w.env, "reconcile")
	require.Equal(t, ExitOK, o.code, o.stderr)
	assert.NotContains(t, o.stdout, "NAME")
	assert.NotContains(t, o.stdout, "site-")
	assert.Equal(t, []string{
		"source us-south (" + w.source + "): 30 certificates",
		"backup eu-de (" + w.backup + "): 0 certificates listed; 30 imported",
		"reconcile: done, the backups match the source",
	}, strings.Split(strings.TrimSpace(o.stdout), "\n"))

	o = w.run(t, w.env, "verify", "--details")
	require.Equal(t, ExitOK, o.code, o.stderr)
	assert.Equal(t, 1+30+1+3, strings.Count(o.stdout, "\n"), "header, one row per certificate, a blank line, the summary")
}

// TestHostileNames: names are printed without control or bidirectional characters,
// and a long name is cut with an ellipsis instead of widening every row.
func TestHostileNames(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 1)
	long := "long-" + strings.Repeat("x", 195)
	names := []string{
		"invoice\u202Egpj.exe",                    // RIGHT-TO-LEFT OVERRIDE
		"a\x1b[2J\x1b]0;owned\x07b\u2066c\u200fd", // CSI, OSC, BEL, isolate, RLM
		"line\nbreak\rreturn\u2028sep\u0085nel",
		long,
	}
	for i, n := range names {
		w.sim.Seed(w.source, n, "", w.sim.CA().MustIssue(fmt.Sprintf("hostile-%d.example.com", i)))
	}
	w.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: w.backup, Status: 403})
	o := w.run(t, w.env, "reconcile", "--details")
	require.Equal(t, ExitFail, o.code, o.stderr)

	for _, r := range o.stdout {
		assert.False(t, r != '\n' && (unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)), "printed %U", r)
	}
	assert.Contains(t, o.stdout, "invoice\uFFFDgpj.exe")
	assert.Contains(t, o.stdout, "a [2J ]0;owned b\uFFFDc\uFFFDd")
	assert.Contains(t, o.stdout, "line break return\uFFFDsep nel")
	cut := long[:nameWidth-1] + "…"
	assert.Contains(t, o.stdout, cut+"  ", "in the table")
	assert.Contains(t, o.stdout, "  "+cut+" -> eu-de: ", "in the list of failures")
	assert.NotContains(t, o.stdout, long[:nameWidth])

	header := regexp.MustCompile(`(?m)^NAME\s+SOURCE`).FindString(o.stdout)
	assert.Equal(t, nameWidth+2+len("SOURCE"), len(header), "the NAME column is as wide as the widest cut name")
}

// TestExitCodeWhenWorkIsLeft: a backup that refuses imports makes reconcile exit 1 and
// say what it left and why.
func TestExitCodeWhenWorkIsLeft(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		want   string
	}{
		{name: "outage: deferred", status: 503, want: "deferred to the next run: 2"},
		{name: "forbidden: failed", status: 403, want: "failed: 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCLIWorld(t, 2)
			w.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: w.backup, Status: tt.status})
			o := w.run(t, w.env, "reconcile")
			assert.Equal(t, ExitFail, o.code)
			assert.Contains(t, o.stdout, tt.want)
			assert.Contains(t, o.stdout, fmt.Sprintf("status %d", tt.status))
			assert.Regexp(t, `site-01 -> eu-de: import: certificate manager import`, o.stdout)
		})
	}
}

// TestProgress: a long run shows a live count on a terminal's stderr, rewritten in
// place and erased before the report; a pipe, a log file or CI gets none, and stdout
// stays the report.
func TestProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		terminal bool
		ci       string
		args     []string
		shown    bool
	}{
		{name: "terminal", terminal: true, args: []string{"reconcile", "--json", "--concurrency", "8"}, shown: true},
		{name: "not a terminal", args: []string{"reconcile", "--json"}},
		{name: "CI on a pseudo-terminal", terminal: true, ci: "true", args: []string{"reconcile", "--json"}},
		{name: "verbose logs instead", terminal: true, args: []string{"reconcile", "--json", "--verbose"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCLIWorld(t, 60)
			w.terminal = tt.terminal
			o := w.run(t, with(w.env, "CI", tt.ci), tt.args...)
			assert.Equal(t, ExitOK, o.code, o.stderr)
			var rep reconcile.Report
			require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep), "stdout is the report alone")
			assert.Equal(t, 60, rep.Counts["imported"])
			if !tt.shown {
				assert.NotContains(t, o.stderr, "certificates done")
				assert.NotContains(t, o.stderr, "\r")
				return
			}
			assert.True(t, strings.HasPrefix(o.stderr, "\rreconcile: "), o.stderr)
			assert.Contains(t, o.stderr, "\rreconcile: 60/60 certificates done\x1b[K")
			assert.True(t, strings.HasSuffix(o.stderr, "\r\x1b[K"), "the line is erased before the report")
			assert.NotContains(t, o.stderr, "\n", "one line, rewritten in place")
		})
	}
}

// TestRestore: the command with source and backup swapped fills a new primary.
func TestRestore(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 3)
	require.Equal(t, ExitOK, w.run(t, w.env, "reconcile").code)

	primary := w.sim.AddInstance("eu-gb")
	w.sim.Grant(apiKey, primary, cmsim.Manager)
	swapped := with(w.env, "SOURCE_INSTANCE_CRN", w.backup, "BACKUP_INSTANCE_CRNS", primary)
	o := w.run(t, swapped, "reconcile")
	assert.Equal(t, ExitOK, o.code, o.stdout)
	got := w.sim.Snapshot(primary)
	require.Len(t, got, 3)
	names := map[string]bool{}
	for _, c := range got {
		names[c.Name] = true
		assert.Equal(t, 1, strings.Count(c.Description, "[certbackup source="))
	}
	assert.Equal(t, map[string]bool{"site-00": true, "site-01": true, "site-02": true}, names)
	assert.Equal(t, ExitOK, w.run(t, swapped, "verify").code)
}
