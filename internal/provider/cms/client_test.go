package cms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const apiKey = "test-api-key-0123456789abcdef"

type fixture struct {
	sim    *cmsim.Simulator
	srv    *httptest.Server
	src    string // instance in us-south
	bk     string // instance in eu-de
	client *cms.Client
	logs   *bytes.Buffer
}

func setup(t *testing.T) *fixture {
	t.Helper()
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f := &fixture{sim: sim, srv: srv, logs: &bytes.Buffer{}}
	f.src = sim.AddInstance("us-south")
	f.bk = sim.AddInstance("eu-de")
	sim.AddAPIKey(apiKey)
	sim.Grant(apiKey, f.src, cmsim.Manager)
	sim.Grant(apiKey, f.bk, cmsim.Manager)
	f.client = f.newClient(t, apiKey)
	return f
}

func (f *fixture) newClient(t *testing.T, key string) *cms.Client {
	t.Helper()
	c, err := cms.New(cms.Config{
		APIKey: key,
		IAMURL: f.sim.IAMURL(f.srv.URL),
		Endpoints: map[string]string{
			"us-south": f.sim.RegionURL(f.srv.URL, "us-south"),
			"eu-de":    f.sim.RegionURL(f.srv.URL, "eu-de"),
		},
		MinRetryInterval: 10 * time.Millisecond,
		MaxRetryInterval: 50 * time.Millisecond,
		Logger:           slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestOperations(t *testing.T) {
	f := setup(t)
	ca := f.sim.CA()
	issued := ca.MustIssue("www.example.com", "example.com")

	imported, err := f.client.Import(ctx(t), f.bk, cms.ImportRequest{
		Name: "web", Description: "prod",
		Data: cms.Data{Content: issued.CertPEM, PrivKey: issued.KeyPEM, Intermediate: issued.Intermediate},
	})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(imported.ID, strings.TrimSuffix(f.bk, ":")+"certificate:"), imported.ID)
	assert.Equal(t, []string{"www.example.com", "example.com"}, imported.Domains)
	assert.True(t, imported.Imported)
	assert.False(t, imported.HasPrevious)

	got, err := f.client.Download(ctx(t), imported.ID)
	require.NoError(t, err)
	assert.Equal(t, issued.CertPEM, got.Data.Content)
	assert.Equal(t, issued.KeyPEM, got.Data.PrivKey)
	assert.Equal(t, issued.Intermediate, got.Data.Intermediate)
	assert.Equal(t, "web", got.Name)

	meta, err := f.client.Metadata(ctx(t), imported.ID)
	require.NoError(t, err)
	assert.Equal(t, imported.SerialNumber, meta.SerialNumber)

	renewed := ca.MustIssue("www.example.com", "example.com")
	re, err := f.client.Reimport(ctx(t), imported.ID, cms.Data{Content: renewed.CertPEM, PrivKey: renewed.KeyPEM, Intermediate: renewed.Intermediate})
	require.NoError(t, err)
	assert.True(t, re.HasPrevious)
	assert.NotEqual(t, imported.SerialNumber, re.SerialNumber)

	require.NoError(t, f.client.UpdateMetadata(ctx(t), imported.ID, "web-renamed", "new description"))
	meta, err = f.client.Metadata(ctx(t), imported.ID)
	require.NoError(t, err)
	assert.Equal(t, "web-renamed", meta.Name)
	assert.Equal(t, "new description", meta.Description)

	list, err := f.client.ListCertificates(ctx(t), f.bk)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, imported.ID, list[0].ID)

	require.NoError(t, f.client.Delete(ctx(t), imported.ID))
	_, err = f.client.Download(ctx(t), imported.ID)
	assert.True(t, errors.Is(err, engine.ErrNotFound), "%v", err)

	pub, err := f.client.PublicKey(ctx(t), f.src)
	require.NoError(t, err)
	want, err := f.sim.PublicKeyPEM(f.src)
	require.NoError(t, err)
	assert.Equal(t, want, pub)

	ch, err := f.client.CreateChannel(ctx(t), f.src, cms.Channel{Type: cms.ChannelTypeURL, Endpoint: "https://example.com/hook.http", IsActive: true})
	require.NoError(t, err)
	assert.NotEmpty(t, ch.ID)
	chans, err := f.client.ListChannels(ctx(t), f.src)
	require.NoError(t, err)
	require.Len(t, chans, 1)
	assert.Equal(t, "https://example.com/hook.http", chans[0].Endpoint)
	assert.Equal(t, 4, chans[0].Version)

	// Every request went out with the CRN as one escaped segment.
	for _, r := range f.sim.Requests() {
		if r.Op == cmsim.OpIAMToken {
			continue
		}
		assert.NotContains(t, r.EscapedPath, "cloudcerts:", "a CRN travelled unescaped: %s", r.EscapedPath)
		assert.Contains(t, r.EscapedPath, "%3A", r.EscapedPath)
	}
	// The public key was fetched without a token, as IBM's samples do.
	assert.Equal(t, 1, f.sim.Count(cmsim.OpPublicKey, f.src))
}

func TestPagingOver1000(t *testing.T) {
	f := setup(t)
	ca := f.sim.CA()
	want := map[string]bool{}
	for i := range 1000 {
		id := f.sim.Seed(f.src, fmt.Sprintf("cert-%04d", i), "", ca.MustIssue(fmt.Sprintf("h%d.example.com", i)))
		want[id] = true
	}
	list, err := f.client.ListCertificates(ctx(t), f.src)
	require.NoError(t, err)
	assert.Len(t, list, 1000)
	for _, c := range list {
		assert.True(t, want[c.ID], "unexpected %s", c.ID)
		delete(want, c.ID)
	}
	assert.Empty(t, want, "every certificate listed exactly once")
	pages := f.sim.Count(cmsim.OpList, f.src)
	assert.GreaterOrEqual(t, pages, 5)
	assert.LessOrEqual(t, pages, 6, "page_size=200")
	for _, r := range f.sim.Requests() {
		if r.Op == cmsim.OpList {
			assert.Equal(t, 200, r.Status)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	f := setup(t)
	ca := f.sim.CA()
	a := ca.MustIssue("a.example.com")
	b := ca.MustIssue("b.example.com")
	reader := "reader-key-000000000000"
	f.sim.AddAPIKey(reader)
	f.sim.Grant(reader, f.src, cmsim.Reader)
	certA := f.sim.Seed(f.src, "a", "", a)
	missing := strings.TrimSuffix(f.src, ":") + "certificate:00000000000000000000000000000000"

	tests := []struct {
		name      string
		call      func() error
		status    int
		retryable bool
		op        string
	}{
		{name: "400 key does not match", status: 400, op: "import", call: func() error {
			_, err := f.client.Import(ctx(t), f.src, cms.ImportRequest{Name: "x", Data: cms.Data{Content: a.CertPEM, PrivKey: b.KeyPEM}})
			return err
		}},
		{name: "400 bad PEM", status: 400, op: "import", call: func() error {
			_, err := f.client.Import(ctx(t), f.src, cms.ImportRequest{Name: "x", Data: cms.Data{Content: "not pem"}})
			return err
		}},
		{name: "403 reader cannot download", status: 403, op: "download", call: func() error {
			_, err := f.newClient(t, reader).Download(ctx(t), certA)
			return err
		}},
		{name: "404 unknown certificate", status: 404, op: "download", call: func() error {
			_, err := f.client.Download(ctx(t), missing)
			return err
		}},
		{name: "400 unknown API key at IAM", status: 400, op: "authenticate", call: func() error {
			_, err := f.newClient(t, "unknown-key-000000000000").ListCertificates(ctx(t), f.src)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			var e *cms.Error
			require.True(t, errors.As(err, &e), "%T %v", err, err)
			assert.Equal(t, tt.status, e.StatusCode, err.Error())
			assert.Equal(t, tt.retryable, engine.IsRetryable(err))
			assert.Equal(t, tt.op, e.Op)
			assert.NotContains(t, err.Error(), "BEGIN")
			assert.NotContains(t, err.Error(), apiKey)
		})
	}

	t.Run("401 expired token is permanent and names the CRN", func(t *testing.T) {
		c := f.newClient(t, apiKey)
		_, err := c.ListCertificates(ctx(t), f.src)
		require.NoError(t, err)
		f.sim.ExpireTokens()
		_, err = c.ListCertificates(ctx(t), f.src)
		require.Error(t, err)
		assert.Equal(t, 401, statusOf(err))
		assert.False(t, engine.IsRetryable(err))
		assert.Contains(t, err.Error(), f.src)
	})
}

func TestRetries(t *testing.T) {
	f := setup(t)
	ca := f.sim.CA()
	cert := f.sim.Seed(f.src, "a", "", ca.MustIssue("a.example.com"))

	t.Run("503 twice then success", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpDownload, Status: 503, Times: 2})
		_, err := f.client.Download(ctx(t), cert)
		require.NoError(t, err)
		assert.Equal(t, 3, f.sim.Count(cmsim.OpDownload, ""))
	})
	t.Run("429 with Retry-After then success", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		_, err := f.client.ListCertificates(ctx(t), f.src)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After honoured")
		assert.Equal(t, 2, f.sim.Count(cmsim.OpList, ""))
	})
	t.Run("Retry-After beyond the deadline fails at once, retryable", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Status: 429, RetryAfter: "30", Times: 1})
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.client.ListCertificates(c, f.src)
		require.Error(t, err)
		assert.Less(t, time.Since(start), time.Second)
		assert.Equal(t, 429, statusOf(err))
		assert.True(t, engine.IsRetryable(err))
		var e *cms.Error
		require.True(t, errors.As(err, &e))
		assert.Equal(t, 30*time.Second, e.RetryAfter)
	})
	t.Run("a context deadline stops the retries", func(t *testing.T) {
		f.sim.ResetLog()
		f.sim.ClearFaults()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpDownload, Status: 503})
		defer f.sim.ClearFaults()
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.client.Download(c, cert)
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.True(t, engine.IsRetryable(err))
	})
	t.Run("slow reply past the deadline", func(t *testing.T) {
		f.sim.ClearFaults()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpDownload, Delay: 3 * time.Second, Times: 1})
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := f.client.Download(c, cert)
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		assert.True(t, engine.IsRetryable(err))
	})
	t.Run("dropped connections are retried", func(t *testing.T) {
		f.sim.ClearFaults()
		f.sim.ResetLog()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpMetadata, Drop: true, Times: 1})
		_, err := f.client.Metadata(ctx(t), cert)
		require.NoError(t, err)
	})
	t.Run("IAM unavailable is retryable", func(t *testing.T) {
		f.sim.ClearFaults()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpIAMToken, Status: 503})
		defer f.sim.ClearFaults()
		_, err := f.newClient(t, apiKey).ListCertificates(ctx(t), f.src)
		require.Error(t, err)
		assert.True(t, engine.IsRetryable(err), "%v", err)
		assert.Equal(t, "authenticate", err.(*cms.Error).Op)
	})
	t.Run("500 exhausted is retryable with its status", func(t *testing.T) {
		f.sim.ClearFaults()
		f.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Status: 500})
		defer f.sim.ClearFaults()
		_, err := f.client.ListCertificates(ctx(t), f.src)
		require.Error(t, err)
		assert.Equal(t, 500, statusOf(err))
		assert.True(t, engine.IsRetryable(err))
	})
}

func TestNoSecretsInLogsOrErrors(t *testing.T) {
	f := setup(t)
	ca := f.sim.CA()
	i := ca.MustIssue("s.example.com")
	id, err := f.client.Import(ctx(t), f.src, cms.ImportRequest{Name: "s", Data: cms.Data{Content: i.CertPEM, PrivKey: i.KeyPEM}})
	require.NoError(t, err)
	got, err := f.client.Download(ctx(t), id.ID)
	require.NoError(t, err)
	_, err = f.client.Import(ctx(t), f.src, cms.ImportRequest{Name: "bad", Data: cms.Data{Content: i.CertPEM, PrivKey: ca.MustIssue("t.example.com").KeyPEM}})
	require.Error(t, err)

	printed := fmt.Sprintf("%v %+v %#v %s", got.Data, got, got, err)
	logs := f.logs.String()
	require.NotEmpty(t, logs)
	for _, s := range []string{printed, logs} {
		assert.NotContains(t, s, "PRIVATE KEY")
		assert.NotContains(t, s, i.KeyPEM[30:60])
		assert.NotContains(t, s, apiKey)
		assert.NotContains(t, strings.ToLower(s), "bearer")
	}
}

func TestEndpointsAreCheckedAtConstruction(t *testing.T) {
	_, err := cms.New(cms.Config{APIKey: "k", Endpoints: map[string]string{"us-south": "http://example.com"}})
	assert.Error(t, err, "an http override on a network host is refused at construction")
}

// TestImportIsNotRetriedWhenItMayHaveHappened: an import is a POST that creates a
// certificate; after a 5xx or a lost answer it may have been carried out, so it is not
// sent again (the engine looks first). A 429 means the service did nothing: retried.
func TestImportIsNotRetriedWhenItMayHaveHappened(t *testing.T) {
	f := setup(t)
	i := f.sim.CA().MustIssue("imp.example.com")
	req := cms.ImportRequest{Name: "imp", Data: cms.Data{Content: i.CertPEM, PrivKey: i.KeyPEM}}
	tests := []struct {
		name      string
		fault     cmsim.Fault
		calls     int
		ambiguous bool
		ok        bool
	}{
		{name: "503", fault: cmsim.Fault{Op: cmsim.OpImport, Status: 503, Times: 1}, calls: 1, ambiguous: true},
		{name: "answer lost after the write", fault: cmsim.Fault{Op: cmsim.OpImport, Drop: true, AfterOp: true, Times: 1}, calls: 1, ambiguous: true},
		{name: "429 is retried", fault: cmsim.Fault{Op: cmsim.OpImport, Status: 429, RetryAfter: "0", Times: 1}, calls: 2, ok: true},
		{name: "400 is final", fault: cmsim.Fault{Op: cmsim.OpImport, Status: 400, Times: 1}, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.sim.ResetLog()
			f.sim.Inject(tt.fault)
			_, err := f.client.Import(ctx(t), f.bk, req)
			assert.Equal(t, tt.calls, f.sim.Count(cmsim.OpImport, f.bk))
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.ambiguous, engine.IsAmbiguous(err), "%v", err)
		})
	}
	// Reads stay retried as before.
	f.sim.ResetLog()
	f.sim.Inject(cmsim.Fault{Op: cmsim.OpList, Status: 503, Times: 1})
	_, err := f.client.ListCertificates(ctx(t), f.bk)
	require.NoError(t, err)
	assert.Equal(t, 2, f.sim.Count(cmsim.OpList, f.bk))

	// An import that never left (its instance CRN does not parse) cannot have happened:
	// not ambiguous, so the engine does not list and import again.
	f.sim.ResetLog()
	_, err = f.client.Import(ctx(t), "crn:v1:not-an-instance", req)
	require.Error(t, err)
	assert.ErrorIs(t, err, engine.ErrNotSent)
	assert.False(t, engine.IsAmbiguous(err), "%v", err)
	assert.Zero(t, f.sim.Count(cmsim.OpImport, ""))
}

// TestListingRepeatsAreMerged: the listing is ordered by expires_on with a keyset
// cursor, so a certificate renewed between two pages comes back on a later page. It is
// one certificate: listed once, with its newer entry.
func TestListingRepeatsAreMerged(t *testing.T) {
	const inst = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst::"
	cert := func(id string, exp int64) map[string]any {
		return map[string]any{"_id": strings.TrimSuffix(inst, ":") + "certificate:" + id, "name": id, "expires_on": exp}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/identity/token" {
			fmt.Fprintf(w, `{"access_token":"t","token_type":"Bearer","expires_in":3600,"expiration":%d}`, time.Now().Add(time.Hour).Unix())
			return
		}
		var page map[string]any
		if r.URL.Query().Get("start_from_document_id") == "" {
			page = map[string]any{"certificates": []any{cert("aa", 1), cert("bb", 2)}, "nextPageInfo": map[string]string{"startWithDocId": "bb", "startWithOrderByValue": "2"}}
		} else {
			page = map[string]any{"certificates": []any{cert("cc", 3), cert("aa", 9)}, "nextPageInfo": map[string]string{"startWithDocId": "", "startWithOrderByValue": ""}}
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	c, err := cms.New(cms.Config{APIKey: "k", IAMURL: srv.URL, Endpoints: map[string]string{"us-south": srv.URL}})
	require.NoError(t, err)
	list, err := c.ListCertificates(ctx(t), inst)
	require.NoError(t, err)
	require.Len(t, list, 3)
	assert.Equal(t, "aa", list[0].Name)
	assert.EqualValues(t, 9, list[0].ExpiresOn, "the newer entry wins")
}

// listInst is the instance of listServer.
const listInst = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst::"

// listServer is a Certificate Manager of one instance whose list pages come from page
// (given the request's start_from_document_id, "" for the first page), for the tests of
// the listing's pipeline. It also answers IAM.
func listServer(t *testing.T, page func(w http.ResponseWriter, r *http.Request, from string)) *cms.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/identity/token" {
			fmt.Fprintf(w, `{"access_token":"t","token_type":"Bearer","expires_in":3600,"expiration":%d}`, time.Now().Add(time.Hour).Unix())
			return
		}
		page(w, r, r.URL.Query().Get("start_from_document_id"))
	}))
	t.Cleanup(srv.Close)
	c, err := cms.New(cms.Config{APIKey: "k", IAMURL: srv.URL, Endpoints: map[string]string{"us-south": srv.URL},
		MinRetryInterval: time.Millisecond, MaxRetryInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	return c
}

// writePage writes a page of certificates named names, with the cursor next ("" on
// the last page).
func writePage(w http.ResponseWriter, inst, next string, names ...string) {
	certs := []any{}
	for _, n := range names {
		certs = append(certs, map[string]any{"_id": strings.TrimSuffix(inst, ":") + "certificate:" + n, "name": n, "expires_on": 1})
	}
	order := ""
	if next != "" {
		order = "1"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"certificates": certs, "nextPageInfo": map[string]string{"startWithDocId": next, "startWithOrderByValue": order}})
}

func names(page []cms.Certificate) []string {
	var out []string
	for _, c := range page {
		out = append(out, c.Name)
	}
	return out
}

// pageFetches counts the goroutines of the listing's requests: none may outlive
// ListCertificatePages. A goroutine that has just delivered its page may take a moment
// to end; a leaked one never does.
func pageFetches(t *testing.T) int {
	t.Helper()
	buf := make([]byte, 1<<20)
	var n int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := buf[:runtime.Stack(buf, true)]
		n = strings.Count(string(st), "cms.(*Client).fetchPage.func")
		if n == 0 || time.Now().After(deadline) {
			return n
		}
	}
}

// TestListingFetchesTheNextPageWhileTheCallerWorks: the request for page n+1 is sent
// before fn gets page n, and fn gets the pages in order.
func TestListingFetchesTheNextPageWhileTheCallerWorks(t *testing.T) {
	asked := map[string]chan struct{}{"p1": make(chan struct{}), "p2": make(chan struct{})}
	c := listServer(t, func(w http.ResponseWriter, r *http.Request, from string) {
		switch from {
		case "":
			writePage(w, listInst, "p1", "a", "b")
		case "p1":
			close(asked["p1"])
			writePage(w, listInst, "p2", "c")
		case "p2":
			close(asked["p2"])
			writePage(w, listInst, "", "d")
		}
	})
	var got [][]string
	err := c.ListCertificatePages(ctx(t), listInst, func(page []cms.Certificate) error {
		got = append(got, names(page))
		if next := map[int]string{1: "p1", 2: "p2"}[len(got)]; next != "" {
			select {
			case <-asked[next]:
			case <-time.After(5 * time.Second):
				return fmt.Errorf("page %s was not requested while page %d was handled", next, len(got))
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"a", "b"}, {"c"}, {"d"}}, got)
	assert.Zero(t, pageFetches(t))
}

// TestListingStopsCleanly: when fn fails or the context ends, the request already sent
// for the next page is cancelled and ended before ListCertificatePages returns.
func TestListingStopsCleanly(t *testing.T) {
	errStop := errors.New("stop")
	tests := []struct {
		name  string
		fn    func(cancel context.CancelFunc) error
		check func(t *testing.T, err error)
	}{
		{"fn fails", func(context.CancelFunc) error { return errStop }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, errStop)
		}},
		{"context cancelled", func(cancel context.CancelFunc) error { cancel(); return nil }, func(t *testing.T, err error) {
			var e *cms.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "list", e.Op)
			assert.ErrorIs(t, err, context.Canceled)
			assert.True(t, engine.IsRetryable(err))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received, cancelled := make(chan struct{}), make(chan struct{})
			c := listServer(t, func(w http.ResponseWriter, r *http.Request, from string) {
				if from == "" {
					writePage(w, listInst, "p1", "a")
					return
				}
				// The second page never comes: only a cancellation ends this request.
				close(received)
				select {
				case <-r.Context().Done():
					close(cancelled)
				case <-time.After(10 * time.Second):
				}
			})
			lctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			calls := 0
			start := time.Now()
			err := c.ListCertificatePages(lctx, listInst, func([]cms.Certificate) error {
				calls++
				select { // fn acts once the request for the next page has arrived
				case <-received:
				case <-time.After(5 * time.Second):
					t.Error("the next page was not asked for while fn ran")
				}
				return tt.fn(cancel)
			})
			require.Error(t, err)
			tt.check(t, err)
			assert.Equal(t, 1, calls)
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.Zero(t, pageFetches(t), "a page request outlived the listing")
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the request for the next page was not cancelled")
			}
		})
	}
}

// TestListingGuards: a cursor that comes back, or more than 50 pages, ends the listing
// with an error after fn got the page, and no request is sent beyond it (the next
// page is asked for early only when the guards let it be).
func TestListingGuards(t *testing.T) {
	t.Run("repeated cursor", func(t *testing.T) {
		var requests atomic.Int32
		c := listServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			requests.Add(1)
			writePage(w, listInst, "same", "a")
		})
		pages := 0
		err := c.ListCertificatePages(ctx(t), listInst, func([]cms.Certificate) error { pages++; return nil })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the paging cursor repeated itself")
		assert.Equal(t, 2, pages)
		assert.EqualValues(t, 2, requests.Load())
	})
	t.Run("more than 50 pages", func(t *testing.T) {
		var requests atomic.Int32
		c := listServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			n := requests.Add(1)
			writePage(w, listInst, fmt.Sprintf("p%d", n), fmt.Sprintf("c%d", n))
		})
		var got []string
		err := c.ListCertificatePages(ctx(t), listInst, func(page []cms.Certificate) error { got = append(got, names(page)...); return nil })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "more than 50 pages")
		require.Len(t, got, 50)
		assert.Equal(t, "c50", got[49], "pages in order")
		assert.Zero(t, pageFetches(t))
		assert.EqualValues(t, 50, requests.Load())
	})
}

// TestListingFollowsTheDecodedCursor: the next page is asked for with the cursor read
// from the body before decoding; when that read is fooled (a certificate with a
// "nextPageInfo" field after the page's own), the decoded cursor is followed.
func TestListingFollowsTheDecodedCursor(t *testing.T) {
	id := func(n string) string { return strings.TrimSuffix(listInst, ":") + "certificate:" + n }
	c := listServer(t, func(w http.ResponseWriter, r *http.Request, from string) {
		switch from {
		case "":
			fmt.Fprintf(w, `{"nextPageInfo":{"startWithDocId":"real","startWithOrderByValue":"1"},"certificates":[`+
				`{"_id":%q,"name":"a","expires_on":1,"nextPageInfo":{"startWithDocId":"decoy","startWithOrderByValue":"1"}}]}`, id("a"))
		case "real":
			writePage(w, listInst, "", "b")
		default:
			writePage(w, listInst, "", "wrong")
		}
	})
	list, err := c.ListCertificates(ctx(t), listInst)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, names(list))
	assert.Zero(t, pageFetches(t))
}

// TestListingUndecodable: a 2xx list page that is not JSON is an error that says so,
// retryable (a garbled answer may not come again) and, a listing creating nothing,
// not ambiguous: the one rule of both providers (ibmapi.Error.Undecodable).
func TestListingUndecodable(t *testing.T) {
	for name, write := range map[string]func(w http.ResponseWriter){
		"not JSON by Content-Type": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, `{"certificates":[],"nextPageInfo":{"startWithDocId":"","startWithOrderByValue":""}}`)
		},
		"not JSON by content": func(w http.ResponseWriter) { fmt.Fprint(w, `{"certificates":[{"name":`) },
		"wrong types":         func(w http.ResponseWriter) { fmt.Fprint(w, `{"certificates":{"name":"a"}}`) },
	} {
		t.Run(name, func(t *testing.T) {
			c := listServer(t, func(w http.ResponseWriter, r *http.Request, _ string) { write(w) })
			_, err := c.ListCertificates(ctx(t), listInst)
			var e *cms.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "the response could not be decoded", e.Message)
			assert.Equal(t, "list", e.Op)
			assert.True(t, engine.IsRetryable(err))
			assert.False(t, engine.IsAmbiguous(err))
		})
	}
}

// statusOf is the HTTP status of a failed call, 0 when there was none.
func statusOf(err error) int {
	var e *cms.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}
