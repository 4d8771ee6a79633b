package ownership

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/test/harness"
)

// env is one deployment: the real zip behind the web action over a simulator with a
// source and its backups, a sink that receives every notification the source signs,
// and a second principal that holds only the Writer role on every backup.
type env struct {
	s      *harness.Stack
	owner  *match.Owner // certbackup's proofs with the deployment's API key
	writer string       // API key with Writer, and nothing else, on every backup
	tokens <-chan string
	seq    int
}

func newEnv(t *testing.T, backups int) *env {
	t.Helper()
	s := harness.NewStack(t, harness.Options{Backups: backups, NoChannel: true, Exec: harness.SharedExecPath(t)})
	e := &env{s: s, owner: match.NewOwner(s.APIKey), writer: "writer-" + randomHex(16)}
	e.tokens = harness.TokenSink(t, s.Sim, s.Source, 64)
	s.Sim.AddAPIKey(e.writer)
	for _, b := range s.Backups {
		s.Sim.Grant(e.writer, b, cmsim.Writer)
	}
	t.Cleanup(func() {
		apiKeys, keyPEMs, tokens := harness.StackSecrets(s)
		harness.RegisterSecrets(append(apiKeys, e.writer), keyPEMs, tokens)
	})
	return e
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// domain is a fresh domain name for this env.
func (e *env) domain(label string) string {
	e.seq++
	return fmt.Sprintf("%s%d.%s.example", label, e.seq, randomHex(3))
}

// order orders a certificate in the source (as Let's Encrypt through Certificate
// Manager would) and drains its cert_issued notification.
func (e *env) order(t *testing.T, name string) string {
	t.Helper()
	id, err := e.s.Sim.Order(e.s.Source, name, e.domain("o"))
	require.NoError(t, err)
	e.token(t)
	return id
}

// imported seeds an imported certificate in the source (no event, as the service).
func (e *env) imported(t *testing.T, name, description string, domains ...string) string {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{e.domain("i")}
	}
	return e.s.Sim.Seed(e.s.Source, name, description, e.s.Sim.CA().MustIssue(domains...))
}

// foreign is a certificate another team imported into instance (with its own Manager
// rights): certbackup did not create it.
func (e *env) foreign(t *testing.T, instance, name, description string, domains ...string) string {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{e.domain("f")}
	}
	return e.s.Sim.Seed(instance, name, description, e.s.Sim.CA().MustIssue(domains...))
}

// foreignBelow is foreign with a CRN smaller than than, so that a rule that keeps the
// smallest CRN would pick it.
func (e *env) foreignBelow(t *testing.T, instance, than, name, description string, domains ...string) string {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{e.domain("f")}
	}
	id := e.s.Sim.SeedBelow(instance, than, name, description, e.s.Sim.CA().MustIssue(domains...))
	require.Less(t, id, than)
	return id
}

// token is the next notification the source signed.
func (e *env) token(t *testing.T) string {
	t.Helper()
	select {
	case tok := <-e.tokens:
		return tok
	case <-time.After(10 * time.Second):
		t.Fatal("no notification from the source")
		return ""
	}
}

// event has the source send eventType for certs and returns the genuine token.
func (e *env) event(t *testing.T, eventType string, certs ...string) string {
	t.Helper()
	require.NoError(t, e.s.Sim.SendEvent(e.s.Source, eventType, certs...))
	return e.token(t)
}

// renew renews an ordered source certificate and returns its cert_renewed token.
func (e *env) renew(t *testing.T, cert string) string {
	t.Helper()
	require.NoError(t, e.s.Sim.Renew(cert))
	return e.token(t)
}

// reimport reimports a new certificate for the same domains into an imported source
// certificate and returns its cert_reimported token.
func (e *env) reimport(t *testing.T, cert string) string {
	t.Helper()
	c := e.get(t, cert)
	iss := e.s.Sim.CA().MustIssue(c.Domains...)
	require.NoError(t, e.s.Sim.Reimport(cert, iss.CertPEM, iss.KeyPEM, iss.Intermediate))
	return e.token(t)
}

func (e *env) get(t *testing.T, cert string) cmsim.StoredCertificate {
	t.Helper()
	c, ok := e.s.Sim.Get(cert)
	require.True(t, ok, "certificate %s exists", cert)
	return c
}

// write is the Writer's edit, through the public API with the Writer-only key.
func (e *env) write(t *testing.T, cert, name, description string) {
	t.Helper()
	require.Equal(t, http.StatusOK, harness.UpdateAs(t, e.s.SimURL, e.writer, cert, name, description), "a Writer may edit names and descriptions")
}

// appendMarker is the Writer appending text to a certificate's description.
func (e *env) appendMarker(t *testing.T, cert, marker string) {
	t.Helper()
	c := e.get(t, cert)
	desc := marker
	if c.Description != "" {
		desc = c.Description + "\n" + marker
	}
	e.write(t, cert, c.Name, desc)
}

// claim is the marker a release before proofs wrote: what anyone can type.
func claim(source string) string { return "[certbackup source=" + source + "]" }

// copies returns certbackup's proven copies of source in backup.
func (e *env) copies(backup, source string) []cmsim.StoredCertificate {
	return harness.ProvenCopies(e.s.Sim, e.owner, backup, source)
}

// assertOneCopy: backup holds exactly one proven copy of source, with the source's
// current material.
func (e *env) assertOneCopy(t *testing.T, backup, source string) cmsim.StoredCertificate {
	t.Helper()
	src := e.get(t, source)
	cs := e.copies(backup, source)
	if !assert.Len(t, cs, 1, "one proven copy of %s in %s", source, backup) {
		return cmsim.StoredCertificate{}
	}
	assert.Equal(t, src.Data, cs[0].Data, "the copy holds the source's current material")
	assert.Equal(t, src.Name, cs[0].Name, "the copy has the source's name")
	return cs[0]
}

// snapshot records certificates as they are, to compare after.
func (e *env) snapshot(ids []string) map[string]cmsim.StoredCertificate {
	out := map[string]cmsim.StoredCertificate{}
	for _, id := range ids {
		if c, ok := e.s.Sim.Get(id); ok {
			out[id] = c
		}
	}
	return out
}

// assertUntouched: every certificate of before still exists with the same name,
// description, material and versions, and no call of certbackup's since the last
// ResetLog wrote to it.
func (e *env) assertUntouched(t *testing.T, before map[string]cmsim.StoredCertificate, when string) {
	t.Helper()
	for id, b := range before {
		now, ok := e.s.Sim.Get(id)
		if !assert.True(t, ok, "%s: foreign certificate %s was deleted", when, id) {
			continue
		}
		assert.Equal(t, b.Name, now.Name, "%s: foreign certificate %s renamed", when, id)
		assert.Equal(t, b.Description, now.Description, "%s: description of foreign certificate %s changed", when, id)
		assert.Equal(t, b.Data, now.Data, "%s: material of foreign certificate %s changed", when, id)
		assert.Equal(t, b.Versions, now.Versions, "%s: foreign certificate %s reimported", when, id)
	}
	for _, q := range e.s.Sim.Requests() {
		if _, foreign := before[q.Cert]; foreign && slices.Contains([]string{cmsim.OpUpdate, cmsim.OpReimport, cmsim.OpDelete}, q.Op) {
			t.Errorf("%s: certbackup sent %s to foreign certificate %s (status %d)", when, q.Op, q.Cert, q.Status)
		}
	}
}

// notification is a web activation's answer.
type notification struct {
	Status  int
	Raw     []byte
	Message string                 `json:"message"`
	Summary map[string]int         `json:"summary"`
	Results []replicate.PairResult `json:"results"`
	Omitted int                    `json:"results_omitted"`
}

// notify delivers a genuine token to the deployment's web action, as Certificate
// Manager does, and decodes the answer.
func (e *env) notify(t *testing.T, token string) notification {
	t.Helper()
	status, raw := e.s.NotifyRaw(token)
	n := notification{Status: status, Raw: raw}
	require.NoError(t, json.Unmarshal(raw, &n), "answer: %.400s", raw)
	return n
}

func (n notification) pair(t *testing.T, source, backup string) replicate.PairResult {
	t.Helper()
	for _, r := range n.Results {
		if r.SourceCRN == source && r.Backup == backup {
			return r
		}
	}
	t.Fatalf("no result for %s in %s: %.600s", source, backup, n.Raw)
	return replicate.PairResult{}
}

// cliEnv is the environment of the terminal command for this deployment with apiKey.
func (e *env) cliEnv(apiKey string) map[string]string {
	return map[string]string{
		"APIKEY":               apiKey,
		"SOURCE_INSTANCE_CRN":  e.s.Source,
		"BACKUP_INSTANCE_CRNS": strings.Join(e.s.Backups, ","),
		"IAM_URL":              e.s.Params["iam_url"].(string),
		"ENDPOINTS":            e.s.Params["endpoints"].(string),
	}
}

// command runs the terminal command (cli.Main) with environment vars and args, and
// keeps its output for the secrets scan.
func command(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(args, &out, &errb, func(k string) string { return vars[k] })
	harness.Collect(out.String(), errb.String())
	return code, out.String(), errb.String()
}

// run runs `reconcile` or `verify` with --json and decodes the report.
func run(t *testing.T, vars map[string]string, args ...string) (int, *reconcile.Report) {
	t.Helper()
	code, stdout, stderr := command(t, vars, append(args, "--json")...)
	var rep reconcile.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), "exit %d, stderr: %s", code, stderr)
	return code, &rep
}

// reconcileNow runs `reconcile` as the operator would and requires it to succeed.
func (e *env) reconcileNow(t *testing.T, args ...string) *reconcile.Report {
	t.Helper()
	code, rep := run(t, e.cliEnv(e.s.APIKey), append([]string{"reconcile"}, args...)...)
	require.Equal(t, cli.ExitOK, code, "reconcile: failures %v deferred %v", rep.Failures, rep.Deferred)
	return rep
}

// results of source in backup in a report.
func results(rep *reconcile.Report, source, backup string) []reconcile.Result {
	var out []reconcile.Result
	for _, r := range rep.Results {
		if r.SourceCRN == source && r.Backup == backup {
			out = append(out, r)
		}
	}
	return out
}

// issuedOf is the material of a stored certificate, as testpki would hand it to Seed.
func issuedOf(c cmsim.StoredCertificate) *testpki.Issued {
	return &testpki.Issued{CertPEM: c.Data.Content, KeyPEM: c.Data.PrivKey, Intermediate: c.Data.Intermediate}
}

// legacy is the description a release before proofs wrote on a copy.
func legacy(user, source string) string { return cms.LegacyDescription(user, source) }

// rotatedKey is the API key an operator rotated to.
type rotatedKey struct {
	key   string
	owner *match.Owner // the proofs of a deployment with this key and no ownership_key
}

// rotate makes a new API key with the deployment's roles (Writer on the source, Manager
// on every backup) and deletes the old one, as an operator rotating keys does.
func (e *env) rotate(t *testing.T) rotatedKey {
	t.Helper()
	k := "rotated-" + randomHex(16)
	e.s.Sim.AddAPIKey(k)
	e.s.Sim.Grant(k, e.s.Source, cmsim.Writer)
	for _, b := range e.s.Backups {
		e.s.Sim.Grant(k, b, cmsim.Manager)
	}
	e.s.Sim.RemoveAPIKey(e.s.APIKey)
	harness.RegisterSecrets([]string{k}, nil, nil)
	return rotatedKey{key: k, owner: match.NewOwner(k)}
}

func (r rotatedKey) copies(e *env, backup, source string) []cmsim.StoredCertificate {
	return harness.ProvenCopies(e.s.Sim, r.owner, backup, source)
}

func ownerOf(secret string) *match.Owner { return match.NewOwner(secret) }

// tokenBody is what Certificate Manager posts: {"data": token}.
func tokenBody(token string) []byte {
	b, _ := json.Marshal(map[string]string{"data": token})
	return b
}

// engineDescription is the user's part of a stored certificate's description.
func engineDescription(c cmsim.StoredCertificate) string {
	return harness.EngineCertificate(c).Description
}
