package successor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
	"github.com/certbackup/certbackup/test/harness"
)

// Source kinds of a pair.
const (
	fromCM = "cm" // Certificate Manager -> Secrets Manager
	fromSM = "sm" // Secrets Manager -> Secrets Manager
)

// pairs are the pairs of the contract whose backups are Secrets Manager instances.
var pairs = []string{fromCM, fromSM}

func pairName(kind string) string {
	if kind == fromCM {
		return "certificate manager to secrets manager"
	}
	return "secrets manager to secrets manager"
}

// webhookSecret is the bearer of /events in every world.
const webhookSecret = "successor-webhook-secret-0123456789abcdef-XyZ"

// Kinds of source certificate a test adds.
const (
	imported      = "imported"       // CM imported, or SM imported_cert
	ordered       = "ordered"        // CM ordered (renews)
	publicPlain   = "public"         // SM public_cert, chain in intermediate
	publicBundled = "public-bundled" // SM public_cert, leaf + chain in certificate
	private       = "private"        // SM private_cert, issuing_ca + ca_chain
)

// world is one loopback cloud, an operator's API key with Manager on every instance, a
// source (Certificate Manager or Secrets Manager) and Secrets Manager backups.
type world struct {
	cloud   *harness.Cloud
	kind    string
	key     string
	source  string
	backups []string
	ca      *testpki.CA
	seq     int
	// rate is MAX_REQUESTS_PER_SECOND for the command, "" for the default (20).
	rate string

	mu     sync.Mutex
	keys   []string // every private key a test issued
	typeOf map[string]string
}

var smRegions = []string{"eu-de", "eu-gb", "jp-tok", "au-syd", "us-east", "ca-tor"}

// newWorld starts a cloud with a source of kind and n Secrets Manager backups. Its
// secrets are registered for TestMain's scan when the test ends.
func newWorld(t testing.TB, kind string, n int, o harness.CloudOptions) *world {
	t.Helper()
	w := &world{cloud: harness.NewCloud(t, o), kind: kind, key: "successor-key-" + randomHex(12), typeOf: map[string]string{}}
	w.ca = testpki.MustNewCA("successor test CA")
	w.cloud.AddAPIKey(w.key)
	if kind == fromCM {
		w.source = w.cloud.CM.AddInstance("us-south")
		w.cloud.CM.Grant(w.key, w.source, cmsim.Manager)
	} else {
		w.source = w.cloud.SM.AddInstance("us-south")
		w.cloud.SM.Grant(w.key, w.source, smsim.Manager)
	}
	for i := range n {
		b := w.cloud.SM.AddInstance(smRegions[i])
		w.cloud.SM.Grant(w.key, b, smsim.Manager)
		w.backups = append(w.backups, b)
	}
	t.Cleanup(w.register)
	return w
}

// register hands every secret of the world to the scan.
func (w *world) register() {
	w.mu.Lock()
	keys := slices.Clone(w.keys)
	w.mu.Unlock()
	keys = append(keys, w.cloud.SMPrivateKeys(w.cloud.SM.Instances()...)...)
	keys = append(keys, w.cloud.CMPrivateKeys(w.cloud.CM.Instances()...)...)
	harness.RegisterSecrets([]string{w.key, webhookSecret}, keys, w.cloud.Tokens())
}

func (w *world) remember(keyPEM string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = append(w.keys, keyPEM)
}

// issue mints a certificate for a fresh domain (or the given ones).
func (w *world) issue(domains ...string) *testpki.Issued {
	if len(domains) == 0 {
		w.mu.Lock()
		w.seq++
		domains = []string{fmt.Sprintf("host%d.successor.example", w.seq)}
		w.mu.Unlock()
	}
	iss := w.ca.MustIssue(domains...)
	w.remember(iss.KeyPEM)
	return iss
}

// add puts a certificate of kind into the source and returns its CRN.
func (w *world) add(t testing.TB, name, kind string) string {
	t.Helper()
	return w.addTo(t, w.source, name, kind)
}

// addTo puts a certificate of kind into instance (the source, or any Secrets Manager
// instance of the world) and returns its CRN.
func (w *world) addTo(t testing.TB, instance, name, kind string) string {
	t.Helper()
	var id string
	if strings.Contains(instance, ":cloudcerts:") {
		switch kind {
		case imported:
			iss := w.cloud.CM.CA().MustIssue(fmt.Sprintf("%s-%s.cm.example", name, randomHex(3)))
			w.remember(iss.KeyPEM)
			id = w.cloud.CM.Seed(instance, name, "imported "+name, iss)
		case ordered:
			var err error
			id, err = w.cloud.CM.Order(instance, name, fmt.Sprintf("%s-%s.cm.example", name, randomHex(3)))
			require.NoError(t, err)
		default:
			t.Fatalf("no %s certificate in Certificate Manager", kind)
		}
	} else {
		id = w.smSeed(t, instance, name, kind)
	}
	w.mu.Lock()
	w.typeOf[id] = kind
	w.mu.Unlock()
	return id
}

// smSeed seeds a Secrets Manager certificate of kind and returns its CRN.
func (w *world) smSeed(t testing.TB, instance, name, kind string) string {
	t.Helper()
	iss := w.issue()
	root := w.ca.RootPEM
	seed := smsim.Seed{Name: name}
	switch kind {
	case imported:
		seed.Type, seed.Certificate, seed.PrivateKey, seed.Intermediate = smsim.ImportedCert, iss.CertPEM, iss.KeyPEM, iss.Intermediate
		seed.Description = "imported " + name
	case publicPlain:
		seed.Type, seed.Certificate, seed.PrivateKey, seed.Intermediate = smsim.PublicCert, iss.CertPEM, iss.KeyPEM, iss.Intermediate+root
	case publicBundled:
		seed.Type, seed.Bundled = smsim.PublicCert, true
		seed.Certificate, seed.Intermediate, seed.PrivateKey = iss.CertPEM+iss.Intermediate+root, iss.Intermediate+root, iss.KeyPEM
	case private:
		seed.Type, seed.Certificate, seed.PrivateKey = smsim.PrivateCert, iss.CertPEM, iss.KeyPEM
		seed.IssuingCA, seed.CAChain = iss.Intermediate, []string{iss.Intermediate, root}
	default:
		t.Fatalf("no %s certificate in Secrets Manager", kind)
	}
	sid, err := w.cloud.SM.Seed(instance, seed)
	require.NoError(t, err)
	return secretCRN(instance, sid)
}

// secretCRN is the CRN of secret id of a Secrets Manager instance.
func secretCRN(instance, id string) string { return strings.TrimSuffix(instance, ":") + "secret:" + id }

// secretID is the UUID of a secret CRN.
func secretID(crn string) string { return crn[strings.LastIndex(crn, ":")+1:] }

// instanceOf is the instance CRN of a certificate or secret CRN.
func instanceOf(crn string) string {
	p := strings.Split(crn, ":")
	return strings.Join(p[:8], ":") + "::"
}

// rotate gives the source certificate id a new certificate (a renewal or a reimport).
func (w *world) rotate(t testing.TB, id string) {
	t.Helper()
	inst := instanceOf(id)
	if strings.Contains(inst, ":cloudcerts:") {
		if w.kindOf(id) == ordered {
			require.NoError(t, w.cloud.CM.Renew(id))
		} else {
			c, ok := w.cloud.CM.Get(id)
			require.True(t, ok)
			iss := w.cloud.CM.CA().MustIssue(c.Domains...)
			w.remember(iss.KeyPEM)
			require.NoError(t, w.cloud.CM.Reimport(id, iss.CertPEM, iss.KeyPEM, iss.Intermediate))
		}
		if c, ok := w.cloud.CM.Get(id); ok {
			w.remember(c.Data.PrivKey)
		}
		return
	}
	sec, err := w.cloud.SM.Get(inst, secretID(id))
	require.NoError(t, err)
	cur := sec.Current()
	require.NotNil(t, cur)
	iss := w.issue(cur.CommonName)
	v := smsim.Version{Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM}
	switch {
	case sec.Type == smsim.PrivateCert:
		v.IssuingCA, v.CAChain = iss.Intermediate, []string{iss.Intermediate, w.ca.RootPEM}
	case sec.BundleCerts:
		v.Certificate, v.Intermediate = iss.CertPEM+iss.Intermediate+w.ca.RootPEM, iss.Intermediate+w.ca.RootPEM
	default:
		v.Intermediate = iss.Intermediate
	}
	_, err = w.cloud.SM.Rotate(inst, secretID(id), v)
	require.NoError(t, err)
}

func (w *world) kindOf(id string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.typeOf[id]
}

// remove deletes a source certificate.
func (w *world) remove(t testing.TB, id string) {
	t.Helper()
	if strings.Contains(id, ":cloudcerts:") {
		require.NoError(t, w.cloud.CM.Delete(id))
		return
	}
	require.NoError(t, w.cloud.SM.Delete(instanceOf(id), secretID(id)))
}

// rename gives a source certificate another name, as its owner would.
func (w *world) rename(t testing.TB, id, name string) {
	t.Helper()
	if strings.Contains(id, ":cloudcerts:") {
		c, ok := w.cloud.CM.Get(id)
		require.True(t, ok)
		require.NoError(t, w.cloud.CM.SetName(id, name, c.Description))
		return
	}
	st, body := w.smAs(t, w.key, http.MethodPatch, instanceOf(id), "secrets/"+secretID(id)+"/metadata", map[string]any{"name": name})
	require.Equal(t, http.StatusOK, st, "%s", body)
}

// material is what a certificate holds, as a copy must hold it.
type material struct {
	name  string
	leaf  []byte   // DER
	key   string   // PEM
	chain [][]byte // DER, in order, each certificate once, never the leaf
}

// sourceMaterial reads the current material of a source certificate the way the
// contract says a copy must hold it: the first block of the certificate field is the
// leaf; the chain is the rest of it, then intermediate, then issuing_ca and ca_chain,
// each certificate once.
func (w *world) sourceMaterial(t testing.TB, id string) material {
	t.Helper()
	if strings.Contains(id, ":cloudcerts:") {
		c, ok := w.cloud.CM.Get(id)
		require.True(t, ok, "%s exists", id)
		leaf := certBlocks(t, c.Data.Content)
		require.Len(t, leaf, 1)
		return material{name: c.Name, leaf: leaf[0], key: c.Data.PrivKey, chain: uniqueDER(leaf[0], certBlocks(t, c.Data.Intermediate))}
	}
	sec, err := w.cloud.SM.Get(instanceOf(id), secretID(id))
	require.NoError(t, err)
	cur := sec.Current()
	require.NotNil(t, cur, "%s has a version", id)
	blocks := certBlocks(t, cur.Certificate)
	require.NotEmpty(t, blocks)
	chain := slices.Clone(blocks[1:])
	chain = append(chain, certBlocks(t, cur.Intermediate)...)
	chain = append(chain, certBlocks(t, cur.IssuingCA)...)
	for _, c := range cur.CAChain {
		chain = append(chain, certBlocks(t, c)...)
	}
	return material{name: sec.Name, leaf: blocks[0], key: cur.PrivateKey, chain: uniqueDER(blocks[0], chain)}
}

func uniqueDER(leaf []byte, in [][]byte) [][]byte {
	var out [][]byte
	for _, d := range in {
		if bytes.Equal(d, leaf) || slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, d) }) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func certBlocks(t testing.TB, s string) [][]byte {
	t.Helper()
	var out [][]byte
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		require.Equal(t, "CERTIFICATE", b.Type)
		out = append(out, b.Bytes)
	}
	return out
}

// owner is the prover of the copies' markers (the API key's, no ownership_key).
func (w *world) owner() *match.Owner { return match.NewOwner(w.key) }

// markerOf reads certbackup's marker from a secret's custom_metadata.
func markerOf(s smsim.Secret) *engine.Marker {
	str := func(k string) string { v, _ := s.CustomMetadata[k].(string); return v }
	m := engine.Marker{
		Source: str(secretsmanager.MetadataSource), Origin: str(secretsmanager.MetadataOrigin),
		Proof: str(secretsmanager.MetadataProof), Adopted: str(secretsmanager.MetadataAdopted) == "yes",
	}
	if m.Source == "" {
		return nil
	}
	return &m
}

// proven reports whether s carries a marker that certbackup wrote in instance.
func (w *world) proven(instance string, s smsim.Secret) bool {
	m := markerOf(s)
	if m == nil {
		return false
	}
	c := engine.Certificate{ID: s.CRN, Marker: m}
	if cur := s.Current(); cur != nil {
		c.SerialNumber, c.NotAfter = cur.SerialNumber, cur.NotAfter
	}
	return w.owner().Proven(instance, c)
}

// copies are the secrets of backup that certbackup proves are copies of src.
func (w *world) copies(t testing.TB, backup, src string) []smsim.Secret {
	t.Helper()
	all, err := w.cloud.SM.List(backup)
	require.NoError(t, err)
	var out []smsim.Secret
	for _, s := range all {
		if m := markerOf(s); m != nil && m.Source == src && w.proven(backup, s) {
			out = append(out, s)
		}
	}
	return out
}

// activeSources lists the source certificates that must be in every backup.
func (w *world) activeSources(t testing.TB) []string {
	t.Helper()
	var out []string
	if w.kind == fromCM {
		for _, c := range w.cloud.CM.Snapshot(w.source) {
			if c.Data.Content != "" {
				out = append(out, c.ID)
			}
		}
		return out
	}
	all, err := w.cloud.SM.List(w.source)
	require.NoError(t, err)
	for _, s := range all {
		if s.State == smsim.Active && s.Current() != nil {
			out = append(out, s.CRN)
		}
	}
	return out
}

// assertMirror checks that every backup holds exactly one copy of every active source
// certificate and no other copy of this source: an imported_cert with the source's leaf,
// key and chain (each certificate once), the source's name made valid and unique, the
// certbackup label, and a marker proven in its ID form. It returns the problems found.
func (w *world) assertMirror(t testing.TB) int {
	t.Helper()
	srcs := w.activeSources(t)
	want := map[string]material{}
	for _, id := range srcs {
		want[id] = w.sourceMaterial(t, id)
	}
	problems := 0
	fail := func(format string, args ...any) {
		problems++
		if problems <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, b := range w.backups {
		all, err := w.cloud.SM.List(b)
		require.NoError(t, err)
		byID := map[string][]smsim.Secret{}
		for _, s := range all {
			m := markerOf(s)
			if m == nil || !w.proven(b, s) {
				continue
			}
			if _, ok := want[m.Source]; !ok {
				fail("%s holds %s, a copy of %s, which is not an active source certificate", b, s.CRN, m.Source)
				continue
			}
			byID[m.Source] = append(byID[m.Source], s)
		}
		for id, m := range want {
			cs := byID[id]
			if len(cs) != 1 {
				fail("%s holds %d copies of %s, want exactly one", b, len(cs), id)
				continue
			}
			c := cs[0]
			cur := c.Current()
			if c.Type != smsim.ImportedCert || cur == nil {
				fail("the copy %s of %s is a %s with %d versions, want an imported_cert", c.CRN, id, c.Type, len(c.Versions))
				continue
			}
			got := certBlocks(t, cur.Certificate)
			if len(got) != 1 || !bytes.Equal(got[0], m.leaf) {
				fail("the copy %s of %s does not hold the source's current leaf", c.CRN, id)
			}
			if cur.PrivateKey != m.key {
				fail("the copy %s of %s does not hold the source's private key", c.CRN, id)
			}
			if chain := certBlocks(t, cur.Intermediate); !slices.EqualFunc(chain, m.chain, bytes.Equal) {
				fail("the copy %s of %s holds a chain of %d certificates, want the source's %d, each once and in order", c.CRN, id, len(chain), len(m.chain))
			}
			mk := markerOf(c)
			if name := secretsmanager.FitName(m.name, *mk); c.Name != name {
				fail("the copy %s of %s is named %q, want %q", c.CRN, id, c.Name, name)
			}
			if !slices.Contains(c.Labels, secretsmanager.Label) {
				fail("the copy %s of %s has no %q label", c.CRN, id, secretsmanager.Label)
			}
			if mk.Proof != w.owner().Proof(b, *mk, c.CRN) {
				fail("the copy %s of %s carries its import's proof, not the proof bound to its ID", c.CRN, id)
			}
		}
	}
	return problems
}

func (w *world) requireMirror(t testing.TB) {
	t.Helper()
	if w.assertMirror(t) > 0 {
		t.FailNow()
	}
}

// env is the terminal command's environment for this world's deployment (source and
// backups may be given to swap the roles).
func (w *world) env(extra map[string]string) map[string]string {
	all := append([]string{w.source}, w.backups...)
	env := map[string]string{
		"APIKEY":                  w.key,
		"SOURCE_INSTANCE_CRN":     w.source,
		"BACKUP_INSTANCE_CRNS":    strings.Join(w.backups, ","),
		"IAM_URL":                 w.cloud.IAMURL(),
		"ENDPOINTS":               w.cloud.Endpoints(all...),
		"WEBHOOK_SECRET":          webhookSecret,
		"MAX_REQUESTS_PER_SECOND": w.rate,
	}
	maps.Copy(env, extra)
	for k, v := range env {
		if v == "" {
			delete(env, k)
		}
	}
	return env
}

// command runs the terminal command (cli.Main) with --json and decodes its report.
// Its output is collected for the secrets scan.
func command(t testing.TB, env map[string]string, args ...string) (int, *reconcile.Report, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(append(args, "--json"), &out, &errb, func(k string) string { return env[k] })
	harness.Collect(out.String(), errb.String())
	var rep reconcile.Report
	if out.Len() > 0 {
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep), "exit %d, stderr: %s", code, errb.String())
	}
	return code, &rep, errb.String()
}

// core is the runtime-neutral App over this world, as a runtime builds it from its
// parameters (params over the world's), with fast retries when fast is set. Its log and
// every answer are collected for the scan.
type core struct {
	app *app.App
	log *harness.Buffer
	w   *world
}

func (w *world) core(t testing.TB, mode string, params map[string]any, d app.Deps) *core {
	t.Helper()
	p := map[string]any{
		"mode": mode, "apikey": w.key, "source_instance_crn": w.source,
		"backup_instance_crns": strings.Join(w.backups, ","), "iam_url": w.cloud.IAMURL(),
		"endpoints": w.cloud.Endpoints(append([]string{w.source}, w.backups...)...), "webhook_secret": webhookSecret,
	}
	maps.Copy(p, params)
	cfg, err := config.Parse(p)
	require.NoError(t, err)
	lb := &harness.Buffer{}
	d.Logger = slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, d)
	require.NoError(t, err)
	t.Cleanup(func() { harness.Collect(lb.String()) })
	return &core{app: a, log: lb, w: w}
}

// fastDeps are short retries for the fault tests (the defaults wait 0.5 s to 10 s).
func fastDeps(timeout time.Duration) app.Deps {
	return app.Deps{
		MaxRetries: 3, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 40 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
}

// reconcile runs the core's reconcile in mode and collects its report.
func (c *core) reconcile(t testing.TB, mode string, opts reconcile.Options) *reconcile.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep := c.app.Reconcile(ctx, mode, opts)
	b, _ := json.Marshal(rep)
	harness.Collect(string(b))
	return rep
}

// answer is one /events or /notify answer.
type answer struct {
	Status int
	Body   map[string]any
}

// results are the answer's per-pair results.
func (a answer) results() []map[string]any {
	var out []map[string]any
	rs, _ := a.Body["results"].([]any)
	for _, r := range rs {
		m, _ := r.(map[string]any)
		out = append(out, m)
	}
	return out
}

// handle sends one request to the core as a runtime would and collects the answer.
func (c *core) handle(t testing.TB, path string, headers map[string]string, body []byte) answer {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	r := c.app.Handle(ctx, app.Request{Method: http.MethodPost, Path: path, Headers: h, Body: body, ID: "t-" + randomHex(4)})
	// As a runtime sends it: JSON.
	b, err := json.Marshal(r.Body)
	require.NoError(t, err)
	harness.Collect(string(b))
	var decoded map[string]any
	require.NoError(t, json.Unmarshal(b, &decoded))
	return answer{Status: r.Status, Body: decoded}
}

// events posts an Event Notifications envelope with the right bearer.
func (c *core) events(t testing.TB, body []byte) answer {
	return c.handle(t, app.PathEvents, map[string]string{"Authorization": "Bearer " + webhookSecret}, body)
}

// envelope is what Event Notifications delivers for a Secrets Manager event about
// secrets of source (their CRNs).
func envelope(source, event, secretType string, secrets ...string) []byte {
	list := []map[string]any{}
	for _, s := range secrets {
		list = append(list, map[string]any{"secret_id": s, "secret_name": "n", "secret_group_id": "default"})
	}
	b, _ := json.Marshal(map[string]any{
		"id": "ev-" + randomHex(6), "source": source, "specversion": "1.0",
		"type": "com.ibm.cloud.secrets-manager." + event, "time": time.Now().UTC().Format(time.RFC3339),
		"datacontenttype": "application/json",
		"data":            map[string]any{"event_type": event, "secret_type": secretType, "secrets": list, "source_instance_crn": source},
	})
	return b
}

// notify posts a Certificate Manager notification signed by the source for certs.
func (c *core) notify(t testing.TB, event string, certs ...string) answer {
	t.Helper()
	var list []map[string]any
	for _, id := range certs {
		list = append(list, map[string]any{"cert_crn": id, "name": "n", "domains": "a.example", "expires_on": time.Now().Add(24 * time.Hour).UnixMilli()})
	}
	tok := c.w.cloud.CM.Sign(c.w.source, map[string]any{
		"instance_crn": c.w.source, "event_type": event, "version": 4, "latestVersion": 4,
		"certificate_manager_url": "https://cloud.ibm.com/services/cloudcerts/x", "certificates": list,
	})
	harness.RegisterSecrets(nil, nil, []string{tok})
	body, _ := json.Marshal(map[string]string{"data": tok})
	return c.handle(t, app.PathNotify, map[string]string{"Content-Type": "application/json"}, body)
}

// smAs calls the Secrets Manager API of instance as the holder of key (another
// principal than certbackup, or certbackup's operator by hand), through the cloud's
// IAM, and returns the status and the body.
func (w *world) smAs(t testing.TB, key, method, instance, path string, body any) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {key}}
	resp, err := http.Post(w.cloud.IAMURL()+"/identity/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	var rd io.Reader
	ct := "application/json"
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.cloud.SMURL(instance)+"/api/v2/"+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// opsOn counts the simulator's logged requests to instance by operation.
func opsOn(reqs []smsim.Request, instance string) map[string]int {
	out := map[string]int{}
	for _, q := range reqs {
		if q.Instance == instance {
			out[q.Op]++
		}
	}
	return out
}

// cmOpsOn counts the Certificate Manager simulator's requests to instance by operation.
func cmOpsOn(reqs []cmsim.Request, instance string) map[string]int {
	out := map[string]int{}
	for _, q := range reqs {
		if q.Instance == instance {
			out[q.Op]++
		}
	}
	return out
}

// resetLogs clears both simulators' request logs.
func (w *world) resetLogs() {
	w.cloud.CM.ResetLog()
	w.cloud.SM.ResetLog()
}

// sourceDownloads counts the payload reads of the source since the last resetLogs.
func (w *world) sourceDownloads() int {
	if w.kind == fromCM {
		return w.cloud.CM.Count(cmsim.OpDownload, w.source)
	}
	return w.cloud.SM.Count(smsim.OpGetSecret, w.source)
}

// listingsOnly asserts that since the last resetLogs the deployment only listed: the
// source and every backup, and nothing else (no payload, no metadata, no write).
func (w *world) listingsOnly(t testing.TB, what string) {
	t.Helper()
	for _, b := range w.backups {
		ops := opsOn(w.cloud.SM.Requests(), b)
		delete(ops, smsim.OpListSecrets)
		delete(ops, smsim.OpListGroups)
		assert.Empty(t, ops, "%s: %s got calls other than listings", what, b)
	}
	if w.kind == fromCM {
		ops := cmOpsOn(w.cloud.CM.Requests(), w.source)
		delete(ops, cmsim.OpList)
		assert.Empty(t, ops, "%s: the source got calls other than listings", what)
	} else {
		ops := opsOn(w.cloud.SM.Requests(), w.source)
		delete(ops, smsim.OpListSecrets)
		assert.Empty(t, ops, "%s: the source got calls other than listings", what)
	}
	assert.Zero(t, w.cloud.SM.Writes(""), "%s: nothing written", what)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
