package cmsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaults(t *testing.T) {
	f := newFixture(t, Options{}, "us-south")
	inst := f.inst["us-south"]
	other := f.sim.AddInstance("us-south")
	f.sim.Grant(managerKey, other, Manager)
	tok := f.token(managerKey)
	list := f.api("us-south", "/api/v3/{}/certificates", inst)
	listOther := f.api("us-south", "/api/v3/{}/certificates", other)

	t.Run("429 with Retry-After for N calls, then success", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpList, Instance: inst, Status: 429, RetryAfter: "3", Times: 2})
		for range 2 {
			res := call(t, http.MethodGet, list, tok, nil)
			assert.Equal(t, 429, res.status)
			assert.Equal(t, "3", res.header.Get("Retry-After"))
			assert.Equal(t, codeRateLimited, res.errorCode(t))
		}
		assert.Equal(t, 200, call(t, http.MethodGet, list, tok, nil).status)
	})

	t.Run("instance filter", func(t *testing.T) {
		id := f.sim.Inject(Fault{Op: OpList, Instance: inst, Status: 500})
		defer f.sim.RemoveFault(id)
		assert.Equal(t, 500, call(t, http.MethodGet, list, tok, nil).status)
		assert.Equal(t, 200, call(t, http.MethodGet, listOther, tok, nil).status)
	})

	t.Run("503 has a plain-text body", func(t *testing.T) {
		f.sim.Inject(Fault{Status: 503, Times: 1})
		res := call(t, http.MethodGet, list, tok, nil)
		assert.Equal(t, 503, res.status)
		assert.True(t, strings.HasPrefix(res.header.Get("Content-Type"), "text/plain"))
	})

	t.Run("faults come before authentication", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpList, Status: 503, Times: 1})
		assert.Equal(t, 503, call(t, http.MethodGet, list, "", nil).status)
	})

	t.Run("drop closes the connection", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.Inject(Fault{Op: OpList, Drop: true, Times: 1})
		// A fresh connection: net/http retries some requests on reused connections.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest(http.MethodGet, list, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		reqs := f.sim.Requests()
		require.Len(t, reqs, 1)
		assert.Equal(t, 0, reqs[0].Status)
		assert.Equal(t, OpList, reqs[0].Op)
	})

	t.Run("delay", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpList, Delay: 150 * time.Millisecond, Times: 1})
		start := time.Now()
		assert.Equal(t, 200, call(t, http.MethodGet, list, tok, nil).status)
		assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	})

	t.Run("a delayed write is carried out even when the client gave up", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.Inject(Fault{Op: OpImport, Delay: 5 * time.Second, Times: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		body := strings.NewReader(fmt.Sprintf(`{"name":"late","data":{"content":%q}}`, issue(t, "late.example.com").CertPEM))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.api("us-south", "/api/v3/{}/certificates/import", inst), body)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		assert.Eventually(t, func() bool { return f.sim.Writes(inst) == 1 }, 2*time.Second, 10*time.Millisecond)
	})

	t.Run("AfterOp: the import happens, the client sees 503", func(t *testing.T) {
		f.sim.ResetLog()
		before := len(f.sim.Snapshot(inst))
		f.sim.Inject(Fault{Op: OpImport, Status: 503, AfterOp: true, Times: 1})
		res := call(t, http.MethodPost, f.api("us-south", "/api/v3/{}/certificates/import", inst), tok, importBody("dup", "", issue(t, "dup.example.com")))
		assert.Equal(t, 503, res.status)
		assert.Len(t, f.sim.Snapshot(inst), before+1)
		assert.Equal(t, 1, f.sim.Writes(inst))
		assert.Equal(t, 503, f.sim.Requests()[0].Status)
	})

	t.Run("probability is reproducible with a seed", func(t *testing.T) {
		pattern := func() string {
			f.sim.ClearFaults()
			f.sim.SetSeed(42)
			f.sim.Inject(Fault{Op: OpList, Status: 500, Probability: 0.5})
			var b strings.Builder
			for range 40 {
				if call(t, http.MethodGet, list, tok, nil).status == 500 {
					b.WriteByte('x')
				} else {
					b.WriteByte('.')
				}
			}
			return b.String()
		}
		first := pattern()
		assert.Equal(t, first, pattern())
		n := strings.Count(first, "x")
		assert.True(t, n > 5 && n < 35, "about half fail: %s", first)
		f.sim.ClearFaults()
		assert.Equal(t, 200, call(t, http.MethodGet, list, tok, nil).status)
	})

	t.Run("IAM faults use the IAM error shape for 4xx", func(t *testing.T) {
		f.sim.Inject(Fault{Op: OpIAMToken, Status: 400, Times: 1})
		res := call(t, http.MethodPost, f.srv.URL+"/identity/token", "", "grant_type=x", "application/x-www-form-urlencoded")
		assert.Equal(t, 400, res.status)
		var body map[string]any
		res.json(t, &body)
		assert.Contains(t, body, "errorCode")
		assert.Contains(t, body, "errorMessage")
	})

	t.Run("latency", func(t *testing.T) {
		f.sim.SetLatency(100 * time.Millisecond)
		defer f.sim.SetLatency(0)
		start := time.Now()
		assert.Equal(t, 200, call(t, http.MethodGet, list, tok, nil).status)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	})
}

func TestCounters(t *testing.T) {
	f := newFixture(t, Options{}, "us-south", "eu-de")
	us, eu := f.inst["us-south"], f.inst["eu-de"]
	tok := f.token(managerKey)
	f.sim.ResetLog()

	iss := issue(t, "c.example.com")
	res := call(t, http.MethodPost, f.api("us-south", "/api/v3/{}/certificates/import", us), tok, importBody("c", "", iss))
	require.Equal(t, 200, res.status)
	var m Metadata
	res.json(t, &m)
	call(t, http.MethodGet, f.api("us-south", "/api/v2/certificate/{}", m.ID), tok, nil)
	call(t, http.MethodPost, f.api("us-south", "/api/v3/{}/certificates/import", us), tok, importBody("", "", iss)) // 400
	call(t, http.MethodGet, f.api("eu-de", "/api/v3/{}/certificates", eu), tok, nil)
	call(t, http.MethodDelete, f.api("us-south", "/api/v2/certificate/{}", m.ID), tok, nil)

	// The Go API is the test's own hand: not logged.
	f.sim.Seed(us, "seeded", "", iss)
	_, _ = f.sim.Order(eu, "o", "o.example.com")

	assert.Equal(t, 5, f.sim.Count("", ""))
	assert.Equal(t, 2, f.sim.Count(OpImport, us))
	assert.Equal(t, 0, f.sim.Count(OpImport, eu))
	assert.Equal(t, 1, f.sim.Count(OpDownload, ""))
	assert.Equal(t, 1, f.sim.Count(OpList, eu))
	assert.Equal(t, 2, f.sim.Writes(us), "the successful import and the delete")
	assert.Equal(t, 0, f.sim.Writes(eu))
	assert.Equal(t, 2, f.sim.Writes(""))

	reqs := f.sim.Requests()
	require.Len(t, reqs, 5)
	assert.Equal(t, Request{Method: "GET", EscapedPath: "/us-south/api/v2/certificate/" + escapeUpper(m.ID), Op: OpDownload,
		Instance: us, Cert: m.ID, Status: 200, Time: reqs[1].Time}, reqs[1])
	assert.Equal(t, 400, reqs[2].Status)

	f.sim.ResetLog()
	assert.Zero(t, f.sim.Count("", ""))
	assert.Empty(t, f.sim.Requests())
}

// TestGoSDKCore drives the simulator with the client library the project uses, to catch
// a simulator that go-sdk-core could not talk to (and the client bugs it must catch).
func TestGoSDKCore(t *testing.T) {
	f := newFixture(t, Options{Now: time.Now}) // go-sdk-core compares expiration with the real clock
	inst := f.inst["us-south"]
	auth := &core.IamAuthenticator{ApiKey: managerKey, URL: f.sim.IAMURL(f.srv.URL)}
	svc, err := core.NewBaseService(&core.ServiceOptions{URL: f.sim.RegionURL(f.srv.URL, "us-south"), Authenticator: auth})
	require.NoError(t, err)

	send := func(method, path string, params map[string]string, body any, contentType string) (*core.DetailedResponse, error) {
		rb := core.NewRequestBuilder(method)
		_, err := rb.ResolveRequestURL(svc.GetServiceURL(), path, params)
		require.NoError(t, err)
		rb.AddHeader("Accept", "application/json")
		if contentType != "" {
			rb.AddHeader("Content-Type", contentType)
		}
		if body != nil {
			_, err = rb.SetBodyContentJSON(body)
			require.NoError(t, err)
		}
		req, err := rb.Build()
		require.NoError(t, err)
		var out map[string]any
		return svc.Request(req, &out)
	}

	// ResolveRequestURL leaves ':' raw and escapes '/' as %2F.
	resp, err := send("GET", "/api/v3/{instance}/certificates", map[string]string{"instance": inst}, nil, "")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)

	imp := importBody("sdk", "", issue(t, "sdk.example.com"))
	resp, err = send("POST", "/api/v3/{instance}/certificates/import", map[string]string{"instance": inst}, imp, "")
	require.Error(t, err, "SetBodyContentJSON sets no Content-Type: the simulator refuses, as a strict server would")
	assert.Equal(t, 415, resp.StatusCode)

	resp, err = send("POST", "/api/v3/{instance}/certificates/import", map[string]string{"instance": inst}, imp, "application/json")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	id := resp.Result.(map[string]any)["_id"].(string)

	resp, err = send("GET", "/api/v2/certificate/{cert}", map[string]string{"cert": id}, nil, "")
	require.NoError(t, err)
	assert.Equal(t, id, resp.Result.(map[string]any)["_id"])
	assert.Equal(t, 1, f.sim.Count(OpIAMToken, ""), "expiration lets go-sdk-core cache the token")

	t.Run("retries on 429 with Retry-After", func(t *testing.T) {
		svc.EnableRetries(3, time.Second)
		defer svc.DisableRetries()
		f.sim.ResetLog()
		f.sim.Inject(Fault{Op: OpList, Status: 429, RetryAfter: "0", Times: 2})
		resp, err := send("GET", "/api/v3/{instance}/certificates", map[string]string{"instance": inst}, nil, "")
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, 3, f.sim.Count(OpList, inst))
	})

	t.Run("unknown API key", func(t *testing.T) {
		bad := &core.IamAuthenticator{ApiKey: "unknown-key", URL: f.sim.IAMURL(f.srv.URL)}
		_, err := bad.RequestToken()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Provided API key could not be found.")
		assert.NotContains(t, err.Error(), "unknown-key")
	})
}

func TestGoAPI(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	iss := issue(t, "g.example.com")
	id := f.sim.Seed(inst, "g", "desc", iss)

	got, ok := f.sim.Get(id)
	require.True(t, ok)
	assert.Equal(t, 1, got.Versions)
	assert.Equal(t, iss.KeyPEM, got.Data.PrivKey)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.NotContains(t, fmt.Sprintf(format, got), "PRIVATE KEY", format)
		assert.NotContains(t, fmt.Sprintf(format, got.Data), "PRIVATE KEY", format)
	}

	assert.ErrorIs(t, f.sim.Reimport(id, issue(t, "other.example.com").CertPEM, "", ""), ErrRejected)
	assert.ErrorIs(t, f.sim.Reimport(certOf(inst, zeroID), iss.CertPEM, "", ""), ErrNotFound)
	assert.ErrorIs(t, f.sim.Renew(id), ErrRejected, "imported certificates are not renewed")
	_, err := f.sim.Order("crn:v1:bluemix:public:cloudcerts:us-south:a/x:y::", "x", "x.example.com")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = f.sim.Order(inst, "x")
	assert.ErrorIs(t, err, ErrRejected)

	require.NoError(t, f.sim.SetName(id, "renamed", ""))
	got, _ = f.sim.Get(id)
	assert.Equal(t, "renamed", got.Name)

	snap := f.sim.Snapshot(inst)
	require.Len(t, snap, 1)
	assert.Equal(t, id, snap[0].ID)
	assert.Nil(t, f.sim.Snapshot("crn:v1:bluemix:public:cloudcerts:us-south:a/x:y::"))

	require.NoError(t, f.sim.Delete(id))
	assert.ErrorIs(t, f.sim.Delete(id), ErrNotFound)
	assert.Same(t, testCA, f.sim.CA())
	assert.Contains(t, f.sim.Instances(), inst)
	assert.Error(t, f.sim.AddInstanceCRN(inst), "already exists")
	assert.Error(t, f.sim.AddInstanceCRN("crn:v1:bluemix:public:cloudcerts:us-south:a/x:y:certificate:z"))
	assert.Panics(t, func() { f.sim.AddInstance("Not A Region") })
	assert.Equal(t, "http://h:1/eu-de", f.sim.RegionURL("http://h:1/", "eu-de"))
}

// try is call for other goroutines, where require must not be used.
func try(method, url, token, body string) int {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestConcurrentUse is for -race: HTTP and Go API calls at once, with deliveries.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	rcv := newReceiver(t)
	_, err := f.sim.AddChannel(inst, rcv.srv.URL, 4)
	require.NoError(t, err)
	tok := f.token(managerKey)
	certs := make([]string, 4)
	issued := make([]*struct{ cert, key string }, 4)
	for i := range certs {
		iss := issue(t, fmt.Sprintf("c%d.example.com", i))
		certs[i] = f.sim.Seed(inst, "c", "", iss)
		issued[i] = &struct{ cert, key string }{iss.CertPEM, iss.KeyPEM}
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				assert.Equal(t, 200, try(http.MethodGet, f.api("us-south", "/api/v3/{}/certificates", inst), tok, ""))
				body, _ := json.Marshal(map[string]string{"content": issued[i].cert, "priv_key": issued[i].key})
				assert.Equal(t, 200, try(http.MethodPut, f.api("us-south", "/api/v1/certificate/{}", certs[i]), tok, string(body)))
				assert.NoError(t, f.sim.Reimport(certs[i], issued[i].cert, issued[i].key, ""))
				f.sim.Snapshot(inst)
				f.sim.Count(OpList, inst)
				f.sim.Deliveries()
			}
		}()
	}
	wg.Wait()
	for _, id := range certs {
		got, _ := f.sim.Get(id)
		assert.Equal(t, 11, got.Versions, "5 HTTP + 5 Go API reimports")
	}
	assert.Len(t, f.sim.Deliveries(), 40)
}
