package reconcile

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/pemutil"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

const testAPIKey = "test-api-key-0123456789abcdef"

// world is a simulator with a source instance and backups, and a client for them.
type world struct {
	sim     *cmsim.Simulator
	srv     *httptest.Server
	client  *cms.Client
	ca      *testpki.CA
	source  string
	backups []string
}

var regions = []string{"us-south", "eu-de", "eu-gb", "jp-tok"}

func newWorld(tb testing.TB, nBackups int) *world {
	tb.Helper()
	return newWorldWith(tb, nBackups, cmsim.Options{})
}

func newWorldWith(tb testing.TB, nBackups int, opts cmsim.Options) *world {
	tb.Helper()
	sim, err := cmsim.New(opts)
	require.NoError(tb, err)
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	w := &world{sim: sim, srv: srv, ca: sim.CA()}
	w.source = w.addInstance(regions[0])
	for i := range nBackups {
		w.backups = append(w.backups, w.addInstance(regions[1+i]))
	}
	endpoints := map[string]string{}
	for _, r := range regions {
		endpoints[r] = sim.RegionURL(srv.URL, r)
	}
	w.client, err = cms.New(cms.Config{
		APIKey: testAPIKey, IAMURL: sim.IAMURL(srv.URL), Endpoints: endpoints,
		MaxRetries: 2, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond,
	})
	require.NoError(tb, err)
	return w
}

func (w *world) addInstance(region string) string {
	inst := w.sim.AddInstance(region)
	w.sim.Grant(testAPIKey, inst, cmsim.Manager)
	return inst
}

func (w *world) engine(source string, backups ...string) *replicate.Engine {
	e := &replicate.Engine{Source: cms.Instance{Client: w.client, CRN: source}, Owner: match.NewOwner(testAPIKey)}
	for _, b := range backups {
		e.Targets = append(e.Targets, cms.Instance{Client: w.client, CRN: b})
	}
	return e
}

// main is the engine from the source to every backup.
func (w *world) main() *replicate.Engine { return w.engine(w.source, w.backups...) }

func (w *world) issue(domain string) *testpki.Issued {
	i, err := w.ca.Issue(testpki.Options{Domains: []string{domain, "www." + domain}})
	if err != nil {
		panic(err)
	}
	return i
}

// seed puts n certificates in the source; names are cert-000, cert-001...
func (w *world) seed(n int) []string {
	out := make([]string, n)
	for i := range n {
		d := fmt.Sprintf("cert-%03d.example.com", i)
		out[i] = w.sim.Seed(w.source, fmt.Sprintf("cert-%03d", i), "description of "+d, w.issue(d))
	}
	return out
}

// renew gives a source certificate a new certificate for the same domains.
func (w *world) renew(tb testing.TB, certCRN string) {
	tb.Helper()
	c, ok := w.sim.Get(certCRN)
	require.True(tb, ok)
	i, err := w.ca.Issue(testpki.Options{Domains: c.Domains})
	require.NoError(tb, err)
	require.NoError(tb, w.sim.Reimport(certCRN, i.CertPEM, i.KeyPEM, i.Intermediate))
}

func digest(tb testing.TB, d cmsim.Data) string {
	tb.Helper()
	b, err := pemutil.ParseBundle(d.Content, d.PrivKey, d.Intermediate)
	require.NoError(tb, err)
	return b.Digest()
}

// requireMirror checks that backup holds exactly one copy of every certificate of
// source, with the source's material, name and description plus marker, and that
// the certificates listed in keep are still there as they were.
func (w *world) requireMirror(tb testing.TB, source, backup string, keep ...cmsim.StoredCertificate) {
	tb.Helper()
	copies := map[string][]cmsim.StoredCertificate{}
	for _, c := range w.sim.Snapshot(backup) {
		if src, ok := cms.SourceOf(c.Description); ok {
			copies[src] = append(copies[src], c)
		}
	}
	srcCerts := w.sim.Snapshot(source)
	for _, s := range srcCerts {
		cs := copies[s.ID]
		require.Len(tb, cs, 1, "copies of %s (%s) in %s", s.Name, s.ID, backup)
		c := cs[0]
		require.Equal(tb, s.Name, c.Name)
		require.Equal(tb, copyDescription(testAPIKey, backup, c.ID, s), c.Description)
		require.Equal(tb, digest(tb, s.Data), digest(tb, c.Data), "material of %s", s.Name)
	}
	byID := map[string]cmsim.StoredCertificate{}
	for _, c := range w.sim.Snapshot(backup) {
		byID[c.ID] = c
	}
	for _, k := range keep {
		got, ok := byID[k.ID]
		require.True(tb, ok, "%s (%s) must be left in %s", k.Name, k.ID, backup)
		require.Equal(tb, k.Name, got.Name)
		require.Equal(tb, k.Description, got.Description)
		require.Equal(tb, digest(tb, k.Data), digest(tb, got.Data))
	}
}

// requireQuiet checks that a run over a mirrored world writes and downloads nothing.
func (w *world) requireQuiet(tb testing.TB, e *replicate.Engine, opts Options) *Report {
	tb.Helper()
	w.sim.ResetLog()
	rep := Run(context.Background(), e, opts)
	require.Empty(tb, rep.Failures)
	require.Empty(tb, rep.Deferred)
	require.True(tb, rep.Match)
	require.Zero(tb, w.sim.Writes(""), "a second run writes nothing")
	require.Zero(tb, w.sim.Count(cmsim.OpDownload, ""), "a second run downloads nothing")
	require.Zero(tb, rep.SourceDownloads)
	return rep
}

func stored(tb testing.TB, w *world, certCRN string) cmsim.StoredCertificate {
	tb.Helper()
	c, ok := w.sim.Get(certCRN)
	require.True(tb, ok)
	return c
}

func outcomes(rep *Report) map[Outcome]int { return rep.Counts }

// issuedOf is the material of a stored certificate, to store it again elsewhere (a
// copy made by hand or by a racing activation).
func issuedOf(c cmsim.StoredCertificate) *testpki.Issued {
	leaf, err := pemutil.ParseCertificate(c.Data.Content)
	if err != nil {
		panic(err)
	}
	return &testpki.Issued{Cert: leaf, CertPEM: c.Data.Content, KeyPEM: c.Data.PrivKey, Intermediate: c.Data.Intermediate}
}

// copyDescription is the description certbackup writes on copy copyID ("": an
// import) of stored source certificate c in backup, with the tests' API key's proof.
func copyDescription(key, backup, copyID string, c cmsim.StoredCertificate) string {
	return cms.CopyDescription(match.NewOwner(key), backup, copyID, cms.Certificate{
		ID: c.ID, Name: c.Name, Description: c.Description, SerialNumber: c.SerialNumber, BeginsOn: c.BeginsOn, ExpiresOn: c.ExpiresOn,
	})
}

// seedCopy seeds, in backup, a copy of stored source certificate c as certbackup
// leaves it (its marker proven for the copy's ID), and returns the copy's CRN.
func (w *world) seedCopy(backup, name string, c cmsim.StoredCertificate, issued *testpki.Issued) string {
	id := w.sim.Seed(backup, name, "", issued)
	if err := w.sim.SetName(id, name, copyDescription(testAPIKey, backup, id, c)); err != nil {
		panic(err)
	}
	return id
}
