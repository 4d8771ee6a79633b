package localdemo

import (
	"bytes"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

// smSims are the simulators of a Secrets Manager demo, for the test to look at.
type smSims struct {
	cm            *cmsim.Simulator
	sm            *smsim.Simulator
	cmSource      string
	sm1, sm2      string
	faultsOnSetup func(*smSims)
}

func (s *smSims) hook(cm *cmsim.Simulator, sm *smsim.Simulator, cmSource, sm1, sm2 string) {
	s.cm, s.sm, s.cmSource, s.sm1, s.sm2 = cm, sm, cmSource, sm1, sm2
	if s.faultsOnSetup != nil {
		s.faultsOnSetup(s)
	}
}

func TestRunSM(t *testing.T) {
	key := testKey(t)
	var out bytes.Buffer
	logs := &lockedBuffer{}
	sims := &smSims{}
	start := time.Now()
	err := RunSM(testCtx(t), Options{Exec: execFile, APIKey: key, ActionLogs: logs, afterSMSetup: sims.hook}, &out)
	elapsed := time.Since(start)
	report := out.String()
	t.Log("\n" + report)
	require.NoError(t, err)
	assert.Less(t, elapsed, 20*time.Second, "the demo must take seconds")

	for _, want := range []string{
		`\$ \S+exec verify\s+CM -> SM1\s+exit 1`,
		`\$ \S+exec reconcile\s+CM -> SM1\s+exit 0`,
		`backup eu-de \(SM1\): 0 certificates listed; 4 imported`,
		`\$ \S+exec verify\s+CM -> SM1\s+exit 0`,
		`\$ \S+exec reconcile\s+SM1 -> SM2\s+exit 0`,
		`backup eu-gb \(SM2\): 4 certificates listed; 1 reimported, 3 unchanged`,
		`its copy in SM2, shop\.example\.com-[0-9a-f]{8}: 2 versions`,
		`\[7\] replay[^\n]*\n[^\n]*exit 0[^\n]*\n(?:          [^\n]*\n)*      0 write\(s\)`,
		`\$ \S+exec verify\s+SM1 -> SM2\s+exit 0`,
		`\nPASS: every step behaved as expected`,
	} {
		assert.Regexp(t, regexp.MustCompile(want), report)
	}
	assert.NotContains(t, report, "FAIL")

	// The effects, read from the simulators.
	source := map[string]string{} // CM certificate ID -> name
	for _, c := range sims.cm.Snapshot(sims.cmSource) {
		source[c.ID] = c.Name
	}
	require.Len(t, source, 4)
	sm1, err := sims.sm.List(sims.sm1)
	require.NoError(t, err)
	require.Len(t, sm1, 4)
	names := map[string]string{} // source name + ID -> copy name
	seen := map[string]bool{}
	for _, s := range sm1 {
		assert.Equal(t, smsim.ImportedCert, s.Type)
		assert.Regexp(t, `^[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]$`, s.Name)
		assert.False(t, seen[strings.ToLower(s.Name)], "two copies named %s", s.Name)
		seen[strings.ToLower(s.Name)] = true
		src := asString(s.CustomMetadata[metadataSource])
		require.Contains(t, source, src, "the marker names a source certificate")
		names[source[src]+" "+src] = s.Name
	}
	var apiCopies []string
	for k, v := range names {
		if strings.HasPrefix(k, apiName+" ") {
			apiCopies = append(apiCopies, v)
		}
		if strings.HasPrefix(k, legacyNameSM+" ") {
			assert.NotContains(t, v, " ")
			assert.NotContains(t, v, "_")
		}
	}
	assert.Len(t, apiCopies, 2, "both certificates named %s are copied", apiName)

	sm2, err := sims.sm.List(sims.sm2)
	require.NoError(t, err)
	require.Len(t, sm2, 4)
	rotated := 0
	for _, s := range sm2 {
		if s.VersionsTotal == 2 {
			rotated++
			assert.True(t, s.Versions[0].PayloadAvailable, "the previous version is kept")
		}
	}
	assert.Equal(t, 1, rotated, "one copy in SM2 has a new version")

	for name, text := range map[string]string{"report": report, "binary output": logs.String()} {
		assert.NotContains(t, text, key, "%s holds the API key", name)
		assert.NotContains(t, text, "PRIVATE KEY", name)
		assert.NotContains(t, text, simulatorTokenPrefix, name)
		assert.NotRegexp(t, `(?i)bearer\s+\S{12,}`, text, name)
	}
}

// When SM1 refuses every import, the demo says so and fails.
func TestRunSMFailsWhenTheBackupRefusesImports(t *testing.T) {
	var out bytes.Buffer
	sims := &smSims{faultsOnSetup: func(s *smSims) {
		s.sm.Inject(smsim.Fault{Op: smsim.OpCreateSecret, Instance: s.sm1, Status: http.StatusForbidden})
	}}
	err := RunSM(testCtx(t), Options{Exec: execFile, afterSMSetup: sims.hook}, &out)
	report := out.String()
	t.Log("\n" + report)
	require.Error(t, err)
	assert.Regexp(t, `\$ \S+exec reconcile\s+CM -> SM1\s+exit 1`, report)
	assert.Contains(t, report, "FAIL: SM1 holds 0 secrets")
	assert.Regexp(t, `\nFAIL: \d+ check\(s\) did not behave as expected`, report)
	assert.NotContains(t, report, "PASS")
}

func TestRunSMNamesAMissingBinary(t *testing.T) {
	var out bytes.Buffer
	err := RunSM(testCtx(t), Options{Exec: filepath.Join(t.TempDir(), "exec")}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "./deploy.sh build")
}
