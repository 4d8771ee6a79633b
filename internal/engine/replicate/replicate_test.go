package replicate_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const apiKey = "replicate-test-key-0000000000"

type env struct {
	sim     *cmsim.Simulator
	client  *cms.Client
	src     string
	backups []string
}

func newEnv(t *testing.T, nBackups int) *env {
	t.Helper()
	sim, err := cmsim.New(cmsim.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	e := &env{sim: sim, src: sim.AddInstance("us-south")}
	regions := []string{"eu-de", "eu-gb", "jp-tok", "au-syd", "us-east"}
	endpoints := map[string]string{"us-south": sim.RegionURL(srv.URL, "us-south")}
	sim.AddAPIKey(apiKey)
	sim.Grant(apiKey, e.src, cmsim.Writer)
	for i := range nBackups {
		r := regions[i%len(regions)]
		endpoints[r] = sim.RegionURL(srv.URL, r)
		b := sim.AddInstance(r)
		sim.Grant(apiKey, b, cmsim.Manager)
		e.backups = append(e.backups, b)
	}
	e.client, err = cms.New(cms.Config{APIKey: apiKey, IAMURL: sim.IAMURL(srv.URL), Endpoints: endpoints,
		MaxRetries: 2, MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	return e
}

// engine returns a new engine, as a cold container would have (empty cache).
func (e *env) engine() *replicate.Engine {
	eng := &replicate.Engine{Source: cms.Instance{Client: e.client, CRN: e.src}, Cache: replicate.NewCopyCache(), Owner: match.NewOwner(apiKey)}
	for _, b := range e.backups {
		eng.Targets = append(eng.Targets, cms.Instance{Client: e.client, CRN: b})
	}
	return eng
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// copiesOf returns the backup certificates whose marker names source.
func (e *env) copiesOf(backup, source string) []cmsim.StoredCertificate {
	var out []cmsim.StoredCertificate
	for _, c := range e.sim.Snapshot(backup) {
		if cms.IsCopyDescription(c.Description, source) {
			out = append(out, c)
		}
	}
	return out
}

// assertExactCopy checks that backup holds exactly one copy of source, byte for byte.
func (e *env) assertExactCopy(t *testing.T, backup, source string) cmsim.StoredCertificate {
	t.Helper()
	src, ok := e.sim.Get(source)
	require.True(t, ok)
	copies := e.copiesOf(backup, source)
	require.Len(t, copies, 1, "exactly one copy")
	cp := copies[0]
	assert.Equal(t, src.Data.Content, cp.Data.Content)
	assert.Equal(t, src.Data.PrivKey, cp.Data.PrivKey)
	assert.Equal(t, src.Data.Intermediate, cp.Data.Intermediate)
	assert.Equal(t, src.Name, cp.Name)
	assert.Equal(t, copyDescription(apiKey, backup, cp.ID, src), cp.Description)
	return cp
}

func outcomes(rs []replicate.PairResult) []replicate.Outcome {
	var out []replicate.Outcome
	for _, r := range rs {
		out = append(out, r.Outcome)
	}
	return out
}

func TestLifecycleEvents(t *testing.T) {
	e := newEnv(t, 2)
	eng := e.engine()

	// cert_issued: an ordered certificate.
	cert, err := e.sim.Order(e.src, "web", "www.example.com", "example.com")
	require.NoError(t, err)
	res := eng.ReplicateCertificate(ctx(t), cert)
	require.Len(t, res, 2)
	for i, r := range res {
		assert.Equal(t, replicate.Imported, r.Outcome, r.Message)
		assert.True(t, r.Verified)
		assert.Equal(t, e.backups[i], r.Backup)
		cp := e.assertExactCopy(t, e.backups[i], cert)
		assert.Equal(t, cp.ID, r.CopyCRN)
		assert.True(t, cp.Imported)
	}
	first := res[0].CopyCRN

	// cert_renewed: the copy is reimported in place and keeps its previous version.
	require.NoError(t, e.sim.Renew(cert))
	res = eng.ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, []replicate.Outcome{replicate.Reimported, replicate.Reimported}, outcomes(res))
	cp := e.assertExactCopy(t, e.backups[0], cert)
	assert.Equal(t, first, cp.ID, "same copy, updated in place")
	assert.True(t, cp.HasPrevious)

	// cert_reimported: an imported certificate reimported in the source.
	ca := e.sim.CA()
	v1 := ca.MustIssue("api.example.com")
	imp := e.sim.Seed(e.src, "api", "the API", v1)
	res = eng.ReplicateCertificate(ctx(t), imp)
	assert.Equal(t, []replicate.Outcome{replicate.Imported, replicate.Imported}, outcomes(res))
	v2 := ca.MustIssue("api.example.com")
	require.NoError(t, e.sim.Reimport(imp, v2.CertPEM, v2.KeyPEM, v2.Intermediate))
	res = eng.ReplicateCertificate(ctx(t), imp)
	assert.Equal(t, []replicate.Outcome{replicate.Reimported, replicate.Reimported}, outcomes(res))
	cp = e.assertExactCopy(t, e.backups[1], imp)
	assert.True(t, cp.HasPrevious)
	assert.Equal(t, 2, cp.Versions)
}

func TestReplayWritesOnce(t *testing.T) {
	e := newEnv(t, 1)
	eng := e.engine()
	cert := e.sim.Seed(e.src, "web", "", e.sim.CA().MustIssue("www.example.com"))
	for range 10 {
		res := eng.ReplicateCertificate(ctx(t), cert)
		require.Len(t, res, 1)
		assert.NotEqual(t, replicate.Failed, res[0].Outcome, res[0].Message)
	}
	assert.Equal(t, 2, e.sim.Writes(e.backups[0]), "ten replays, one copy: the import and its proof bound to the copy's ID")
	e.assertExactCopy(t, e.backups[0], cert)

	// A cold container (empty cache) replaying it writes nothing either.
	e.sim.ResetLog()
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Unchanged, res[0].Outcome)
	assert.Equal(t, 0, e.sim.Writes(e.backups[0]))
}

func TestCallCounts(t *testing.T) {
	e := newEnv(t, 1)
	bk := e.backups[0]
	eng := e.engine()
	cert := e.sim.Seed(e.src, "web", "", e.sim.CA().MustIssue("www.example.com"))
	calls := func() (src, backup int) {
		for _, r := range e.sim.Requests() {
			switch {
			case r.Op == cmsim.OpIAMToken:
			case r.Instance == e.src:
				src++
			case r.Instance == bk:
				backup++
			}
		}
		return
	}

	e.sim.ResetLog()
	eng.ReplicateCertificate(ctx(t), cert)
	s, b := calls()
	t.Logf("cold, new certificate: source %d, backup %d", s, b)
	assert.Equal(t, 1, s, "one download from the source")
	assert.Equal(t, 5, b, "list, import, list (race check), proof bound to the copy's ID, read back")

	e.sim.ResetLog()
	eng.ReplicateCertificate(ctx(t), cert)
	s, b = calls()
	t.Logf("warm replay: source %d, backup %d", s, b)
	assert.Equal(t, 1, s)
	assert.Equal(t, 1, b, "the cached copy is read once")
	assert.LessOrEqual(t, s+b, 3, "a warm replay costs at most three calls per backup")
	assert.Equal(t, 0, e.sim.Writes(bk))

	e.sim.ResetLog()
	e.engine().ReplicateCertificate(ctx(t), cert)
	s, b = calls()
	t.Logf("cold replay: source %d, backup %d", s, b)
	assert.Equal(t, 1, s)
	assert.Equal(t, 2, b, "list and read the copy")

	next := e.sim.CA().MustIssue("www.example.com")
	require.NoError(t, e.sim.Reimport(cert, next.CertPEM, next.KeyPEM, next.Intermediate))
	e.sim.ResetLog()
	eng.ReplicateCertificate(ctx(t), cert)
	s, b = calls()
	t.Logf("warm renewal: source %d, backup %d", s, b)
	assert.Equal(t, 3, b, "read, reimport, read back")
}

func TestRenameAndSameNames(t *testing.T) {
	e := newEnv(t, 1)
	bk := e.backups[0]
	eng := e.engine()
	ca := e.sim.CA()
	a := e.sim.Seed(e.src, "shared", "first", ca.MustIssue("a.example.com"))
	b := e.sim.Seed(e.src, "shared", "second", ca.MustIssue("b.example.com"))
	eng.ReplicateCertificate(ctx(t), a)
	eng.ReplicateCertificate(ctx(t), b)
	ca1 := e.assertExactCopy(t, bk, a)
	cb1 := e.assertExactCopy(t, bk, b)
	assert.NotEqual(t, ca1.ID, cb1.ID, "two source certificates with one name stay apart")

	require.NoError(t, e.sim.SetName(a, "renamed", "first, renamed"))
	res := eng.ReplicateCertificate(ctx(t), a)
	assert.Equal(t, replicate.Updated, res[0].Outcome, res[0].Message)
	ca2 := e.assertExactCopy(t, bk, a)
	assert.Equal(t, ca1.ID, ca2.ID, "a rename follows the copy")
	assert.Equal(t, "renamed", ca2.Name)
	e.assertExactCopy(t, bk, b)
	assert.Len(t, e.sim.Snapshot(bk), 2)
}

func TestConflictIsNotOverwritten(t *testing.T) {
	e := newEnv(t, 1)
	bk := e.backups[0]
	ca := e.sim.CA()
	theirs := ca.MustIssue("www.example.com")
	foreign := e.sim.Seed(bk, "web", "put here by hand", theirs)
	cert := e.sim.Seed(e.src, "web", "", ca.MustIssue("www.example.com"))

	res := e.engine().ReplicateCertificate(ctx(t), cert)
	require.Len(t, res, 1)
	assert.Equal(t, replicate.Conflict, res[0].Outcome)
	assert.Equal(t, []string{foreign}, res[0].Conflicts)
	assert.True(t, res[0].Verified, "our copy is made beside it")
	e.assertExactCopy(t, bk, cert)
	after, ok := e.sim.Get(foreign)
	require.True(t, ok)
	assert.Equal(t, theirs.CertPEM, after.Data.Content, "the foreign certificate is untouched")
	assert.Equal(t, "put here by hand", after.Description)
	assert.Equal(t, 1, after.Versions)
}

func TestNoIntermediate(t *testing.T) {
	e := newEnv(t, 1)
	i := e.sim.CA().MustIssue("self.example.com")
	i.Intermediate = ""
	cert := e.sim.Seed(e.src, "bare", "", i)
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Imported, res[0].Outcome, res[0].Message)
	cp := e.assertExactCopy(t, e.backups[0], cert)
	assert.Empty(t, cp.Data.Intermediate)
}

func TestOneBackupFails(t *testing.T) {
	e := newEnv(t, 2)
	cert := e.sim.Seed(e.src, "web", "", e.sim.CA().MustIssue("www.example.com"))
	e.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: e.backups[1], Status: 500})
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	require.Len(t, res, 2)
	assert.Equal(t, replicate.Imported, res[0].Outcome)
	assert.Equal(t, replicate.Failed, res[1].Outcome)
	assert.Equal(t, engine.ClassRetryable, res[1].ErrorClass)
	assert.Contains(t, res[1].Message, "status 500")
	assert.Empty(t, e.copiesOf(e.backups[1], cert), "nothing half-written")
	e.assertExactCopy(t, e.backups[0], cert)

	e.sim.ClearFaults()
	res = e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, []replicate.Outcome{replicate.Unchanged, replicate.Imported}, outcomes(res))
}

func TestPermanentFailureAndDeletedSource(t *testing.T) {
	e := newEnv(t, 1)
	cert := e.sim.Seed(e.src, "web", "", e.sim.CA().MustIssue("www.example.com"))
	e.sim.Revoke(apiKey, e.backups[0])
	e.sim.Grant(apiKey, e.backups[0], cmsim.Writer) // not enough to import
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Failed, res[0].Outcome)
	assert.Equal(t, engine.ClassPermanent, res[0].ErrorClass)
	assert.Contains(t, res[0].Message, "403")

	require.NoError(t, e.sim.Delete(cert))
	e.sim.ResetLog()
	res = e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Skipped, res[0].Outcome)
	assert.Equal(t, 0, e.sim.Count("", e.backups[0]), "nothing asked of the backup")
}

func TestRacingActivationsLeaveOneCopy(t *testing.T) {
	e := newEnv(t, 1)
	bk := e.backups[0]
	for round := range 5 {
		cert := e.sim.Seed(e.src, "race", "", e.sim.CA().MustIssue("race.example.com"))
		var wg sync.WaitGroup
		results := make([][]replicate.PairResult, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.engine().ReplicateCertificate(context.Background(), cert)
			}()
		}
		wg.Wait()
		for _, rs := range results {
			assert.NotEqual(t, replicate.Failed, rs[0].Outcome, "round %d: %s", round, rs[0].Message)
		}
		e.assertExactCopy(t, bk, cert)
	}
}

func TestExistingDuplicatesConverge(t *testing.T) {
	e := newEnv(t, 1)
	bk := e.backups[0]
	issued := e.sim.CA().MustIssue("dup.example.com")
	cert := e.sim.Seed(e.src, "dup", "", issued)
	stored, _ := e.sim.Get(cert)
	for range 2 {
		id := e.sim.Seed(bk, "dup", "", issued)
		require.NoError(t, e.sim.SetName(id, "dup", copyDescription(apiKey, bk, id, stored)))
	}
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Unchanged, res[0].Outcome)
	assert.Len(t, res[0].RemovedDuplicates, 1)
	e.assertExactCopy(t, bk, cert)
}

func TestNothingSecretInResults(t *testing.T) {
	e := newEnv(t, 2)
	i := e.sim.CA().MustIssue("s.example.com")
	cert := e.sim.Seed(e.src, "s", "", i)
	e.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: e.backups[1], Status: 400})
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	for _, r := range res {
		s := strings.Join([]string{r.Message, r.CopyCRN, r.Fingerprint, r.ErrorClass}, " ")
		assert.NotContains(t, s, "PRIVATE")
		assert.NotContains(t, s, i.KeyPEM[40:80])
		assert.NotContains(t, s, apiKey)
	}
}

// TestLostImportAnswer: the import was carried out but its answer was lost. The engine
// looks before importing again: one copy, verified, no failure.
func TestLostImportAnswer(t *testing.T) {
	e := newEnv(t, 1)
	cert := e.sim.Seed(e.src, "web", "", e.sim.CA().MustIssue("www.example.com"))
	e.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Drop: true, AfterOp: true, Times: 1})
	res := e.engine().ReplicateCertificate(ctx(t), cert)
	assert.Equal(t, replicate.Imported, res[0].Outcome, res[0].Message)
	assert.True(t, res[0].Verified)
	e.assertExactCopy(t, e.backups[0], cert)
	assert.Equal(t, 1, e.sim.Count(cmsim.OpImport, e.backups[0]), "never sent twice")

	// Every answer lost: still one copy, and it is found.
	cert2 := e.sim.Seed(e.src, "api", "", e.sim.CA().MustIssue("api.example.com"))
	e.sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Drop: true, AfterOp: true})
	res = e.engine().ReplicateCertificate(ctx(t), cert2)
	assert.Equal(t, replicate.Imported, res[0].Outcome, res[0].Message)
	e.assertExactCopy(t, e.backups[0], cert2)
}

// copyDescription is the description certbackup writes on copy copyID ("": an
// import) of stored source certificate c in backup, with the tests' API key's proof.
func copyDescription(key, backup, copyID string, c cmsim.StoredCertificate) string {
	return cms.CopyDescription(match.NewOwner(key), backup, copyID, cms.Certificate{
		ID: c.ID, Name: c.Name, Description: c.Description, SerialNumber: c.SerialNumber, BeginsOn: c.BeginsOn, ExpiresOn: c.ExpiresOn,
	})
}
