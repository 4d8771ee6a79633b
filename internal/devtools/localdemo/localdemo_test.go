package localdemo

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/build/buildzip"
	climain "github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
)

const manifestPath = "../../../manifest.yaml"

// The real action, built once for every test: exec for linux/amd64 as deploy.sh builds
// it, and the zip buildzip writes from it.
var (
	execBytes []byte
	execFile  string
	actionZip string
	execEnv   string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "localdemo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildAction(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build the action:", err)
		return 1
	}
	return m.Run()
}

func buildAction(dir string) error {
	manifest, err := os.ReadFile(manifestPath)
	if err != nil {
		return err
	}
	kind, err := buildzip.KindFromManifest(manifest, "notify")
	if err != nil {
		return err
	}
	if execEnv, err = buildzip.ExecutionEnvForKind(kind); err != nil {
		return err
	}
	execPath := filepath.Join(dir, "exec")
	execFile = execPath
	actionZip = filepath.Join(dir, "action.zip")
	// The two commands of `./deploy.sh build`. go test puts its own toolchain first in
	// PATH, so "go" is the same Go. The zip is written by the buildzip command rather
	// than in this process because deflating the binary under -race takes seconds.
	for _, args := range [][]string{
		{"build", "-trimpath", "-ldflags", "-s -w", "-o", execPath, "../../../function"},
		{"run", "../../build/cmd/buildzip", "-exec", execPath, "-out", actionZip, "-manifest", manifestPath, "-action", "notify,reconcile"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if args[0] == "build" {
			cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH=amd64")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", args[0], err, out)
		}
	}
	execBytes, err = os.ReadFile(execPath)
	return err
}

// lockedBuffer is an io.Writer safe for the pool's writers and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "test-key-" + hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRun(t *testing.T) {
	key, admin := testKey(t), testKey(t)
	var out bytes.Buffer
	logs := &lockedBuffer{}
	start := time.Now()
	err := Run(testCtx(t), Options{
		Zip: actionZip, Manifest: manifestPath,
		APIKey: key, AdminAPIKey: admin, ActionLogs: logs,
	}, &out)
	elapsed := time.Since(start)
	report := out.String()
	t.Log("\n" + report)
	require.NoError(t, err)
	assert.Less(t, elapsed, 20*time.Second, "the demo must run well under a minute")

	for _, want := range []string{
		`test_notification_channel\s+\(test\)\s+-> 200\s+test notification verified`,
		`cert_issued\s+shop\.example\.com\s+-> 200\s+eu-de: imported, verified`,
		`cert_renewed\s+shop\.example\.com\s+-> 200\s+eu-de: reimported, verified`,
		`\(import\)\s+legacy-api\s+-> no notification`,
		`verify\s+backup does not match source: legacy-api \(import\)`,
		`reconcile run\s+legacy-api\s+-> eu-de: imported, verified`,
		`cert_reimported\s+legacy-api\s+-> 200\s+eu-de: reimported, verified`,
		`legacy-api\s+api\.example\.com\s.*\syes\n`,
		`shop\.example\.com\s+shop\.example\.com,www\.shop\.example\.com\s.*\syes\n`,
		`verify\s+backup matches source \(2 source certificates\)`,
		`forged cert_issued\s+shop\.example\.com\s+-> 401\s+rejected \(bad_signature\); 0 write\(s\)`,
		`\nPASS: every step behaved as expected`,
	} {
		assert.Regexp(t, regexp.MustCompile(want), report)
	}
	assert.NotContains(t, report, "FAIL")

	actionLogs := logs.String()
	assert.Contains(t, actionLogs, `"msg":"notification handled"`, "the action's logs were captured")
	assert.NotContains(t, report, `"msg":`, "the action's logs stay out of the report without --verbose")
	for name, text := range map[string]string{"report": report, "action logs": actionLogs} {
		assert.NotContains(t, text, key, "%s holds the action's API key", name)
		assert.NotContains(t, text, admin, "%s holds the operator's API key", name)
		assert.NotContains(t, text, "PRIVATE KEY", name)
		assert.NotRegexp(t, `(?i)bearer\s+\S{12,}`, text, "%s holds a bearer token", name)
		assert.NotContains(t, text, simulatorTokenPrefix, "%s holds a simulator token", name)
	}
}

// When the backup refuses every import, the demo must say so and fail, not print a
// report that looks green.
func TestRunFailsWhenTheBackupRefusesWrites(t *testing.T) {
	var out bytes.Buffer
	err := Run(testCtx(t), Options{
		Zip: actionZip, Manifest: manifestPath,
		afterSetup: func(sim *cmsim.Simulator, _, backup string) {
			sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: backup, Status: http.StatusForbidden})
		},
	}, &out)
	report := out.String()
	t.Log("\n" + report)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cert_issued shop.example.com: the action answered 502, want 200")
	assert.Contains(t, report, "FAIL: shop.example.com has no copy in the backup")
	assert.Regexp(t, `cert_issued\s+shop\.example\.com\s+-> 502\s+eu-de: failed \(permanent\), not verified`, report)
	assert.Contains(t, report, "the final verify says the backup does not match the source")
	assert.Regexp(t, `\nFAIL: \d+ check\(s\) did not behave as expected`, report)
	assert.NotContains(t, report, "PASS")
}

func TestRunVerbosePrintsActionLogs(t *testing.T) {
	var out bytes.Buffer
	err := Run(testCtx(t), Options{Zip: actionZip, Manifest: manifestPath, Verbose: true, PoolSize: 1}, &out)
	require.NoError(t, err, out.String())
	assert.Regexp(t, `action logs \(\d+ lines\):\n  exec#1 stdout: \{`, out.String())
	assert.Contains(t, out.String(), `"msg":"notification rejected"`)
}

func TestRunServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	key, admin := testKey(t), testKey(t)
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Zip: actionZip, Manifest: manifestPath, Serve: true, APIKey: key, AdminAPIKey: admin}, out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "until Ctrl-C") }, 30*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	text := out.String()
	// --serve prints the operator's throwaway key, labelled, and the commands; never
	// the action's key.
	assert.Contains(t, text, "APIKEY='"+admin+"'")
	assert.NotContains(t, text, key)
	assert.Contains(t, text, "Throwaway keys that exist only in this simulator")
	assert.Regexp(t, `\$SIM/us-south/api/v3/\$\(esc "\$SOURCE_INSTANCE_CRN"\)/certificates`, text)
	assert.Contains(t, text, `"$SIM/us-south/api/v1/$(esc "$SOURCE_INSTANCE_CRN")/certificates/order"`)
	assert.Regexp(t, `SIM='http://127\.0\.0\.1:\d+'`, text)
	// CRNs as the README's commands take them, not URL-escaped.
	assert.Regexp(t, `SOURCE_INSTANCE_CRN='crn:v1:bluemix:public:cloudcerts:us-south:a/[0-9a-f]+:[0-9a-f-]+::'`, text)
	assert.NotContains(t, text, "crn%3A")
	assert.Contains(t, text, "stopped")
}

// The served demo is where the README's commands can be tried as printed: the export
// block, pasted into a shell, is an environment in which the terminal command verifies
// the backup; the runbook's restore (roles swapped) runs with the printed key; the
// channel commands reach the web action; and each notification prints a line.
func TestServeRunsTheREADMECommands(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	key, admin := testKey(t), testKey(t)
	var sim *cmsim.Simulator
	var source string
	out := &lockedBuffer{}
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Zip: actionZip, Manifest: manifestPath, Serve: true, APIKey: key, AdminAPIKey: admin, ActionLogs: logs,
			afterSetup: func(s *cmsim.Simulator, src, _ string) { sim, source = s, src },
		}, out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "\nnotifications:\n") }, 30*time.Second, 20*time.Millisecond)
	text := out.String()
	t.Log("\n" + text)

	block := exportBlockOf(t, text)
	env := shellEnv(t, block)
	assert.Equal(t, admin, env["APIKEY"], "the operator's key")
	assert.NotEmpty(t, env["OWNERSHIP_KEY"])
	assert.True(t, strings.HasPrefix(env["SOURCE_INSTANCE_CRN"], "crn:v1:bluemix:public:cloudcerts:us-south:"), env["SOURCE_INSTANCE_CRN"])

	cli := func(env map[string]string, args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := climain.Main(args, &stdout, &stderr, func(name string) string { return env[name] })
		return code, stdout.String() + stderr.String()
	}
	code, output := cli(env, "verify")
	require.Equal(t, 0, code, output)

	// The runbook's restore, from the printed line: the backup as the source, the old
	// source as the new primary.
	m := regexp.MustCompile(`(?m)^  \(\n(    export SOURCE_INSTANCE_CRN='[^']+' \\\n      BACKUP_INSTANCE_CRNS='[^']+'\n)    go run \./function reconcile --dry-run\n`).FindStringSubmatch(text)
	require.NotNil(t, m, "the restore lines")
	swapped := shellEnv(t, block+m[1])
	require.Equal(t, env["BACKUP_INSTANCE_CRNS"], swapped["SOURCE_INSTANCE_CRN"])
	require.Equal(t, env["SOURCE_INSTANCE_CRN"], swapped["BACKUP_INSTANCE_CRNS"])
	// The old source lost a certificate: the restore imports it back, which takes
	// Manager on the old source.
	lost := ""
	for _, c := range sim.Snapshot(source) {
		if c.Name == shopName {
			lost = c.ID
		}
	}
	require.NoError(t, sim.Delete(lost))
	code, output = cli(swapped, "reconcile")
	require.Equal(t, 0, code, output)
	t.Log("restore:\n", output)
	assert.Contains(t, output, "imported")
	restored := 0
	for _, c := range sim.Snapshot(source) {
		if c.Name == shopName {
			restored++
		}
	}
	assert.Equal(t, 1, restored, "the restore put the lost certificate back, once")
	code, output = cli(swapped, "verify")
	require.Equal(t, 0, code, output)
	// Back to the first direction (the runbook's redeploy): the backup's copy of the
	// restored certificate is relabelled to name it, and everything matches.
	code, output = cli(env, "reconcile")
	require.Equal(t, 0, code, output)
	code, output = cli(env, "verify")
	require.Equal(t, 0, code, output)

	// The channel commands of the README reach the web action, and each notification
	// prints its line.
	url := regexp.MustCompile(`go run \./function test-channel --url '([^']+)'`).FindStringSubmatch(text)
	require.NotNil(t, url)
	code, output = cli(env, "register-channel", "--url", url[1])
	require.Equal(t, 0, code, output)
	code, output = cli(env, "test-channel", "--url", url[1])
	require.Equal(t, 3, code, "Certificate Manager does not confirm a delivery: %s", output)
	waitFor(t, out, `\d\d:\d\d:\d\d  test_notification_channel\s+-\s+-> 200  test notification verified, nothing to copy\n`)

	_, err := sim.Order(source, "order.example.com", "order.example.com")
	require.NoError(t, err)
	waitFor(t, out, `cert_issued\s+order\.example\.com\s+-> 200  imported 1\n`)

	forged := regexp.MustCompile(`-d '\{"data":"([^"]+)"\}'`).FindStringSubmatch(text)
	require.NotNil(t, forged)
	status, _, err := post(ctx, http.DefaultClient, url[1], forged[1])
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, status)
	waitFor(t, out, `\(unverified\)\s+-\s+-> 401  rejected \(bad_signature\)\n`)

	// The API commands, when curl is here to run them.
	if _, err := exec.LookPath("curl"); err == nil {
		sh := block + lineOf(t, text, "SIM=") + lineOf(t, text, "esc() {") + linesFrom(t, text, "TOKEN=$(curl", 3) +
			lineOf(t, text, `"$SIM/eu-de/api/v3/`)
		listed, err := exec.Command("sh", "-c", sh).CombinedOutput()
		require.NoError(t, err, string(listed))
		assert.Contains(t, string(listed), `"name":"order.example.com"`, "the backup lists the ordered certificate's copy")
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	t.Log("\n" + strings.TrimPrefix(out.String(), text))
	for name, text := range map[string]string{"output": out.String(), "action logs": logs.String()} {
		assert.NotContains(t, text, key, "%s holds the action's API key", name)
		assert.NotContains(t, text, "PRIVATE KEY", name)
		assert.NotContains(t, text, simulatorTokenPrefix, "%s holds a simulator token", name)
	}
	assert.NotContains(t, logs.String(), admin)
	assert.NotContains(t, logs.String(), env["OWNERSHIP_KEY"])
}

// exportBlockOf is the `export` command the served demo printed, continuation lines
// included.
func exportBlockOf(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, "  export ")
	require.GreaterOrEqual(t, i, 0, "no export block")
	var b strings.Builder
	for line := range strings.SplitSeq(text[i:], "\n") {
		b.WriteString(line + "\n")
		if !strings.HasSuffix(line, "\\") {
			break
		}
	}
	return b.String()
}

// shellEnv runs script in sh and returns the variables of the terminal command that
// it leaves exported.
func shellEnv(t *testing.T, script string) map[string]string {
	t.Helper()
	names := []string{"APIKEY", "OWNERSHIP_KEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS", "IAM_URL", "ENDPOINTS"}
	var printf strings.Builder
	printf.WriteString("sh -c 'printf \"%s\\0\"")
	for _, n := range names {
		printf.WriteString(` "` + n + `=$` + n + `"`)
	}
	printf.WriteString("'\n")
	cmd := exec.Command("sh", "-c", script+printf.String())
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	got, err := cmd.Output()
	require.NoError(t, err, script)
	env := map[string]string{}
	for kv := range strings.SplitSeq(strings.TrimSuffix(string(got), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		if v != "" {
			env[k] = v
		}
	}
	return env
}

func lineOf(t *testing.T, text, prefix string) string {
	t.Helper()
	return linesFrom(t, text, prefix, 1)
}

// linesFrom is the n lines of text from the first that contains start.
func linesFrom(t *testing.T, text, start string, n int) string {
	t.Helper()
	i := strings.Index(text, start)
	require.GreaterOrEqual(t, i, 0, "no line with %q", start)
	i = strings.LastIndexByte(text[:i], '\n') + 1
	lines := strings.SplitAfterN(text[i:], "\n", n+1)
	return strings.Join(lines[:n], "")
}

func waitFor(t *testing.T, out *lockedBuffer, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if !assert.Eventually(t, func() bool { return re.MatchString(out.String()) }, 10*time.Second, 20*time.Millisecond) {
		t.Fatalf("no line matching %s in:\n%s", pattern, out.String())
	}
}

func TestRunRefusesAZipForAnotherRuntime(t *testing.T) {
	// The real exec beside the exec.env of another Go runtime, stored uncompressed
	// (deflate under -race is slow and beside the point).
	path := filepath.Join(t.TempDir(), "action.zip")
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for _, e := range []struct {
		name string
		mode os.FileMode
		data []byte
	}{{"exec", 0o755, execBytes}, {"exec.env", 0o644, []byte("openwhisk/action-golang-v1.20")}} {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())

	var out bytes.Buffer
	err = Run(testCtx(t), Options{Zip: path, Manifest: manifestPath}, &out)
	require.ErrorIs(t, err, owproxy.ErrExecEnvMismatch)
}

func TestRunNamesAMissingZip(t *testing.T) {
	var out bytes.Buffer
	err := Run(testCtx(t), Options{Zip: filepath.Join(t.TempDir(), "none.zip"), Manifest: manifestPath}, &out)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "./deploy.sh build")
}

// A manifest that no longer binds the endpoints would send the action to IBM Cloud:
// the demo refuses before it starts the action.
func TestRunRefusesAManifestThatDoesNotPointAtTheSimulator(t *testing.T) {
	manifest, err := os.ReadFile(manifestPath)
	require.NoError(t, err)
	edited := strings.Replace(string(manifest), "endpoints: $CM_ENDPOINTS", "endpoints: ''", 1)
	require.NotEqual(t, string(manifest), edited)
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o600))

	var out bytes.Buffer
	err = Run(testCtx(t), Options{Zip: actionZip, Manifest: path}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot point the action at the simulator")
	assert.NotContains(t, out.String(), "[3] action")
}

func TestBoundParamsOfTheRealManifest(t *testing.T) {
	manifest, err := os.ReadFile(manifestPath)
	require.NoError(t, err)
	params, err := boundParams(manifest, "notify", map[string]string{
		"CM_APIKEY": "k", "SOURCE_INSTANCE_CRN": "s", "BACKUP_INSTANCE_CRNS": "b",
		"IAM_URL": "http://127.0.0.1:1", "CM_ENDPOINTS": `{"us-south":"http://127.0.0.1:1/us-south"}`,
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"mode": "notify", "apikey": "k", "backup_apikey": "", "source_instance_crn": "s",
		"backup_instance_crns": "b", "source_public_key": "", "iam_url": "http://127.0.0.1:1",
		"endpoints": `{"us-south":"http://127.0.0.1:1/us-south"}`, "private_endpoints": "",
		"secret_group": "", "ownership_key": "", "max_requests_per_second": "",
	}, params)

	rec, err := boundParams(manifest, "reconcile", nil)
	require.NoError(t, err)
	assert.Equal(t, "reconcile", rec["mode"])
}

func TestBoundParamsRefusesWhatItCannotRead(t *testing.T) {
	_, err := boundParams([]byte("project:\n  packages:\n    p:\n      actions:\n        other:\n          inputs:\n            a: b\n"), "notify", nil)
	assert.ErrorContains(t, err, `action "notify" not found`)

	_, err = boundParams([]byte("actions:\n  notify:\n    web: true\n"), "notify", nil)
	assert.ErrorContains(t, err, "no inputs")

	nested := "actions:\n  notify:\n    inputs:\n      payload:\n        type: json\n"
	_, err = boundParams([]byte(nested), "notify", nil)
	assert.ErrorContains(t, err, "nested value")

	quoted := "actions:\n  notify:\n    inputs:\n      mode: \"notify\" # the web action\n      key: ${K}\n"
	params, err := boundParams([]byte(quoted), "notify", map[string]string{"K": "v"})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"mode": "notify", "key": "v"}, params)
}
