package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckConfig: the contract deploy.sh relies on. Valid: "configuration valid" on
// stdout, nothing on stderr, exit 0. Invalid: one line per problem on stderr, naming
// the parameter (flag / variable) and the rule and never a value, exit 2. No API call
// in either case.
func TestCheckConfig(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	// Every URL points at srv, so that a call, had one been made, would be counted.
	valid := map[string]string{
		"APIKEY": apiKey, "SOURCE_INSTANCE_CRN": srcCRN, "BACKUP_INSTANCE_CRNS": bkCRN,
		"IAM_URL": srv.URL, "ENDPOINTS": `{"us-south":"` + srv.URL + `","eu-de":"` + srv.URL + `"}`,
	}
	smSource := with(valid, "SOURCE_INSTANCE_CRN", smCRN, "ENDPOINTS", `{"us-south":"`+srv.URL+`","eu-de":"`+srv.URL+`","`+smCRN+`":"`+srv.URL+`"}`)

	tests := []struct {
		name string
		args []string
		env  map[string]string
		// problems are the lines expected on stderr, in order, without the
		// "check-config: " prefix; none means valid.
		problems []string
	}{
		{name: "valid from the environment", env: valid},
		{name: "valid with every flag", env: map[string]string{"IAM_URL": srv.URL, "APIKEY": apiKey},
			args: []string{"--platform", "openwhisk", "--cron", "0 * * * *", "--source", srcCRN, "--backups", bkCRN, "--prune", "--dry-run",
				"--concurrency", "40", "--max-concurrency", "64", "--secret-group", "certs", "--private-endpoints"}},
		{name: "valid older names", env: map[string]string{"CM_APIKEY": apiKey, "SOURCE_INSTANCE_CRN": srcCRN, "BACKUP_INSTANCE_CRNS": bkCRN, "CM_ENDPOINTS": valid["ENDPOINTS"], "IAM_URL": srv.URL}},
		{name: "valid cron with lists, ranges and steps", env: valid, args: []string{"--cron", "*/15 0-6/2 1,15 1-12 1-5"}},
		{name: "valid Secrets Manager source on Code Engine with its webhook secret", env: with(smSource, "WEBHOOK_SECRET", webhookSecret),
			args: []string{"--platform", "codeengine"}},
		{name: "valid Secrets Manager source on OpenWhisk needs no webhook secret", env: smSource, args: []string{"--platform", "openwhisk"}},
		{name: "valid Certificate Manager source on Code Engine needs no webhook secret", env: valid, args: []string{"--platform", "codeengine"}},

		{name: "nothing set", args: []string{"--platform", "codeengine"}, problems: []string{
			"--apikey / APIKEY: is required (an IBM Cloud API key with Writer on the source and Manager on the backups)",
			"--source / SOURCE_INSTANCE_CRN: is required",
			"--backups / BACKUP_INSTANCE_CRNS: is required: one or more instance CRNs, as a JSON array or comma-separated",
		}},
		{name: "Secrets Manager source on Code Engine without a webhook secret", env: smSource, args: []string{"--platform", "codeengine"}, problems: []string{
			"--webhook-secret / WEBHOOK_SECRET: is required on Code Engine when the source is a Secrets Manager instance (Event Notifications authenticates its webhook calls with it)",
		}},
		{name: "webhook secret too short", env: with(smSource, "WEBHOOK_SECRET", webhookSecret[:20]), args: []string{"--platform", "codeengine"}, problems: []string{
			"--webhook-secret / WEBHOOK_SECRET: must be at least 32 characters",
		}},
		{name: "webhook secret as a flag, too short", env: valid, args: []string{"--webhook-secret", webhookSecret[:20]}, problems: []string{
			"--webhook-secret / WEBHOOK_SECRET: must be at least 32 characters",
		}},
		{name: "unknown platform", env: valid, args: []string{"--platform", "lambda"}, problems: []string{"--platform: must be openwhisk or codeengine"}},
		{name: "reconcile switches are checked", env: with(valid, "PRUNE", "sometimes", "CONCURRENCY", "17"), problems: []string{
			"--prune / PRUNE: must be true or false",
			"--concurrency / CONCURRENCY: must be between 1 and --max-concurrency (16; --max-concurrency itself is at most 64)",
		}},
		{name: "a key pasted into the source and the backups", env: with(valid, "SOURCE_INSTANCE_CRN", apiKey, "BACKUP_INSTANCE_CRNS", webhookSecret), problems: []string{
			"--source / SOURCE_INSTANCE_CRN: invalid CRN: it is neither a Certificate Manager (cloudcerts) nor a Secrets Manager (secrets-manager) instance CRN",
			"--backups / BACKUP_INSTANCE_CRNS: item 1: invalid CRN: it is neither a Certificate Manager (cloudcerts) nor a Secrets Manager (secrets-manager) instance CRN",
		}},
		{name: "environment-only parameters are named by their variable", env: with(valid, "MAX_REQUESTS_PER_SECOND", "0", "SOURCE_PUBLIC_KEY", "x"), problems: []string{
			"SOURCE_PUBLIC_KEY: must be one PEM RSA public key (-----BEGIN PUBLIC KEY-----): public key is not PEM encoded",
			"MAX_REQUESTS_PER_SECOND: must be between 1 and 1000",
		}},
		{name: "cron with four fields", env: valid, args: []string{"--cron", "0 * * *"}, problems: []string{
			`--cron "0 * * *": must have 5 fields (minute hour day-of-month month day-of-week), has 4`,
		}},
		{name: "empty cron", env: valid, args: []string{"--cron", ""}, problems: []string{
			`--cron "": must have 5 fields (minute hour day-of-month month day-of-week), has 0`,
		}},
		{name: "cron out of range in three fields, and the configuration too", env: with(valid, "APIKEY", ""), args: []string{"--cron", "0 24 0 * 7"}, problems: []string{
			"--apikey / APIKEY: is required (an IBM Cloud API key with Writer on the source and Manager on the backups)",
			`--cron "0 24 0 * 7": field 2 (hour) has 24, out of its range 0-23`,
			`--cron "0 24 0 * 7": field 3 (day-of-month) has 0, out of its range 1-31`,
			`--cron "0 24 0 * 7": field 5 (day-of-week) has 7, out of its range 0-6 (0 is Sunday)`,
		}},
		{name: "cron shown as given, controls as spaces", env: valid, args: []string{"--cron", "0 * * * MON\t'x'"}, problems: []string{
			`--cron "0 * * * MON 'x'": must have 5 fields (minute hour day-of-month month day-of-week), has 6`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"check-config"}, tt.args...), &stdout, &stderr, getenv(tt.env))
			out := stdout.String() + stderr.String()
			assertNoSecret(t, out)
			if len(tt.problems) == 0 {
				assert.Equal(t, ExitOK, code, out)
				assert.Equal(t, "configuration valid\n", stdout.String())
				assert.Empty(t, stderr.String())
			} else {
				assert.Equal(t, ExitUsage, code)
				assert.Empty(t, stdout.String())
				var lines []string
				for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
					if strings.HasPrefix(l, "warning: ") {
						continue
					}
					require.True(t, strings.HasPrefix(l, "check-config: "), l)
					lines = append(lines, strings.TrimPrefix(l, "check-config: "))
				}
				require.Len(t, lines, len(tt.problems), stderr.String())
				for i, p := range tt.problems {
					assert.True(t, strings.HasPrefix(lines[i], p), "line %d: %q, want %q", i, lines[i], p)
				}
			}
			assert.Zero(t, calls.Load(), "check-config calls nothing")
		})
	}
}

// TestCheckConfigWarnsOfSecretFlags: a secret given as a flag is accepted, with a
// warning that does not repeat it.
func TestCheckConfigWarnsOfSecretFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"check-config", "--apikey", apiKey, "--webhook-secret", webhookSecret, "--ownership-key", ownershipKey,
		"--source", srcCRN, "--backups", bkCRN}, &stdout, &stderr, getenv(nil))
	assert.Equal(t, ExitOK, code, stderr.String())
	assert.Equal(t, "configuration valid\n", stdout.String())
	for _, w := range []string{"--apikey", "--webhook-secret", "--ownership-key"} {
		assert.Contains(t, stderr.String(), "warning: "+w+" puts a secret in the shell history")
	}
	assertNoSecret(t, stdout.String()+stderr.String())
}

func TestCronProblems(t *testing.T) {
	tests := []struct {
		expr string
		want string // "" = valid; else a substring of the one problem
	}{
		{expr: "0 * * * *"},
		{expr: "  0   *  * *   *  "},
		{expr: "59 23 31 12 6"},
		{expr: "0 0 1 1 0"},
		{expr: "*/1 */24 */31 */12 */7"},
		{expr: "0,15,30,45 8-18 1-7,15-21 1,6-8 0-6/2"},
		{expr: "60 * * * *", want: "field 1 (minute) has 60, out of its range 0-59"},
		{expr: "* * 32 * *", want: "field 3 (day-of-month) has 32, out of its range 1-31"},
		{expr: "* * * 0 *", want: "field 4 (month) has 0, out of its range 1-12"},
		{expr: "5/10 * * * *", want: "field 1 (minute) has the step 5/10; a step follows * or a range"},
		{expr: "*/0 * * * *", want: "field 1 (minute) has the step /0; a step is a number from 1 to 60"},
		{expr: "*/61 * * * *", want: "has the step /61"},
		{expr: "*/x * * * *", want: "has the step /x"},
		{expr: "30-10 * * * *", want: "has the range 30-10, which ends before it starts"},
		{expr: "1,,2 * * * *", want: "has an empty item in its list"},
		{expr: "-1 * * * *", want: `has ""; its values are numbers`},
		{expr: "+1 * * * *", want: `has "+1"`},
		{expr: "* * * JAN *", want: `field 4 (month) has "JAN"`},
		{expr: "* * * * MON", want: `field 5 (day-of-week) has "MON"; its values are numbers from 0 to 6 (0 is Sunday)`},
		{expr: "? * * * *", want: `has "?"`},
		{expr: "99999999999999999999 * * * *", want: `has "99999999999999999999"`},
		{expr: "0 * * * * *", want: "must have 5 fields"},
		{expr: "@hourly", want: "must have 5 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got := cronProblems(tt.expr)
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Contains(t, got[0], tt.want)
			assert.True(t, strings.HasPrefix(got[0], `--cron "`+tt.expr+`": `), got[0])
		})
	}
}
