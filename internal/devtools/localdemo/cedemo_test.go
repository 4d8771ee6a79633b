package localdemo

import (
	"bytes"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

func TestRunCodeEngine(t *testing.T) {
	key, webhook := testKey(t), "test-webhook-"+testKey(t)
	var out bytes.Buffer
	logs := &lockedBuffer{}
	sims := &smSims{}
	start := time.Now()
	err := RunCodeEngine(testCtx(t), Options{
		Exec: execFile, APIKey: key, WebhookSecret: webhook, ActionLogs: logs, afterSMSetup: sims.hook,
	}, &out)
	elapsed := time.Since(start)
	report := out.String()
	t.Log("\n" + report)
	require.NoError(t, err)
	assert.Less(t, elapsed, 25*time.Second, "the demo must take seconds")

	for _, want := range []string{
		`\[3\] server\s+\S+exec serve, PORT=\d+: GET /healthz 200`,
		`secret_created  shop-example-com\s+-> 200  imported 1 `,
		`secret_rotated  shop-example-com \(rotated\)\s+-> 200  reimported 1 `,
		`its copy in BAK, shop-example-com-[0-9a-f]{8}: imported_cert, 2 version\(s\), oldest first: \S+, \S+\n`,
		`the same secret_rotated again \(a retry\)\s+-> 200  unchanged 1 `,
		`secret_created  25 entries, 20 secrets\s+-> \d+ `,
		`BAK now holds a copy of 20 of the 20; 20 secret\(s\) created in BAK`,
		`no Authorization header\s+-> 401  refused \(unauthorized\)  \(\S+, 0 request\(s\) to Secrets Manager\)`,
		`a wrong bearer\s+-> 401  refused \(unauthorized\)  \(\S+, 0 request\(s\) to Secrets Manager\)`,
		`the right bearer, source OTHER\s+-> 403  refused \(forbidden\)  \(\S+, 0 request\(s\) to Secrets Manager\)`,
		`the right bearer, SRC, one secret of OTHER\s+-> 403  refused \(forbidden\)  \(\S+, 0 request\(s\) to Secrets Manager\)`,
		`\$ \S+exec reconcile\s+SRC -> BAK\s+exit 0`,
		`1 imported, 21 unchanged`,
		`\[8\] SIGTERM\s+the server stopped accepting, finished, and exited 0`,
		`\nPASS: every step behaved as expected`,
	} {
		assert.Regexp(t, regexp.MustCompile(want), report)
	}
	assert.NotContains(t, report, "FAIL")

	// The effects: one copy of each of the source's 22 secrets, nothing in OTHER but
	// its own secret.
	src, err := sims.sm.List(sims.sm1)
	require.NoError(t, err)
	require.Len(t, src, 22)
	bak, err := sims.sm.List(sims.sm2)
	require.NoError(t, err)
	copies := map[string]int{}
	for _, s := range bak {
		copies[asString(s.CustomMetadata[metadataSource])]++
	}
	for _, s := range src {
		assert.Equal(t, 1, copies[s.CRN], "copies of %s", s.Name)
	}
	assert.Len(t, bak, 22)
	assert.Zero(t, sims.sm.Writes(otherInstance(t, sims)), "nothing was written in OTHER")

	for name, text := range map[string]string{"report": report, "binary output": logs.String()} {
		assert.NotContains(t, text, key, "%s holds the API key", name)
		assert.NotContains(t, text, webhook, "%s holds the webhook secret", name)
		assert.NotContains(t, text, "PRIVATE KEY", name)
		assert.NotContains(t, text, simulatorTokenPrefix, name)
		assert.NotRegexp(t, `(?i)bearer\s+\S{12,}`, text, name)
	}
	assert.Contains(t, logs.String(), `"msg":"event rejected"`, "the server's log lines were captured")
}

// otherInstance is the demo's third instance, the one that is not the source.
func otherInstance(t *testing.T, s *smSims) string {
	t.Helper()
	for _, in := range s.sm.Instances() {
		if in != s.sm1 && in != s.sm2 {
			return in
		}
	}
	t.Fatal("no third instance")
	return ""
}

// When the backup refuses an import, /events answers 5xx and the demo says so and
// fails, even though everything after it goes well.
func TestRunCodeEngineFailsWhenTheBackupRefusesAnImport(t *testing.T) {
	var out bytes.Buffer
	sims := &smSims{faultsOnSetup: func(s *smSims) {
		s.sm.Inject(smsim.Fault{Op: smsim.OpCreateSecret, Instance: s.sm2, Status: http.StatusForbidden, Times: 1})
	}}
	err := RunCodeEngine(testCtx(t), Options{Exec: execFile, afterSMSetup: sims.hook}, &out)
	report := out.String()
	t.Log("\n" + report)
	require.Error(t, err)
	assert.Regexp(t, `secret_created  shop-example-com\s+-> 502  failed 1`, report)
	assert.Contains(t, report, "FAIL: secret_created: 502 (failed 1), want 200 and one import")
	assert.Contains(t, report, "exited 0", "the server still stops cleanly")
	assert.Regexp(t, `\nFAIL: \d+ check\(s\) did not behave as expected`, report)
	assert.NotContains(t, report, "PASS")
}

func TestRunCodeEngineNamesAMissingBinary(t *testing.T) {
	var out bytes.Buffer
	err := RunCodeEngine(testCtx(t), Options{Exec: filepath.Join(t.TempDir(), "exec")}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "./deploy.sh build")
}
