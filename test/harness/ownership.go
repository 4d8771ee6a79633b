package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

var (
	sharedOnce sync.Once
	sharedExec string
	sharedErr  error
)

// SharedExecPath unpacks the action zip once per test binary, as the runtime unpacks
// it, and returns the exec that every stack of the binary may start (Options.Exec):
// unpacking the zip for each stack costs far more than the test itself under -race.
// Each stack still starts its own processes.
func SharedExecPath(tb testing.TB) string {
	tb.Helper()
	zipPath := ActionZip(tb)
	sharedOnce.Do(func() {
		sharedExec, sharedErr = owproxy.Unpack(zipPath, filepath.Join(filepath.Dir(zipPath), "unpacked"), ExecutionEnv)
	})
	if sharedErr != nil {
		tb.Fatalf("unpack: %v", sharedErr)
	}
	return sharedExec
}

// EngineCertificate is c as the engine reads it from a listing: the marker taken out of
// the description, dates as times.
func EngineCertificate(c cmsim.StoredCertificate) engine.Certificate {
	return cms.ToEngine(cms.Certificate{
		ID: c.ID, Name: c.Name, Description: c.Description, Domains: c.Domains, Issuer: c.Issuer,
		SerialNumber: c.SerialNumber, BeginsOn: c.BeginsOn, ExpiresOn: c.ExpiresOn, Status: c.Status,
	})
}

// ProvenCopies returns the certificates of instance whose marker owner proves and names
// source (source "" for any), sorted by CRN.
func ProvenCopies(sim *cmsim.Simulator, owner *match.Owner, instance, source string) []cmsim.StoredCertificate {
	var out []cmsim.StoredCertificate
	for _, c := range sim.Snapshot(instance) {
		ec := EngineCertificate(c)
		if owner.Proven(instance, ec) && (source == "" || ec.Marker.Source == source) {
			out = append(out, c)
		}
	}
	return out
}

// CallAs sends one Certificate Manager API request to the simulator served at base
// with apiKey's identity, exactly as any client of the public API would: an IAM token
// for the key, then method on path (under the region's base URL) with body as JSON.
// It returns the status. Tests use it to act as a principal other than certbackup (a
// Writer editing descriptions in a backup, for example).
func CallAs(tb testing.TB, base, apiKey, region, method, path string, body any) int {
	tb.Helper()
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {apiKey}}
	resp, err := http.Post(strings.TrimRight(base, "/")+"/identity/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatalf("IAM token: %v", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("IAM token: status %d, decode error %v", resp.StatusCode, err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(base, "/")+"/"+region+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// UpdateAs sets a certificate's name and description through the public update call
// (POST /api/v3/certificate/{crn}, the Writer role's right) with apiKey's identity, and
// returns the status.
func UpdateAs(tb testing.TB, base, apiKey, certCRN, name, description string) int {
	tb.Helper()
	c, err := crn.ParseCertificate(certCRN)
	if err != nil {
		tb.Fatalf("not a certificate CRN: %v", err)
	}
	return CallAs(tb, base, apiKey, c.Region, http.MethodPost, "/api/v3/certificate/"+crn.PathEscape(certCRN),
		map[string]string{"name": name, "description": description})
}

// DeleteAs deletes a certificate through the public API with apiKey's identity and
// returns the status.
func DeleteAs(tb testing.TB, base, apiKey, certCRN string) int {
	tb.Helper()
	c, err := crn.ParseCertificate(certCRN)
	if err != nil {
		tb.Fatalf("not a certificate CRN: %v", err)
	}
	return CallAs(tb, base, apiKey, c.Region, http.MethodDelete, "/api/v2/certificate/"+crn.PathEscape(certCRN), nil)
}

// WebAction serves the stack's pool of exec processes behind another web-action
// endpoint whose bound parameters are params over the stack's (a value nil removes a
// parameter), as a second deployment of the same zip with other parameters would be.
// It returns the endpoint's .http URL. Responses are kept for the secrets scan.
func (s *Stack) WebAction(params map[string]any) string {
	s.tb.Helper()
	bound := map[string]any{}
	for k, v := range s.Params {
		bound[k] = v
	}
	for k, v := range params {
		if v == nil {
			delete(bound, k)
			continue
		}
		bound[k] = v
	}
	web := owproxy.NewWebAction(s.Pool.RunFunc(owproxy.RunMeta{ActionName: "/guest/certbackup/notify", Timeout: s.timeout}), owproxy.WebOptions{
		ActionPath: "/api/v1/web/guest/certbackup/notify",
		Params:     bound,
		Final:      true,
	})
	srv := httptest.NewServer(s.record(web))
	s.tb.Cleanup(srv.Close)
	return srv.URL + "/api/v1/web/guest/certbackup/notify.http"
}

// PostTo sends body to a web-action URL anonymously, as anyone on the internet can,
// and returns the status and the raw answer.
func (s *Stack) PostTo(webURL string, body []byte) (int, []byte) {
	s.tb.Helper()
	resp, err := http.Post(webURL, "application/json", bytes.NewReader(body))
	if err != nil {
		s.tb.Fatalf("post to the web action: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.tb.Fatalf("read the answer: %v", err)
	}
	return resp.StatusCode, raw
}

// NotifyRaw posts {"data": token} to the stack's web action and returns the status and
// the raw answer.
func (s *Stack) NotifyRaw(token string) (int, []byte) {
	s.tb.Helper()
	b, _ := json.Marshal(map[string]string{"data": token})
	return s.PostTo(s.WebURL, b)
}

// PlanSummary is a plan's counts and the steps that write, one short line each, for a
// failure message.
func PlanSummary(p *reconcile.PlanResult) string {
	if p == nil {
		return "no plan"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v", p.Counts)
	for _, s := range p.Steps {
		if s.Action.Writes() {
			fmt.Fprintf(&b, "\n  %s %q in %s: %s (conflicts %d, duplicates %d)", s.Action, s.Name, s.Backup, s.Reason, len(s.Conflicts), len(s.Duplicates))
		}
	}
	return b.String()
}
