package secretsmanager_test

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

const ownershipKey = "k-ownership-key-for-the-contract-test-0123456789"

// engineFor is the replication engine from src to the targets, logging into f.logs.
func (f *fixture) engineFor(src engine.Source, targets ...engine.Target) *replicate.Engine {
	return &replicate.Engine{
		Source: src, Targets: targets,
		Owner:  match.NewOwner(ownershipKey),
		Cache:  replicate.NewCopyCache(),
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// only returns the one secret of a backup instance.
func (f *fixture) only(inst string) smsim.Secret {
	f.t.Helper()
	all := mustList(f.t, f.sim, inst)
	require.Len(f.t, all, 1)
	return all[0]
}

// TestEngineContract runs the engine (replicate.Engine, reconcile) from one Secrets
// Manager instance to another over this provider: import, unchanged replay without a
// write, renewal as a new version with the previous kept, rename as a metadata patch,
// failover naming, a locked copy, an import whose answer is lost, and nothing secret in
// any result or log line.
func TestEngineContract(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	src, bk := f.source(), f.backup()
	e := f.engineFor(src, bk)
	owner := match.NewOwner(ownershipKey)
	var results []replicate.PairResult
	replicateOne := func(id string) replicate.PairResult {
		t.Helper()
		rs := e.ReplicateCertificate(ctx, id)
		require.Len(t, rs, 1)
		results = append(results, rs[0])
		return rs[0]
	}

	iss := testCA.MustIssue("shop.example.com", "www.shop.example.com")
	id := f.seed(f.src, smsim.Seed{Name: "shop-example", Description: "the shop", Certificate: iss.CertPEM, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM})

	// Import.
	r := replicateOne(id)
	require.Equal(t, replicate.Imported, r.Outcome, "%+v", r)
	assert.True(t, r.Verified)
	cp := f.only(f.bk)
	shopCopy := cp.CRN
	assert.Equal(t, cp.CRN, r.CopyCRN)
	assert.Equal(t, smsim.ImportedCert, cp.Type)
	assert.Equal(t, "shop-example-"+secretsmanager.NameSuffix(engine.Marker{Source: id}), cp.Name)
	assert.Equal(t, "the shop", cp.Description)
	assert.Equal(t, []string{secretsmanager.Label}, cp.Labels)
	assert.Equal(t, id, cp.CustomMetadata[secretsmanager.MetadataSource])
	listed, err := bk.List(ctx)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.True(t, owner.Proven(f.bk, listed[0]), "the copy's marker is proven")
	assert.Equal(t, owner.Proof(f.bk, *listed[0].Marker, listed[0].ID), listed[0].Marker.Proof, "bound to the copy's ID after the import")

	// Unchanged replay: no write, warm cache or cold.
	writes := f.sim.Writes(f.bk)
	r = replicateOne(id)
	assert.Equal(t, replicate.Unchanged, r.Outcome, "%+v", r)
	assert.True(t, r.Verified)
	cold := f.engineFor(src, bk)
	rs := cold.ReplicateCertificate(ctx, id)
	assert.Equal(t, replicate.Unchanged, rs[0].Outcome, "%+v", rs[0])
	results = append(results, rs...)
	rep := reconcile.Run(ctx, e, reconcile.Options{})
	assert.True(t, rep.OK(), "%+v", rep)
	assert.True(t, rep.Match)
	assert.Equal(t, writes, f.sim.Writes(f.bk), "an unchanged copy is not written")

	// Renewal: a new version of the copy; the previous one keeps its data.
	renewed := testCA.MustIssue("shop.example.com", "www.shop.example.com")
	_, err = f.sim.Rotate(f.src, idOf(id), smsim.Version{Certificate: renewed.CertPEM, Intermediate: renewed.Intermediate, PrivateKey: renewed.KeyPEM})
	require.NoError(t, err)
	r = replicateOne(id)
	assert.Equal(t, replicate.Reimported, r.Outcome, "%+v", r)
	assert.True(t, r.Verified)
	cp = f.only(f.bk)
	require.Len(t, cp.Versions, 2)
	assert.Equal(t, iss.CertPEM, cp.Versions[0].Certificate, "the previous version stays")
	assert.True(t, cp.Versions[0].PayloadAvailable)
	assert.Equal(t, renewed.CertPEM, cp.Current().Certificate)

	// Rename: a metadata patch, no new version; the suffix stays.
	require.NoError(t, src.UpdateLabels(ctx, id, engine.Labels{Name: "shop-renamed", Description: "the new shop"}))
	patches := f.sim.Count(smsim.OpUpdateMetadata, f.bk)
	r = replicateOne(id)
	assert.Equal(t, replicate.Updated, r.Outcome, "%+v", r)
	cp = f.only(f.bk)
	assert.Equal(t, "shop-renamed-"+secretsmanager.NameSuffix(engine.Marker{Source: id}), cp.Name)
	assert.Equal(t, "the new shop", cp.Description)
	assert.Len(t, cp.Versions, 2)
	assert.Equal(t, patches+1, f.sim.Count(smsim.OpUpdateMetadata, f.bk))
	rep = reconcile.Run(ctx, e, reconcile.Options{})
	assert.True(t, rep.OK() && rep.Match, "%+v", rep)

	// Public (bundled) and private certificates are copied as imported certificates
	// with their chain once, and are unchanged on replay.
	pub := testCA.MustIssue("pub.example.com")
	pubID := f.seed(f.src, smsim.Seed{Type: smsim.PublicCert, Name: "pub", Certificate: pub.CertPEM + testCA.IntermediatePEM, Intermediate: testCA.IntermediatePEM, PrivateKey: pub.KeyPEM, Bundled: true})
	priv := testCA.MustIssue("priv.example.com")
	privID := f.seed(f.src, smsim.Seed{Type: smsim.PrivateCert, Name: "priv", Certificate: priv.CertPEM, PrivateKey: priv.KeyPEM, IssuingCA: testCA.IntermediatePEM, CAChain: []string{testCA.IntermediatePEM, testCA.RootPEM}})
	for _, sid := range []string{pubID, privID} {
		r = replicateOne(sid)
		assert.Equal(t, replicate.Imported, r.Outcome, "%+v", r)
		cp := f.get(f.bk, r.CopyCRN)
		assert.Equal(t, smsim.ImportedCert, cp.Type)
		r = replicateOne(sid)
		assert.Equal(t, replicate.Unchanged, r.Outcome, "%+v", r)
	}
	assert.Equal(t, testCA.IntermediatePEM, f.get(f.bk, results[len(results)-3].CopyCRN).Current().Intermediate)
	assert.Equal(t, testCA.IntermediatePEM+testCA.RootPEM, f.get(f.bk, results[len(results)-1].CopyCRN).Current().Intermediate)
	// Not active in the source: skipped with the state as the reason by the reconcile.
	require.NoError(t, f.sim.SetState(f.src, idOf(pubID), smsim.Suspended))
	rep = reconcile.Run(ctx, e, reconcile.Options{})
	var skipped []string
	for _, res := range rep.Results {
		if res.SourceCRN == pubID {
			skipped = append(skipped, res.Message+string(res.Action)+res.Reason)
		}
	}
	require.Len(t, skipped, 1)
	assert.Contains(t, skipped[0], "suspended")
	require.NoError(t, f.sim.SetState(f.src, idOf(pubID), smsim.Active))

	// Failover: the backup becomes the source of a third instance; the copy of the
	// copy is the same logical certificate and keeps its name.
	third := f.sim.AddInstance("jp-tok")
	f.sim.Grant(keyManager, third, smsim.Manager)
	c3 := f.newClient(keyManager, nil)
	failover := f.engineFor(secretsmanager.Instance{Client: c3, CRN: f.bk}, secretsmanager.Instance{Client: c3, CRN: third})
	rs = failover.ReplicateCertificate(ctx, shopCopy)
	require.Equal(t, replicate.Imported, rs[0].Outcome, "%+v", rs[0])
	assert.Equal(t, f.get(f.bk, shopCopy).Name, f.get(third, rs[0].CopyCRN).Name, "a copy of a copy keeps the name")
	results = append(results, rs...)

	// A locked copy: renewal is refused with 412, reported as locked, not retried.
	require.NoError(t, f.sim.LockSecret(f.bk, idOf(shopCopy), "in-use"))
	again := testCA.MustIssue("shop.example.com", "www.shop.example.com")
	_, err = f.sim.Rotate(f.src, idOf(id), smsim.Version{Certificate: again.CertPEM, Intermediate: again.Intermediate, PrivateKey: again.KeyPEM})
	require.NoError(t, err)
	versions := f.sim.Count(smsim.OpCreateVersion, f.bk)
	r = replicateOne(id)
	assert.Equal(t, replicate.Failed, r.Outcome, "%+v", r)
	assert.Equal(t, engine.ClassLocked, r.ErrorClass)
	assert.Contains(t, r.Message, "412")
	assert.Equal(t, versions+1, f.sim.Count(smsim.OpCreateVersion, f.bk))
	require.NoError(t, f.sim.Unlock(f.bk, idOf(shopCopy), "in-use"))

	// An import whose answer is lost is not sent again: the engine finds the copy.
	lost := testCA.MustIssue("lost.example.com")
	lostID := f.seedImported(f.src, "lost", lost)
	creates := f.sim.Count(smsim.OpCreateSecret, f.bk)
	f.sim.Inject(smsim.Fault{Op: smsim.OpCreateSecret, Instance: f.bk, Status: 503, AfterOp: true, Times: 1})
	r = replicateOne(lostID)
	assert.Equal(t, replicate.Imported, r.Outcome, "%+v", r)
	assert.True(t, r.Verified)
	assert.Equal(t, creates+1, f.sim.Count(smsim.OpCreateSecret, f.bk), "one create, never resent")

	// Nothing secret in any result or log line.
	b, err := json.Marshal(results)
	require.NoError(t, err)
	b2, err := json.Marshal(rep)
	require.NoError(t, err)
	for _, text := range []string{string(b), string(b2), f.logs.String()} {
		assert.Empty(t, f.leaks(text, ownershipKey))
	}
}
