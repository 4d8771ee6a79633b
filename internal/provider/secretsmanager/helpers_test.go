package secretsmanager_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

// testCA is shared: making a CA per test would only cost time.
var testCA = testpki.MustNewCA("Secrets Manager Provider Test")

// API keys of the fixture: Manager on both instances, and one per role on the backup.
const (
	keyManager       = "sm-test-key-manager-0123456789abcdef"
	keyReader        = "sm-test-key-reader-0123456789abcdef"
	keySecretsReader = "sm-test-key-secretsreader-0123456789"
	keyWriter        = "sm-test-key-writer-0123456789abcdef"
	keyNone          = "sm-test-key-no-role-0123456789abcdef"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a served simulator with a source and a backup instance.
type fixture struct {
	t      *testing.T
	srv    *smsim.Server
	sim    *smsim.Simulator
	src    string // source instance CRN (us-south)
	bk     string // backup instance CRN (eu-de)
	logs   *syncBuffer
	client *secretsmanager.Client // Manager, fast rate limit
}

func setup(t *testing.T) *fixture {
	t.Helper()
	srv, err := smsim.Start(smsim.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, srv: srv, sim: srv.Simulator, logs: &syncBuffer{}}
	f.src = f.sim.AddInstance("us-south")
	f.bk = f.sim.AddInstance("eu-de")
	f.sim.Grant(keyManager, f.src, smsim.Manager)
	f.sim.Grant(keyManager, f.bk, smsim.Manager)
	f.sim.Grant(keyReader, f.bk, smsim.Reader)
	f.sim.Grant(keySecretsReader, f.bk, smsim.SecretsReader)
	f.sim.Grant(keyWriter, f.bk, smsim.Writer)
	f.sim.AddAPIKey(keyNone)
	f.client = f.newClient(keyManager, nil)
	return f
}

// newClient is a client for key against the simulator, with short retry waits and a
// rate limit high enough not to slow tests down (tests of the limit set their own).
func (f *fixture) newClient(key string, mod func(*secretsmanager.Config)) *secretsmanager.Client {
	f.t.Helper()
	cfg := secretsmanager.Config{
		APIKey:            key,
		IAMURL:            f.srv.IAMURL(),
		Endpoints:         f.srv.Endpoints(),
		Logger:            slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinRetryInterval:  5 * time.Millisecond,
		MaxRetryInterval:  50 * time.Millisecond,
		RequestsPerSecond: 1000,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := secretsmanager.New(cfg)
	require.NoError(f.t, err)
	return c
}

func (f *fixture) source() secretsmanager.Instance {
	return secretsmanager.Instance{Client: f.client, CRN: f.src}
}

func (f *fixture) backup() secretsmanager.Instance {
	return secretsmanager.Instance{Client: f.client, CRN: f.bk}
}

// seed stores an imported certificate through the simulator's Go API and returns the
// secret's CRN.
func (f *fixture) seed(inst string, s smsim.Seed) string {
	f.t.Helper()
	id, err := f.sim.Seed(inst, s)
	require.NoError(f.t, err)
	return f.crnOf(inst, id)
}

func (f *fixture) seedImported(inst, name string, iss *testpki.Issued) string {
	f.t.Helper()
	return f.seed(inst, smsim.Seed{Name: name, Certificate: iss.CertPEM, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM})
}

func (f *fixture) crnOf(inst, id string) string {
	f.t.Helper()
	s, err := f.sim.Get(inst, id)
	require.NoError(f.t, err)
	return s.CRN
}

// get reads a secret by its CRN through the simulator's Go API.
func (f *fixture) get(inst, secretCRN string) smsim.Secret {
	f.t.Helper()
	s, err := f.sim.Get(inst, idOf(secretCRN))
	require.NoError(f.t, err)
	return s
}

func idOf(secretCRN string) string { return secretCRN[strings.LastIndex(secretCRN, ":")+1:] }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The two name rules the simulator applies (docs/services/secrets-manager.md §6).
var (
	apiNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_]*(?:_*-*\.*[A-Za-z0-9]*)*[A-Za-z0-9]+$`)
	docNameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// leaks lists what must never appear in an error or a log line.
func (f *fixture) leaks(text string, extra ...string) []string {
	var found []string
	for _, bad := range append([]string{"BEGIN", "PRIVATE KEY", simiam.TokenPrefix, keyManager, keyReader, keySecretsReader, keyWriter, keyNone, "Bearer"}, extra...) {
		if bad != "" && strings.Contains(text, bad) {
			found = append(found, bad)
		}
	}
	return found
}
