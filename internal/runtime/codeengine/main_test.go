package codeengine

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunArgumentsAndPort(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name     string
		args     []string
		getenv   func(string) string
		code     int
		stdout   string
		stderr   string
		logsPORT bool
	}{
		{name: "help", args: []string{"--help"}, getenv: noEnv, code: ExitOK, stdout: "usage: exec serve"},
		{name: "unknown argument", args: []string{"--port", "9"}, getenv: noEnv, code: ExitUsage, stderr: "usage: exec serve"},
		{name: "PORT not a number", getenv: func(k string) string { return map[string]string{"PORT": "http"}[k] }, code: ExitUsage, logsPORT: true},
		{name: "PORT out of range", getenv: func(k string) string { return map[string]string{"PORT": "70000"}[k] }, code: ExitUsage, logsPORT: true},
		{name: "PORT zero", getenv: func(k string) string { return map[string]string{"PORT": "0"}[k] }, code: ExitUsage, logsPORT: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := run(context.Background(), tt.args, tt.getenv, &stdout, &stderr, nil)
			assert.Equal(t, tt.code, code)
			if tt.stdout != "" {
				assert.Contains(t, stdout.String(), tt.stdout)
			}
			if tt.stderr != "" {
				assert.Contains(t, stderr.String(), tt.stderr)
			}
			if tt.logsPORT {
				lines := stdout.lines(t, "cannot listen")
				require.Len(t, lines, 1)
				assert.Equal(t, "PORT", lines[0]["variable"])
			}
		})
	}
	assert.Equal(t, ":8080", must(listenAddr("")))
	assert.Equal(t, ":9090", must(listenAddr("9090")))
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// runInProcess runs serve with getenv on 127.0.0.1:0 until stop is called, which
// returns the exit code.
func runInProcess(t *testing.T, getenv func(string) string) (url string, logs *syncBuffer, stop func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- run(ctx, nil, getenv, logs, logs, ln) }()
	var once bool
	stop = func() int {
		if once {
			return -1
		}
		once = true
		cancel()
		select {
		case c := <-code:
			return c
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), logs, stop
}

func TestRunValidConfiguration(t *testing.T) {
	w := newWorld(t, nil)
	cert := w.sim.Seed(w.src, "web", "", w.sim.CA().MustIssue("www.example.com"))
	url, logs, stop := runInProcess(t, w.getenv(nil))
	assert.Equal(t, 200, do(t, "GET", url+"/healthz", nil, nil).status)
	tok := w.token("cert_issued", cert)
	a := do(t, "POST", url+"/notify", notifyBody(tok), nil)
	assert.Equal(t, 200, a.status, "%v", a.body)
	assert.Equal(t, "replicate", a.body["action"])
	assert.Equal(t, 1, w.sim.Count(cmsim.OpImport, w.bk))
	assert.Len(t, w.sim.Snapshot(w.bk), 1)
	a = do(t, "POST", url+"/notify", strings.NewReader(`{"data":"x.y.z"}`), nil)
	assert.Equal(t, 400, a.status, "a refusal of the app passes through: %v", a.body)
	a = do(t, "POST", url+"/events", strings.NewReader(`{}`), map[string]string{"Authorization": "Bearer wrong-secret-wrong-secret-wrong-secret"})
	assert.Equal(t, 401, a.status, "%v", a.body)
	assert.Equal(t, ExitOK, stop())
	assert.Empty(t, secretsIn(logs.String(), tok))
	assert.Len(t, logs.lines(t, "request"), 4)
}

func TestRunInvalidConfigurationKeepsServing(t *testing.T) {
	w := newWorld(t, nil)
	tests := []struct {
		name    string
		changes map[string]string
		params  []string // the parameters the logs name
	}{
		{name: "no API key", changes: map[string]string{"APIKEY": ""}, params: []string{"apikey"}},
		{name: "two problems", changes: map[string]string{"SOURCE_INSTANCE_CRN": "", "BACKUP_INSTANCE_CRNS": "not-a-crn-" + testAPIKey}, params: []string{"source_instance_crn", "backup_instance_crns"}},
		{name: "short webhook secret", changes: map[string]string{"WEBHOOK_SECRET": "short-" + testAPIKey[:8]}, params: []string{"webhook_secret"}},
		{name: "unusable public key (found by app.New)", changes: map[string]string{"SOURCE_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, params: []string{"source_public_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, logs, stop := runInProcess(t, w.getenv(tt.changes))
			a := do(t, "GET", url+"/healthz", nil, nil)
			assert.Equal(t, 503, a.status)
			assert.Equal(t, "misconfigured", a.body["status"])
			a = do(t, "POST", url+"/notify", notifyBody("x.y.z"), nil)
			assert.Equal(t, 500, a.status)
			assert.Equal(t, "configuration", a.body["error"])
			a = do(t, "POST", url+"/events", strings.NewReader("{}"), map[string]string{"Authorization": "Bearer " + testWebhookSecret})
			assert.Equal(t, 500, a.status)
			assert.Equal(t, ExitOK, stop())

			var named []string
			for _, l := range logs.lines(t, "invalid configuration") {
				named = append(named, l["parameter"].(string))
				assert.NotEmpty(t, l["problem"])
				assert.NotEmpty(t, l["variables"])
			}
			assert.ElementsMatch(t, tt.params, named)
			assert.Empty(t, secretsIn(logs.String(), tt.changes["BACKUP_INSTANCE_CRNS"], tt.changes["WEBHOOK_SECRET"]), "no value in any line")
			assert.Zero(t, w.sim.Count("", ""), "nothing was called")
		})
	}
	// The variables are named as the operator sets them.
	_, logs, stop := runInProcess(t, w.getenv(map[string]string{"APIKEY": ""}))
	stop()
	assert.Equal(t, "APIKEY or CM_APIKEY", logs.lines(t, "invalid configuration")[0]["variables"])
}
