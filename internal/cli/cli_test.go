package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	apiKey = "cli-test-api-key-Zq8v1XyW"
	srcCRN = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:11111111-1111-1111-1111-111111111111::"
	bkCRN  = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct1:22222222-2222-2222-2222-222222222222::"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// TestUsageAndConfigErrors: nothing is called, exit 2, and the error speaks of flags
// and variables, never of the key.
func TestUsageAndConfigErrors(t *testing.T) {
	full := map[string]string{"CM_APIKEY": apiKey, "SOURCE_INSTANCE_CRN": srcCRN, "BACKUP_INSTANCE_CRNS": bkCRN}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr []string // substrings
	}{
		{name: "no command", args: nil, code: ExitUsage, stderr: []string{"usage:", "reconcile", "verify"}},
		{name: "unknown command", args: []string{"sync"}, code: ExitUsage, stderr: []string{`unknown command "sync"`}},
		{name: "help", args: []string{"help"}, code: ExitOK, stderr: []string{"usage:", "swap"}},
		{name: "command help", args: []string{"verify", "-h"}, code: ExitOK, stderr: []string{"-backups", "-timeout"}},
		{name: "nothing set", args: []string{"reconcile"}, code: ExitUsage,
			stderr: []string{"--apikey / CM_APIKEY: is required", "--source / SOURCE_INSTANCE_CRN: is required", "--backups / BACKUP_INSTANCE_CRNS: is required"}},
		{name: "source is its own backup", args: []string{"verify", "--backups", srcCRN}, env: full, code: ExitUsage,
			stderr: []string{"--backups / BACKUP_INSTANCE_CRNS: the source instance cannot be its own backup"}},
		{name: "concurrency out of range", args: []string{"reconcile", "--concurrency", "0"}, env: full, code: ExitUsage,
			stderr: []string{"--concurrency: must be between"}},
		{name: "malformed endpoints", args: []string{"reconcile"}, env: with(full, "CM_ENDPOINTS", `{"eu-de": "http://example.com"}`), code: ExitUsage,
			stderr: []string{"--endpoints / CM_ENDPOINTS"}},
		{name: "stray argument", args: []string{"reconcile", "now"}, env: full, code: ExitUsage, stderr: []string{`unexpected argument "now"`}},
		{name: "key on the command line is warned about, not echoed", args: []string{"reconcile", "--apikey", apiKey}, code: ExitUsage,
			stderr: []string{"warning: --apikey puts the key in the shell history", "--source / SOURCE_INSTANCE_CRN: is required"}},
		{name: "a key that is not one is refused without quoting it", args: []string{"reconcile"}, env: with(full, "CM_APIKEY", apiKey+" oops"), code: ExitUsage,
			stderr: []string{"--apikey / CM_APIKEY: contains characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tt.args, &stdout, &stderr, getenv(tt.env))
			assert.Equal(t, tt.code, code, stderr.String())
			for _, s := range tt.stderr {
				assert.Contains(t, stderr.String(), s)
			}
			assert.NotContains(t, stdout.String()+stderr.String(), apiKey)
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

// TestParams: flags that are given win over the environment; flags that are not given
// leave the parameter to the environment or to config's default.
func TestParams(t *testing.T) {
	env := map[string]string{
		"CM_APIKEY": "env-key", "BACKUP_APIKEY": "env-backup-key", "SOURCE_INSTANCE_CRN": "env-src",
		"BACKUP_INSTANCE_CRNS": "env-bk", "IAM_URL": "https://iam.example", "CM_ENDPOINTS": `{"a":"b"}`, "PRIVATE_ENDPOINTS": "true",
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want map[string]any
	}{
		{name: "environment only", env: env, want: map[string]any{
			"mode": "verify", "apikey": "env-key", "backup_apikey": "env-backup-key", "source_instance_crn": "env-src",
			"backup_instance_crns": "env-bk", "iam_url": "https://iam.example", "endpoints": `{"a":"b"}`, "private_endpoints": "true",
		}},
		{name: "flags win", env: env, args: []string{"--source", "flag-src", "--backups", "b1,b2", "--private-endpoints=false", "--prune", "--dry-run", "--concurrency", "8"},
			want: map[string]any{
				"mode": "verify", "apikey": "env-key", "backup_apikey": "env-backup-key", "source_instance_crn": "flag-src",
				"backup_instance_crns": "b1,b2", "iam_url": "https://iam.example", "endpoints": `{"a":"b"}`, "private_endpoints": "false",
				"prune": "true", "dry_run": "true", "concurrency": "8",
			}},
		{name: "flags only", args: []string{"--apikey", "k", "--source", "s", "--backups", "b", "--iam-url", "https://i", "--endpoints", "{}"},
			want: map[string]any{"mode": "verify", "apikey": "k", "source_instance_crn": "s", "backup_instance_crns": "b", "iam_url": "https://i", "endpoints": "{}"}},
		{name: "empty variables are absent", env: map[string]string{"CM_APIKEY": "", "IAM_URL": ""}, want: map[string]any{"mode": "verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := NewFlags(fs)
			require.NoError(t, fs.Parse(tt.args))
			assert.Equal(t, tt.want, f.Params("verify", getenv(tt.env)))
		})
	}
}

// cliWorld is a simulator with a source and a backup, and the environment that points
// the command at them.
type cliWorld struct {
	sim    *cmsim.Simulator
	source string
	backup string
	env    map[string]string
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
		"CM_APIKEY": apiKey, "SOURCE_INSTANCE_CRN": w.source, "BACKUP_INSTANCE_CRNS": w.backup,
		"IAM_URL": sim.IAMURL(srv.URL), "CM_ENDPOINTS": string(ep),
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
		deps:           app.Deps{MaxRetries: 1, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 10 * time.Millisecond},
		progressEveryN: 50, progressEvery: time.Hour,
	}
	o := outcome{code: r.main(args), stdout: stdout.String(), stderr: stderr.String()}
	assert.NotContains(t, o.stdout+o.stderr, apiKey, "no output holds the API key")
	return o
}

// TestCommands walks an operator through verify, dry run, reconcile and verify again.
func TestCommands(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 3)

	o := w.run(t, w.env, "verify")
	assert.Equal(t, ExitFail, o.code, o.stderr)
	assert.Regexp(t, `NAME\s+SOURCE\s+BACKUP\s+OUTCOME\s+DETAIL`, o.stdout)
	assert.Regexp(t, `site-00\s+[0-9a-f]{12}\s+eu-de\s+would import\s+no copy in the backup`, o.stdout)
	assert.Contains(t, o.stdout, "verify: the backups do NOT match the source (3 steps to carry out)")

	w.sim.ResetLog()
	o = w.run(t, w.env, "reconcile", "--dry-run")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "dry run: 3 steps would be carried out; nothing was written")
	assert.Zero(t, w.sim.Writes(""))
	assert.Zero(t, w.sim.Count(cmsim.OpDownload, ""))

	o = w.run(t, w.env, "reconcile")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Regexp(t, `site-02\s+[0-9a-f]{12}\s+eu-de\s+imported`, o.stdout)
	assert.Contains(t, o.stdout, "backup eu-de ("+w.backup+"): 0 certificates listed; 3 imported")
	assert.Contains(t, o.stdout, "reconcile: done, the backups match the source")
	assert.Len(t, w.sim.Snapshot(w.backup), 3)

	o = w.run(t, w.env, "verify", "--json")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	var rep reconcile.Report
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep), "stdout is the JSON report alone")
	assert.True(t, rep.Match)
	assert.Equal(t, reconcile.ModeVerify, rep.Mode)
	assert.Len(t, rep.Results, 3)

	// The same with flags instead of the environment.
	flags := []string{"verify", "--apikey", apiKey, "--source", w.source, "--backups", w.backup,
		"--iam-url", w.env["IAM_URL"], "--endpoints", w.env["CM_ENDPOINTS"]}
	o = w.run(t, nil, flags...)
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stdout, "verify: the backups match the source")
	assert.Contains(t, o.stderr, "warning: --apikey")
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

// TestProgress: a long run says how far it is on stderr, and stdout stays the report.
func TestProgress(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 60)
	o := w.run(t, w.env, "reconcile", "--json", "--concurrency", "8")
	assert.Equal(t, ExitOK, o.code, o.stderr)
	assert.Contains(t, o.stderr, "progress: 50/60 certificates")
	assert.NotContains(t, o.stdout, "progress")
	var rep reconcile.Report
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep))
	assert.Equal(t, 60, rep.Counts["imported"])
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

func TestCleanKeepsTheTerminalStill(t *testing.T) {
	assert.Equal(t, "a [2Jb c d", clean("a\x1b[2Jb\nc\td"))
	assert.Equal(t, "é ok", clean("é ok"))
}
