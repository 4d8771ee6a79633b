package secretsmanager_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

const (
	instCRN  = "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct1:2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b::"
	instUp   = "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct1:2F0C3A4B-5D6E-4F70-8A9B-0C1D2E3F4A5B::"
	secCRN   = "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct1:2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b:secret:11111111-2222-4333-8444-555555555555"
	otherCRN = "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct1:99999999-5d6e-4f70-8a9b-0c1d2e3f4a5b::"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  secretsmanager.Config
		msg  string
	}{
		{"no key", secretsmanager.Config{}, "API key is required"},
		{"IAM over http", secretsmanager.Config{APIKey: "k", IAMURL: "http://iam.example.com"}, "IAM URL"},
		{"endpoint over http", secretsmanager.Config{APIKey: "k", Endpoints: map[string]string{instCRN: "http://sm.example.com"}}, "endpoint"},
		{"endpoint with credentials", secretsmanager.Config{APIKey: "k", Endpoints: map[string]string{"eu-de": "https://u:p@sm.example.com"}}, "endpoint"},
		{"negative rate", secretsmanager.Config{APIKey: "k", RequestsPerSecond: -1}, "RequestsPerSecond"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := secretsmanager.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.NotContains(t, err.Error(), "u:p")
		})
	}
	c, err := secretsmanager.New(secretsmanager.Config{APIKey: "k", Endpoints: map[string]string{instCRN: "http://127.0.0.1:1"}})
	require.NoError(t, err)
	assert.Equal(t, "default", c.SecretGroup())
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name      string
		private   bool
		endpoints map[string]string
		crn       string
		want      string
	}{
		{"public", false, nil, instCRN, "https://2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b.eu-de.secrets-manager.appdomain.cloud"},
		{"private", true, nil, instCRN, "https://2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b.private.eu-de.secrets-manager.appdomain.cloud"},
		{"from a secret CRN", false, nil, secCRN, "https://2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b.eu-de.secrets-manager.appdomain.cloud"},
		{"instance override, other case", false, map[string]string{instUp: "https://sm.example.com/"}, instCRN, "https://sm.example.com"},
		{"region override", true, map[string]string{"eu-de": "https://eu.example.com"}, instCRN, "https://eu.example.com"},
		{"instance wins over region", false, map[string]string{"eu-de": "https://eu.example.com", instCRN: "http://127.0.0.1:8080/x"}, instCRN, "http://127.0.0.1:8080/x"},
		{"another instance's override does not apply", false, map[string]string{otherCRN: "https://other.example.com"}, instCRN, "https://2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b.eu-de.secrets-manager.appdomain.cloud"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := secretsmanager.New(secretsmanager.Config{APIKey: "k", Private: tc.private, Endpoints: tc.endpoints})
			require.NoError(t, err)
			got, err := c.BaseURL(tc.crn)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	c, _ := secretsmanager.New(secretsmanager.Config{APIKey: "k"})
	_, err := c.BaseURL("crn:v1:bluemix:public:cloudcerts:eu-de:a/acct1:2f0c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b::")
	assert.Error(t, err, "a Certificate Manager CRN is not a Secrets Manager instance")
}

func TestUnknownAPIKey(t *testing.T) {
	f := setup(t)
	const key = "sm-test-key-unknown-0123456789abcdef"
	c := f.newClient(key, nil)
	_, err := secretsmanager.Instance{Client: c, CRN: f.bk}.List(ctxT(t))
	require.Error(t, err)
	assert.ErrorIs(t, err, engine.ErrForbidden)
	assert.ErrorIs(t, err, engine.ErrNotSent)
	assert.NotErrorIs(t, err, engine.ErrRetryable)
	assert.Contains(t, err.Error(), "IAM")
	assert.Empty(t, f.leaks(err.Error(), key))
	assert.Zero(t, f.sim.Count("", f.bk), "nothing reached the instance")
}

func TestWrongInstanceIDs(t *testing.T) {
	f := setup(t)
	src := f.seedImported(f.src, "in-source", testCA.MustIssue("w.example.com"))
	bk := f.backup()
	for name, id := range map[string]string{
		"a secret of another instance": src,
		"an instance CRN":              f.bk,
		"not a CRN":                    "11111111-2222-4333-8444-555555555555",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := bk.Metadata(ctxT(t), id)
			require.Error(t, err)
			assert.ErrorIs(t, err, engine.ErrNotSent)
			err = bk.Reimport(ctxT(t), id, engine.Material{Certificate: "x"})
			assert.ErrorIs(t, err, engine.ErrNotSent)
		})
	}
	assert.Zero(t, f.sim.Count("", f.bk))
}

func TestDeadline(t *testing.T) {
	f := setup(t)
	f.sim.SetLatency(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.backup().List(ctx)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, engine.IsRetryable(err))
}

// TestRetries: idempotent calls are retried by go-sdk-core after a 5xx or a dropped
// connection; creates never are, and a create that may have been carried out answers
// ErrAmbiguous.
func TestRetries(t *testing.T) {
	iss := testCA.MustIssue("retry.example.com")
	renewed := testCA.MustIssue("retry.example.com")
	mat := engine.Material{Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, Intermediate: iss.Intermediate}
	labels := engine.Labels{Name: "retry", Marker: engine.Marker{Source: rootCRN}}
	tests := []struct {
		name      string
		fault     smsim.Fault
		op        string
		call      func(f *fixture, copyID string) error
		ok        bool
		sends     int
		ambiguous bool
		created   bool // the simulator carried the create out
	}{
		{"metadata after 503 once", smsim.Fault{Status: 503, Times: 1}, smsim.OpGetMetadata,
			func(f *fixture, id string) error { _, err := f.backup().Metadata(ctxT(f.t), id); return err }, true, 2, false, false},
		{"list after a dropped connection", smsim.Fault{Drop: true, Times: 1}, smsim.OpListSecrets,
			func(f *fixture, _ string) error { _, err := f.backup().List(ctxT(f.t)); return err }, true, 2, false, false},
		{"import, 500 before it is done", smsim.Fault{Status: 500, Times: 1}, smsim.OpCreateSecret,
			func(f *fixture, _ string) error { _, err := f.backup().Import(ctxT(f.t), labels, mat); return err }, false, 1, true, false},
		{"import, 503 after it is done", smsim.Fault{Status: 503, AfterOp: true, Times: 1}, smsim.OpCreateSecret,
			func(f *fixture, _ string) error { _, err := f.backup().Import(ctxT(f.t), labels, mat); return err }, false, 1, true, true},
		{"import, answer lost", smsim.Fault{Drop: true, AfterOp: true, Times: 1}, smsim.OpCreateSecret,
			func(f *fixture, _ string) error { _, err := f.backup().Import(ctxT(f.t), labels, mat); return err }, false, 1, true, true},
		{"import after 429 once is resent", smsim.Fault{Status: 429, RetryAfter: "0", Times: 1}, smsim.OpCreateSecret,
			func(f *fixture, _ string) error { _, err := f.backup().Import(ctxT(f.t), labels, mat); return err }, true, 2, false, true},
		{"reimport, 502 after it is done", smsim.Fault{Status: 502, AfterOp: true, Times: 1}, smsim.OpCreateVersion,
			func(f *fixture, id string) error {
				err := f.backup().Reimport(ctxT(f.t), id, engine.Material{Certificate: renewed.CertPEM, PrivateKey: renewed.KeyPEM, Intermediate: renewed.Intermediate})
				return err
			}, false, 1, true, true},
		{"update after 503 once (idempotent)", smsim.Fault{Status: 503, Times: 1}, smsim.OpUpdateMetadata,
			func(f *fixture, id string) error {
				return f.backup().UpdateLabels(ctxT(f.t), id, engine.Labels{Name: "renamed"})
			}, true, 2, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			copyID := f.seedImported(f.bk, "existing", iss)
			before := len(mustList(t, f.sim, f.bk))
			tc.fault.Op, tc.fault.Instance = tc.op, f.bk
			f.sim.Inject(tc.fault)
			err := tc.call(f, copyID)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.ErrorIs(t, err, engine.ErrRetryable)
				assert.Empty(t, f.leaks(err.Error()))
			}
			assert.Equal(t, tc.sends, f.sim.Count(tc.op, f.bk), "requests sent")
			assert.Equal(t, tc.ambiguous, engine.IsAmbiguous(err), "ambiguous")
			assert.Equal(t, tc.ambiguous, errors.Is(err, engine.ErrAmbiguous))
			if tc.op == smsim.OpCreateSecret {
				want := before
				if tc.created {
					want++
				}
				assert.Len(t, mustList(t, f.sim, f.bk), want, "secrets in the backup")
			}
		})
	}
}

func mustList(t *testing.T, sim *smsim.Simulator, inst string) []smsim.Secret {
	t.Helper()
	l, err := sim.List(inst)
	require.NoError(t, err)
	return l
}

func TestRateLimited(t *testing.T) {
	t.Run("Retry-After is waited for, then the call succeeds", func(t *testing.T) {
		f := setup(t)
		f.sim.Inject(smsim.Fault{Op: smsim.OpListSecrets, Instance: f.bk, Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		_, err := f.backup().List(ctxT(t))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
		assert.Equal(t, 2, f.sim.Count(smsim.OpListSecrets, f.bk))
	})
	t.Run("a Retry-After beyond the deadline fails at once with the delay", func(t *testing.T) {
		f := setup(t)
		f.sim.Inject(smsim.Fault{Op: smsim.OpListSecrets, Instance: f.bk, Status: 429, RetryAfter: "30"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.backup().List(ctx)
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.ErrorIs(t, err, engine.ErrRateLimited)
		assert.ErrorIs(t, err, engine.ErrRetryable)
		assert.Equal(t, 30*time.Second, engine.RetryAfter(err))
		assert.Equal(t, 1, f.sim.Count(smsim.OpListSecrets, f.bk))
		assert.Contains(t, err.Error(), "429")
		assert.Equal(t, engine.ClassRetryable, engine.ClassOf(err))
	})
	t.Run("retries exhausted: rate limited with the delay", func(t *testing.T) {
		f := setup(t)
		f.sim.Inject(smsim.Fault{Op: smsim.OpGetMetadata, Instance: f.bk, Status: 429, RetryAfter: "0"})
		id := f.seedImported(f.bk, "rl", testCA.MustIssue("rl.example.com"))
		_, err := f.backup().Metadata(ctxT(t), id)
		assert.ErrorIs(t, err, engine.ErrRateLimited)
		assert.Equal(t, 4, f.sim.Count(smsim.OpGetMetadata, f.bk), "one try and three retries")
	})
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		status    int
		classes   []error
		notClass  []error
		class     string
		retryable bool
	}{
		{http.StatusNotFound, []error{engine.ErrNotFound}, []error{engine.ErrRetryable, engine.ErrForbidden}, engine.ClassPermanent, false},
		{http.StatusConflict, []error{engine.ErrConflict}, []error{engine.ErrRetryable}, engine.ClassPermanent, false},
		{http.StatusPreconditionFailed, []error{engine.ErrLocked}, []error{engine.ErrRetryable}, engine.ClassLocked, false},
		{http.StatusUnauthorized, []error{engine.ErrForbidden}, []error{engine.ErrRetryable}, engine.ClassPermanent, false},
		{http.StatusForbidden, []error{engine.ErrForbidden}, []error{engine.ErrRetryable}, engine.ClassPermanent, false},
		{http.StatusBadRequest, nil, []error{engine.ErrRetryable, engine.ErrNotFound}, engine.ClassPermanent, false},
		{http.StatusNotImplemented, nil, []error{engine.ErrRetryable}, engine.ClassPermanent, false},
		{http.StatusServiceUnavailable, []error{engine.ErrRetryable}, []error{engine.ErrAmbiguous}, engine.ClassRetryable, true},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := setup(t)
			id := f.seedImported(f.bk, "classes", testCA.MustIssue("classes.example.com"))
			f.sim.Inject(smsim.Fault{Op: smsim.OpGetMetadata, Instance: f.bk, Status: tc.status})
			_, err := f.backup().Metadata(ctxT(t), id)
			require.Error(t, err)
			for _, c := range tc.classes {
				assert.ErrorIs(t, err, c)
			}
			for _, c := range tc.notClass {
				assert.NotErrorIs(t, err, c)
			}
			assert.Equal(t, tc.class, engine.ClassOf(err))
			assert.Contains(t, err.Error(), "metadata "+id)
			var e *secretsmanager.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.retryable, e.Retryable)
		})
	}
}
