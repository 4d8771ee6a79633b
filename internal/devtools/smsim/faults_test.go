package smsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	sm "github.com/IBM/secrets-manager-go-sdk/v2/secretsmanagerv2"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaults(t *testing.T) {
	f := newFixture(t, Options{})
	other := f.sim.AddInstance("eu-de")
	f.sim.Grant(keyManager, other, Manager)
	otherBase, err := f.sim.InstanceURL(f.srv.URL(), other)
	require.NoError(t, err)
	f.token(keyManager) // before any IAM fault

	list := func(base string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+f.token(keyManager))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type") + "|" + resp.Header.Get("Retry-After") + "|" + string(b), nil
	}

	t.Run("status N times, per instance", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpListSecrets, Instance: f.inst, Status: 503, Times: 2})
		st, body, err := list(f.base)
		require.NoError(t, err)
		assert.Equal(t, 503, st)
		assert.True(t, strings.HasPrefix(body, "text/plain"), "a gateway's 5xx is not JSON: %s", body)
		st, _, _ = list(otherBase)
		assert.Equal(t, 200, st, "other instance untouched")
		st, _, _ = list(f.base)
		assert.Equal(t, 503, st)
		st, _, _ = list(f.base)
		assert.Equal(t, 200, st, "used up")
	})
	t.Run("429 with Retry-After and JSON body", func(t *testing.T) {
		id := f.sim.Inject(Fault{Op: OpListSecrets, Status: 429, RetryAfter: "3"})
		st, body, _ := list(f.base)
		assert.Equal(t, 429, st)
		assert.Contains(t, body, "application/json|3|")
		assert.Contains(t, body, `"status_code":429`)
		f.sim.RemoveFault(id)
		st, _, _ = list(f.base)
		assert.Equal(t, 200, st)
	})
	t.Run("drop", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpListSecrets, Drop: true, Times: 1})
		// A fresh connection: net/http would resend a GET dropped on a reused one.
		fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest(http.MethodGet, f.base+"/api/v2/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+f.token(keyManager))
		_, err := fresh.Do(req)
		assert.Error(t, err)
		reqs := f.sim.Requests()
		assert.Equal(t, 0, reqs[len(reqs)-1].Status)
	})
	t.Run("after the operation", func(t *testing.T) {
		writes := f.sim.Writes(f.inst)
		f.sim.Inject(Fault{Op: OpCreateSecret, Status: 500, AfterOp: true, Times: 1})
		r := f.postJSON(keyManager, "/api/v2/secrets", importBody("written-anyway", testCA.MustIssue("w.example.com")))
		assert.Equal(t, 500, r.status)
		_, err := f.sim.FindByName(f.inst, ImportedCert, "written-anyway")
		assert.NoError(t, err, "the write happened")
		assert.Equal(t, writes+1, f.sim.Writes(f.inst))
	})
	t.Run("delay", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpListSecrets, Delay: 50 * time.Millisecond, Times: 1})
		start := time.Now()
		st, _, _ := list(f.base)
		assert.Equal(t, 200, st)
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})
	t.Run("probability is reproducible", func(t *testing.T) {
		run := func() []int {
			f.sim.ClearFaults()
			f.sim.SetSeed(7)
			f.sim.Inject(Fault{Op: OpListSecrets, Status: 502, Probability: 0.5})
			var out []int
			for range 12 {
				st, _, _ := list(f.base)
				out = append(out, st)
			}
			return out
		}
		a, b := run(), run()
		assert.Equal(t, a, b)
		assert.Contains(t, a, 502)
		assert.Contains(t, a, 200)
		f.sim.ClearFaults()
	})
	t.Run("IAM", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpIAMToken, Status: 400, Times: 1})
		resp, err := http.Post(f.srv.IAMURL()+"/identity/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type="+simiam.APIKeyGrant+"&apikey="+keyManager))
		require.NoError(t, err)
		var b map[string]any
		_ = decodeJSON(resp, &b)
		assert.Equal(t, 400, resp.StatusCode)
		assert.Contains(t, b, "errorCode")
	})
	t.Run("latency", func(t *testing.T) {
		f.sim.SetLatency(30 * time.Millisecond)
		defer f.sim.SetLatency(0)
		start := time.Now()
		st, _, _ := list(f.base)
		assert.Equal(t, 200, st)
		assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	})
}

func TestRequestLogAndRate(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.seed("logged", testCA.MustIssue("a.example.com"))
	f.sim.ResetLog()
	f.get(keyReader, "/api/v2/secrets?limit=5")
	f.get(keySecretsReader, "/api/v2/secrets/"+id)
	f.get(keyReader, "/api/v2/secrets/"+id)
	f.call(keyManager, http.MethodDelete, "/api/v2/secrets/"+id, "", nil)

	var got []Request
	for _, r := range f.sim.Requests() {
		if r.Op != OpIAMToken {
			got = append(got, r)
		}
	}
	require.Len(t, got, 4)
	assert.Equal(t, Request{Method: "GET", EscapedPath: "/us-south/" + f.sim.instances[f.inst].crn.GUID + "/api/v2/secrets",
		Query: "limit=5", Op: OpListSecrets, Instance: f.inst, Status: 200, Time: got[0].Time}, got[0])
	assert.Equal(t, OpGetSecret, got[1].Op)
	assert.Equal(t, id, got[1].SecretID)
	assert.Equal(t, 403, got[2].Status)
	assert.Equal(t, 204, got[3].Status)
	assert.Equal(t, 1, f.sim.Count(OpDeleteSecret, f.inst))
	assert.Equal(t, 1, f.sim.Writes(f.inst))
	assert.Equal(t, 3, f.sim.Count(OpIAMToken, ""))
	assert.Len(t, f.sim.Arrivals(f.inst), 4, "IAM is not an instance request")
	assert.Equal(t, 4, f.sim.PeakRate(f.inst, time.Minute))
	assert.Equal(t, 1, f.sim.PeakRate(f.inst, time.Nanosecond))

	f.sim.ResetLog()
	assert.Empty(t, f.sim.Requests())
	assert.Empty(t, f.sim.Arrivals(f.inst))
}

func TestPeakRateWindows(t *testing.T) {
	s := New(Options{})
	inst := s.AddInstance("eu-gb")
	t0 := time.Now()
	for _, ms := range []int{0, 100, 200, 900, 1000, 1100, 2500} {
		s.arrivals[inst] = append(s.arrivals[inst], t0.Add(time.Duration(ms)*time.Millisecond))
	}
	assert.Equal(t, 4, s.PeakRate(inst, time.Second), "0,100,200,900 (1000 is outside [0,1000))")
	assert.Equal(t, 7, s.PeakRate(inst, 3*time.Second))
	assert.Equal(t, 0, s.PeakRate("crn:none", time.Second))
}

func TestRateLimitOption(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 3})
	f.token(keyReader)
	var statuses []int
	for range 5 {
		r := f.get(keyReader, "/api/v2/secrets")
		statuses = append(statuses, r.status)
		if r.status == 429 {
			assert.Equal(t, "1", r.header.Get("Retry-After"))
		}
	}
	assert.Equal(t, []int{200, 200, 200, 429, 429}, statuses)
}

// TestSDKRetriesInjectedFaults shows that IBM's client, with retries on, gets through a
// 503 and a 429 and that the log shows every attempt.
func TestSDKRetriesInjectedFaults(t *testing.T) {
	f := newFixture(t, Options{})
	c := f.sdkClient(keyReader)
	c.EnableRetries(3, 50*time.Millisecond)
	f.sim.Inject(Fault{Op: OpListSecrets, Status: 503, Times: 1})
	f.sim.Inject(Fault{Op: OpListSecrets, Status: 429, RetryAfter: "0", Times: 1})
	list, resp, err := c.ListSecretsWithContext(context.Background(), &sm.ListSecretsOptions{})
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.EqualValues(t, 0, *list.TotalCount)
	assert.Equal(t, 3, f.sim.Count(OpListSecrets, f.inst))

	f.sim.Inject(Fault{Op: OpListSecrets, Status: 503})
	_, resp, err = c.ListSecretsWithContext(context.Background(), &sm.ListSecretsOptions{})
	require.Error(t, err)
	assert.Equal(t, 503, status(resp))
	var problem *core.SDKProblem
	assert.True(t, errors.As(err, &problem))
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, Options{})
	c := f.sdkClient(keyManager)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			iss := testCA.MustIssue(fmt.Sprintf("c%d.example.com", i))
			s, _, err := c.CreateSecret(&sm.CreateSecretOptions{SecretPrototype: &sm.ImportedCertificatePrototype{
				SecretType: core.StringPtr("imported_cert"), Name: core.StringPtr(fmt.Sprintf("c%d", i)),
				Certificate: core.StringPtr(iss.CertPEM), PrivateKey: core.StringPtr(iss.KeyPEM),
			}})
			if err != nil {
				errs <- err
				return
			}
			id := s.(*sm.ImportedCertificate).ID
			if _, _, err := c.GetSecret(&sm.GetSecretOptions{ID: id}); err != nil {
				errs <- err
			}
			if _, _, err := c.ListSecrets(&sm.ListSecretsOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := f.sim.List(f.inst)
	require.NoError(t, err)
	assert.Len(t, all, 8)
	assert.Equal(t, 24, len(f.sim.Arrivals(f.inst)))
}
