package secretsmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/pemutil"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

func material(iss *testpki.Issued) engine.Material {
	return engine.Material{Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, Intermediate: iss.Intermediate}
}

// TestListAndStates lists every certificate type and state of a source instance.
func TestListAndStates(t *testing.T) {
	f := setup(t)
	now := time.Now()
	soon, err := testCA.Issue(testpki.Options{Domains: []string{"soon.example.com"}, NotAfter: now.Add(time.Hour)})
	require.NoError(t, err)
	imported := testCA.MustIssue("imp.example.com", "www.imp.example.com")
	public := testCA.MustIssue("pub.example.com")
	private := testCA.MustIssue("priv.example.com")

	ids := map[string]string{
		"imported": f.seed(f.src, smsim.Seed{Name: "imported", Description: "the shop", Certificate: imported.CertPEM, Intermediate: imported.Intermediate, PrivateKey: imported.KeyPEM}),
		"public":   f.seed(f.src, smsim.Seed{Type: smsim.PublicCert, Name: "public", Certificate: public.CertPEM + public.Intermediate, Intermediate: public.Intermediate, PrivateKey: public.KeyPEM, Bundled: true}),
		"private":  f.seed(f.src, smsim.Seed{Type: smsim.PrivateCert, Name: "private", Certificate: private.CertPEM, PrivateKey: private.KeyPEM, IssuingCA: testCA.IntermediatePEM, CAChain: []string{testCA.IntermediatePEM, testCA.RootPEM}}),
		"ordered":  f.seed(f.src, smsim.Seed{Type: smsim.PublicCert, Name: "ordered"}),
		"expiring": f.seedImported(f.src, "expiring", soon),
	}
	for name, st := range map[string]smsim.State{"suspended": smsim.Suspended, "deactivated": smsim.Deactivated, "destroyed": smsim.Destroyed} {
		ids[name] = f.seedImported(f.src, name, testCA.MustIssue(name+".example.com"))
		require.NoError(t, f.sim.SetState(f.src, idOf(ids[name]), st))
	}
	// The clock of the client is two hours ahead: "expiring" has expired by then.
	c := f.newClient(keyManager, nil)
	secretsmanager.SetNow(c, func() time.Time { return now.Add(2 * time.Hour) })
	src := secretsmanager.Instance{Client: c, CRN: f.src}

	certs, err := src.List(ctxT(t))
	require.NoError(t, err)
	require.Len(t, certs, len(ids))
	byName := map[string]engine.Certificate{}
	for _, c := range certs {
		byName[c.Name] = c
	}
	tests := []struct {
		name   string
		state  engine.State
		reason string
	}{
		{"imported", engine.Active, ""},
		{"public", engine.Active, ""},
		{"private", engine.Active, ""},
		{"ordered", engine.Pending, "pre_activation"},
		{"expiring", engine.Expired, "expired"},
		{"suspended", engine.Inactive, "suspended"},
		{"deactivated", engine.Inactive, "deactivated"},
		{"destroyed", engine.Inactive, "destroyed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := byName[tc.name]
			require.True(t, ok)
			assert.Equal(t, ids[tc.name], c.ID, "the ID is the secret's CRN")
			assert.Equal(t, tc.state, c.State)
			assert.Contains(t, c.StateReason, tc.reason)
			assert.Nil(t, c.Marker)
		})
	}
	imp := byName["imported"]
	assert.Equal(t, "the shop", imp.Description)
	assert.Equal(t, []string{"imp.example.com", "www.imp.example.com"}, imp.Domains)
	md := pemutil.MetadataOf(imported.Cert)
	assert.True(t, engine.SameSerial(md.SerialNumber, imp.SerialNumber))
	assert.Equal(t, md.Issuer, imp.Issuer)
	assert.True(t, imported.Cert.NotBefore.Equal(imp.NotBefore))
	assert.True(t, imported.Cert.NotAfter.Equal(imp.NotAfter))

	// Listing reads no material.
	for _, id := range ids {
		assert.False(t, f.get(f.src, id).Downloaded)
	}
	// Metadata agrees with the listing and reads no material either.
	got, err := src.Metadata(ctxT(t), ids["imported"])
	require.NoError(t, err)
	assert.Equal(t, imp, *got)
	assert.False(t, f.get(f.src, ids["imported"]).Downloaded)
}

// TestDownload reads each type's material: the leaf, the key, and the chain once.
func TestDownload(t *testing.T) {
	f := setup(t)
	iss := testCA.MustIssue("dl.example.com")
	inter, root := testCA.IntermediatePEM, testCA.RootPEM
	tests := []struct {
		name  string
		seed  smsim.Seed
		chain string
	}{
		{"imported_cert", smsim.Seed{Name: "imp", Certificate: iss.CertPEM, Intermediate: inter, PrivateKey: iss.KeyPEM}, inter},
		{"public_cert bundled", smsim.Seed{Type: smsim.PublicCert, Name: "pub-b", Certificate: iss.CertPEM + inter + root, Intermediate: inter + root, PrivateKey: iss.KeyPEM, Bundled: true}, inter + root},
		{"public_cert", smsim.Seed{Type: smsim.PublicCert, Name: "pub", Certificate: iss.CertPEM, Intermediate: inter, PrivateKey: iss.KeyPEM}, inter},
		{"private_cert", smsim.Seed{Type: smsim.PrivateCert, Name: "priv", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, IssuingCA: inter, CAChain: []string{inter, root}}, inter + root},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := f.seed(f.src, tc.seed)
			d, err := f.source().Download(ctxT(t), id)
			require.NoError(t, err)
			assert.Equal(t, id, d.ID)
			assert.Equal(t, tc.seed.Name, d.Name)
			assert.Equal(t, engine.Active, d.State)
			assert.Equal(t, iss.CertPEM, d.Material.Certificate)
			assert.Equal(t, iss.KeyPEM, d.Material.PrivateKey)
			assert.Equal(t, tc.chain, d.Material.Intermediate)
			_, err = pemutil.ParseBundle(d.Material.Certificate, d.Material.PrivateKey, d.Material.Intermediate)
			require.NoError(t, err)
			assert.True(t, f.get(f.src, id).Downloaded, "reading sets the service's downloaded flag")
		})
	}
	t.Run("not active: an error, no material", func(t *testing.T) {
		for _, st := range []smsim.State{smsim.Suspended, smsim.Deactivated, smsim.Destroyed} {
			id := f.seedImported(f.src, "inactive-"+st.Description(), iss)
			require.NoError(t, f.sim.SetState(f.src, idOf(id), st))
			_, err := f.source().Download(ctxT(t), id)
			require.Error(t, err)
			assert.Contains(t, err.Error(), st.Description())
			assert.Equal(t, engine.ClassPermanent, engine.ClassOf(err))
		}
		id := f.seed(f.src, smsim.Seed{Type: smsim.PublicCert, Name: "pending"})
		_, err := f.source().Download(ctxT(t), id)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "pre_activation")
	})
	t.Run("gone", func(t *testing.T) {
		id := f.seedImported(f.src, "gone", iss)
		require.NoError(t, f.sim.Delete(f.src, idOf(id)))
		_, err := f.source().Download(ctxT(t), id)
		assert.ErrorIs(t, err, engine.ErrNotFound)
		_, err = f.source().Metadata(ctxT(t), id)
		assert.ErrorIs(t, err, engine.ErrNotFound)
	})
	assert.Empty(t, f.leaks(f.logs.String()))
}

// TestTargetLifecycle: Import, Reimport, UpdateLabels and Delete of a copy, as the
// simulator stores them and as List reports them back.
func TestTargetLifecycle(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	bk := f.backup()
	iss := testCA.MustIssue("life.example.com", "www.life.example.com")
	marker := engine.Marker{Source: rootCRN, Proof: "import-proof"}
	want := bk.Fit(engine.Labels{Name: "life cert", Description: "the life cert", Marker: marker})

	imported, err := bk.Import(ctx, engine.Labels{Name: "life cert", Description: "the life cert", Marker: marker}, material(iss))
	require.NoError(t, err)
	assert.Equal(t, want, engine.LabelsOf(*imported))
	assert.Equal(t, "life-cert-"+secretsmanager.NameSuffix(marker), imported.Name)
	assert.Equal(t, engine.Active, imported.State)
	s := f.get(f.bk, imported.ID)
	assert.Equal(t, s.CRN, imported.ID)
	assert.Equal(t, smsim.ImportedCert, s.Type)
	assert.Equal(t, "default", s.GroupID)
	assert.Equal(t, []string{secretsmanager.Label}, s.Labels)
	assert.Equal(t, map[string]any{secretsmanager.MetadataSource: rootCRN, secretsmanager.MetadataProof: "import-proof"}, s.CustomMetadata)
	assert.Equal(t, iss.CertPEM, s.Current().Certificate)
	assert.Equal(t, iss.Intermediate, s.Current().Intermediate)
	assert.Equal(t, iss.KeyPEM, s.Current().PrivateKey)

	// List and Download report exactly what Fit said.
	listed, err := bk.List(ctx)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, want, engine.LabelsOf(listed[0]))
	assert.True(t, engine.SameCertificate(*imported, listed[0]))
	d, err := bk.Download(ctx, imported.ID)
	require.NoError(t, err)
	assert.Equal(t, want, engine.LabelsOf(d.Certificate))
	assert.Equal(t, material(iss), d.Material)

	// Reimport: a new version; the previous one keeps its data.
	renewed := testCA.MustIssue("life.example.com", "www.life.example.com")
	f.sim.ResetLog()
	require.NoError(t, bk.Reimport(ctx, imported.ID, material(renewed)))
	assert.Equal(t, 1, f.sim.Count("", f.bk), "one call: the version")
	re, err := bk.Metadata(ctx, imported.ID)
	require.NoError(t, err)
	assert.True(t, engine.SameSerial(pemutil.SerialString(renewed.Cert), re.SerialNumber))
	assert.Equal(t, want, engine.LabelsOf(*re), "a new version keeps the labels")
	s = f.get(f.bk, imported.ID)
	require.Len(t, s.Versions, 2)
	assert.True(t, s.Versions[0].PayloadAvailable, "the previous version keeps its data")
	assert.Equal(t, iss.CertPEM, s.Versions[0].Certificate)
	assert.Equal(t, renewed.CertPEM, s.Current().Certificate)

	// UpdateLabels: rename, clear the description, a new proof and an origin; the
	// user's own label and metadata stay.
	_, err = f.sim.Seed(f.bk, smsim.Seed{Name: "unrelated", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM})
	require.NoError(t, err)
	moved := engine.Marker{Source: rootCRN, Origin: "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:x:certificate:y", Proof: "id-proof"}
	l2 := engine.Labels{Name: "renamed", Marker: moved}
	require.NoError(t, bk.UpdateLabels(ctx, imported.ID, l2))
	got, err := bk.Metadata(ctx, imported.ID)
	require.NoError(t, err)
	assert.Equal(t, bk.Fit(l2), engine.LabelsOf(*got))
	assert.Equal(t, "", got.Description)
	s = f.get(f.bk, imported.ID)
	assert.Equal(t, "renamed-"+secretsmanager.NameSuffix(moved), s.Name)
	assert.Empty(t, s.Description)
	assert.Len(t, s.Versions, 2, "a metadata update is not a version")

	// An update that changes nothing sends no PATCH.
	patches := f.sim.Count(smsim.OpUpdateMetadata, f.bk)
	require.NoError(t, bk.UpdateLabels(ctx, imported.ID, l2))
	assert.Equal(t, patches, f.sim.Count(smsim.OpUpdateMetadata, f.bk))

	// Back to a marker without origin: the origin key goes.
	l3 := engine.Labels{Name: "renamed", Description: "d", Marker: engine.Marker{Source: rootCRN, Proof: "p3"}}
	require.NoError(t, bk.UpdateLabels(ctx, imported.ID, l3))
	got, err = bk.Metadata(ctx, imported.ID)
	require.NoError(t, err)
	assert.Equal(t, bk.Fit(l3), engine.LabelsOf(*got))

	// Delete, then delete again: ErrNotFound.
	require.NoError(t, bk.Delete(ctx, imported.ID))
	_, err = f.sim.Get(f.bk, idOf(imported.ID))
	assert.ErrorIs(t, err, smsim.ErrNotFound)
	assert.ErrorIs(t, bk.Delete(ctx, imported.ID), engine.ErrNotFound)
	assert.ErrorIs(t, bk.UpdateLabels(ctx, imported.ID, l3), engine.ErrNotFound)
	err = bk.Reimport(ctx, imported.ID, material(renewed))
	assert.ErrorIs(t, err, engine.ErrNotFound)
	assert.Empty(t, f.leaks(f.logs.String()))
}

// TestFitIsWhatIsStored imports copies under awkward names and descriptions: the
// simulator accepts each, and List reports exactly Fit's labels.
func TestFitIsWhatIsStored(t *testing.T) {
	f := setup(t)
	bk := f.backup()
	iss := testCA.MustIssue("fit.example.com")
	tests := []struct {
		name        string
		label       string
		description string
	}{
		{"spaces", "my shop cert", "a description"},
		{"underscores", "my_shop_cert", ""},
		{"unicode", "ünïcödé 証明書", "ünïcödé 証明書 😀"},
		{"one character", "a", "x"},
		{"300 characters", strings.Repeat("n", 300), strings.Repeat("d", 2000)},
		{"emoji description", "emoji", strings.Repeat("😀", 700)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := engine.Labels{Name: tc.label, Description: tc.description,
				Marker: engine.Marker{Source: fmt.Sprintf("crn:v1:bluemix:public:secrets-manager:us-south:a/acct:guid:secret:%d", i)}}
			c, err := bk.Import(ctxT(t), l, material(iss))
			require.NoError(t, err)
			assert.Equal(t, bk.Fit(l), engine.LabelsOf(*c))
			got, err := bk.Metadata(ctxT(t), c.ID)
			require.NoError(t, err)
			assert.Equal(t, bk.Fit(l), engine.LabelsOf(*got))
		})
	}
	t.Run("two sources of the same name, one backup", func(t *testing.T) {
		for _, src := range []string{"crn:a:1", "crn:b:2"} {
			_, err := bk.Import(ctxT(t), engine.Labels{Name: "shop", Marker: engine.Marker{Source: src}}, material(iss))
			require.NoError(t, err)
		}
	})
	t.Run("a name taken by someone else: conflict, not retried, not ambiguous", func(t *testing.T) {
		l := engine.Labels{Name: "taken", Marker: engine.Marker{Source: "crn:c:3"}}
		f.seedImported(f.bk, bk.Fit(l).Name, iss)
		creates := f.sim.Count(smsim.OpCreateSecret, f.bk)
		_, err := bk.Import(ctxT(t), l, material(iss))
		require.Error(t, err)
		assert.ErrorIs(t, err, engine.ErrConflict)
		assert.False(t, engine.IsAmbiguous(err))
		assert.False(t, engine.IsRetryable(err))
		assert.Equal(t, creates+1, f.sim.Count(smsim.OpCreateSecret, f.bk))
	})
}

func TestSecretGroup(t *testing.T) {
	f := setup(t)
	iss := testCA.MustIssue("group.example.com")
	gid, err := f.sim.AddGroup(f.bk, "backups", "certbackup copies")
	require.NoError(t, err)

	t.Run("copies go into the named group, looked up once", func(t *testing.T) {
		c := f.newClient(keyManager, func(cfg *secretsmanager.Config) { cfg.SecretGroup = "backups" })
		bk := secretsmanager.Instance{Client: c, CRN: f.bk}
		require.NoError(t, bk.Check(ctxT(t)))
		for i := range 3 {
			cert, err := bk.Import(ctxT(t), engine.Labels{Name: fmt.Sprintf("g%d", i), Marker: engine.Marker{Source: fmt.Sprintf("crn:g:%d", i)}}, material(iss))
			require.NoError(t, err)
			assert.Equal(t, gid, f.get(f.bk, cert.ID).GroupID)
		}
		assert.Equal(t, 1, f.sim.Count(smsim.OpListGroups, f.bk))
	})
	t.Run("a missing group is a configuration error before any write", func(t *testing.T) {
		c := f.newClient(keyManager, func(cfg *secretsmanager.Config) { cfg.SecretGroup = "no-such-group" })
		bk := secretsmanager.Instance{Client: c, CRN: f.bk}
		writes, creates := f.sim.Writes(f.bk), f.sim.Count(smsim.OpCreateSecret, f.bk)
		err := bk.Check(ctxT(t))
		require.Error(t, err)
		assert.ErrorIs(t, err, secretsmanager.ErrNoSecretGroup)
		assert.Contains(t, err.Error(), `"no-such-group"`)
		assert.Contains(t, err.Error(), f.bk)
		_, err = bk.Import(ctxT(t), engine.Labels{Name: "x", Marker: engine.Marker{Source: "crn:x"}}, material(iss))
		require.Error(t, err)
		assert.ErrorIs(t, err, secretsmanager.ErrNoSecretGroup)
		assert.ErrorIs(t, err, engine.ErrNotSent)
		assert.False(t, engine.IsAmbiguous(err))
		assert.Equal(t, writes, f.sim.Writes(f.bk))
		assert.Equal(t, creates, f.sim.Count(smsim.OpCreateSecret, f.bk), "no create was sent")
		// A source does not need the group.
		require.NoError(t, bk.CheckSource(ctxT(t)))
	})
}

// TestRoles: which operations each role may call (IBM's IAM action table).
func TestRoles(t *testing.T) {
	f := setup(t)
	iss := testCA.MustIssue("roles.example.com")
	renewed := testCA.MustIssue("roles.example.com")
	ops := []struct {
		name string
		role string // least role
		call func(bk secretsmanager.Instance, id string) error
	}{
		{"list", "Reader", func(bk secretsmanager.Instance, _ string) error { _, err := bk.List(ctxT(t)); return err }},
		{"metadata", "Reader", func(bk secretsmanager.Instance, id string) error { _, err := bk.Metadata(ctxT(t), id); return err }},
		{"download", "SecretsReader", func(bk secretsmanager.Instance, id string) error { _, err := bk.Download(ctxT(t), id); return err }},
		{"import", "Writer", func(bk secretsmanager.Instance, _ string) error {
			_, err := bk.Import(ctxT(t), engine.Labels{Name: "r-" + bk.Client.SecretGroup(), Marker: engine.Marker{Source: "crn:r:" + fmt.Sprint(time.Now().UnixNano())}}, material(iss))
			return err
		}},
		{"reimport", "Writer", func(bk secretsmanager.Instance, id string) error {
			err := bk.Reimport(ctxT(t), id, material(renewed))
			return err
		}},
		{"update", "Writer", func(bk secretsmanager.Instance, id string) error {
			return bk.UpdateLabels(ctxT(t), id, engine.Labels{Name: "r-" + fmt.Sprint(time.Now().UnixNano())})
		}},
		{"delete", "Manager", func(bk secretsmanager.Instance, id string) error { return bk.Delete(ctxT(t), id) }},
	}
	rank := map[string]int{"Reader": 1, "SecretsReader": 2, "Writer": 3, "Manager": 4}
	for _, key := range []struct {
		key  string
		role string
	}{{keyNone, ""}, {keyReader, "Reader"}, {keySecretsReader, "SecretsReader"}, {keyWriter, "Writer"}, {keyManager, "Manager"}} {
		bk := secretsmanager.Instance{Client: f.newClient(key.key, nil), CRN: f.bk}
		for _, op := range ops {
			t.Run(fmt.Sprintf("%s/%s", cmpOr(key.role, "none"), op.name), func(t *testing.T) {
				id := f.seedImported(f.bk, fmt.Sprintf("roles-%d", time.Now().UnixNano()), iss)
				err := op.call(bk, id)
				if rank[key.role] >= rank[op.role] {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				assert.ErrorIs(t, err, engine.ErrForbidden)
				assert.False(t, engine.IsRetryable(err))
				assert.Contains(t, err.Error(), "403")
				// The error names the role the call needs (update needs Reader first to read).
				if !(op.name == "update" && key.role == "") {
					assert.Contains(t, err.Error(), "the "+op.role+" role")
				}
				assert.Empty(t, f.leaks(err.Error()))
			})
		}
	}
	t.Run("Check names the instance and the role", func(t *testing.T) {
		bk := secretsmanager.Instance{Client: f.newClient(keyNone, nil), CRN: f.bk}
		err := bk.Check(ctxT(t))
		require.Error(t, err)
		assert.ErrorIs(t, err, engine.ErrForbidden)
		assert.Contains(t, err.Error(), f.bk)
		assert.Contains(t, err.Error(), "Reader")
		assert.Contains(t, err.Error(), "Writer")
		err = bk.CheckSource(ctxT(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "SecretsReader")
		require.NoError(t, secretsmanager.Instance{Client: f.newClient(keyReader, nil), CRN: f.bk}.Check(ctxT(t)))
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestLocked: a locked secret answers 412, reported as ErrLocked and not retried.
func TestLocked(t *testing.T) {
	f := setup(t)
	bk := f.backup()
	iss := testCA.MustIssue("locked.example.com")
	renewed := testCA.MustIssue("locked.example.com")
	id := f.seedImported(f.bk, "locked", iss)
	_, err := f.sim.Rotate(f.bk, idOf(id), smsim.Version{Certificate: renewed.CertPEM, PrivateKey: renewed.KeyPEM, Intermediate: renewed.Intermediate})
	require.NoError(t, err)
	require.NoError(t, f.sim.LockSecret(f.bk, idOf(id), "app-uses-it"))
	tests := []struct {
		name string
		op   string
		call func() error
	}{
		{"update", smsim.OpUpdateMetadata, func() error { return bk.UpdateLabels(ctxT(t), id, engine.Labels{Name: "other"}) }},
		{"delete", smsim.OpDeleteSecret, func() error { return bk.Delete(ctxT(t), id) }},
		{"reimport while the previous version is locked", smsim.OpCreateVersion, func() error {
			err := bk.Reimport(ctxT(t), id, material(testCA.MustIssue("locked.example.com")))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.ErrorIs(t, err, engine.ErrLocked)
			assert.False(t, engine.IsRetryable(err))
			assert.False(t, engine.IsAmbiguous(err))
			assert.Equal(t, engine.ClassLocked, engine.ClassOf(err))
			assert.Contains(t, err.Error(), "412")
			assert.Equal(t, 1, f.sim.Count(tc.op, f.bk), "not retried")
		})
	}
	assert.Len(t, f.get(f.bk, id).Versions, 2)
}

// TestListPaging lists 2500 secrets in pages of 1000 and starts over when the
// instance changes under the listing, so that no secret is skipped.
func TestListPaging(t *testing.T) {
	f := setup(t)
	iss := testCA.MustIssue("many.example.com")
	const n = 2500
	var ids []string
	for i := range n {
		id, err := f.sim.Seed(f.src, smsim.Seed{Name: fmt.Sprintf("many-%04d", i), Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	slices.Sort(ids)

	t.Run("2500 in three pages", func(t *testing.T) {
		f.sim.ResetLog()
		certs, err := f.source().List(ctxT(t))
		require.NoError(t, err)
		require.Len(t, certs, n)
		seen := map[string]bool{}
		for _, c := range certs {
			seen[c.ID] = true
		}
		assert.Len(t, seen, n)
		var reqs []smsim.Request
		for _, r := range f.sim.Requests() {
			if r.Op == smsim.OpListSecrets {
				reqs = append(reqs, r)
			}
		}
		require.Len(t, reqs, 3)
		for _, r := range reqs {
			assert.Contains(t, r.Query, "limit=1000")
			assert.Contains(t, r.Query, "sort=id")
			assert.Contains(t, r.Query, "secret_types=imported_cert%2Cpublic_cert%2Cprivate_cert")
		}
	})

	// A proxy in front of the instance deletes a secret of the first page when the
	// second page is asked for, once: the listing must notice and start over.
	var changes, next atomic.Int32
	var mu sync.Mutex
	deleted := ""
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "offset=999") && changes.Add(-1) >= 0 {
			mu.Lock()
			deleted = ids[10+int(next.Add(1))]
			assert.NoError(t, f.sim.Delete(f.src, deleted))
			mu.Unlock()
		}
		f.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	endpoints := f.srv.Endpoints()
	endpoints[f.src] = strings.Replace(endpoints[f.src], f.srv.URL(), proxy.URL, 1)
	c := f.newClient(keyManager, func(cfg *secretsmanager.Config) { cfg.Endpoints = endpoints })
	src := secretsmanager.Instance{Client: c, CRN: f.src}

	t.Run("a secret removed before the page boundary: started over, none skipped", func(t *testing.T) {
		changes.Store(1)
		f.sim.ResetLog()
		defer changes.Store(0)
		certs, err := src.List(ctxT(t))
		require.NoError(t, err)
		assert.Len(t, certs, n-1)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range certs {
			assert.NotEqual(t, deleted, idOf(c.ID))
		}
		assert.Equal(t, 2+3, f.sim.Count(smsim.OpListSecrets, f.src))
	})
	t.Run("changing on every attempt: a retryable error", func(t *testing.T) {
		changes.Store(3)
		defer changes.Store(0)
		_, err := src.List(ctxT(t))
		require.Error(t, err)
		assert.ErrorIs(t, err, engine.ErrRetryable)
		assert.Contains(t, err.Error(), "changed while they were listed")
	})
}

// TestRateLimit: 100 concurrent calls stay within 20 requests in any second at the
// instance, and a call whose turn would come after its deadline is not sent.
func TestRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about five seconds")
	}
	f := setup(t)
	id := f.seedImported(f.bk, "busy", testCA.MustIssue("busy.example.com"))
	c := f.newClient(keyManager, func(cfg *secretsmanager.Config) { cfg.RequestsPerSecond = 0 }) // the default, 20
	bk := secretsmanager.Instance{Client: c, CRN: f.bk}
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = bk.Metadata(ctxT(t), id)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 100, f.sim.Count(smsim.OpGetMetadata, f.bk))
	peak := f.sim.PeakRate(f.bk, time.Second)
	t.Logf("peak %d requests in one second", peak)
	assert.LessOrEqual(t, peak, secretsmanager.DefaultRequestsPerSecond)
	assert.GreaterOrEqual(t, peak, 15, "the limit is used, not undercut by much")

	t.Run("a turn after the deadline: not sent, retryable", func(t *testing.T) {
		var busy sync.WaitGroup
		defer busy.Wait()
		for range 40 { // book two seconds of turns
			busy.Go(func() { _, _ = bk.Metadata(context.Background(), id) })
		}
		time.Sleep(50 * time.Millisecond)
		before := f.sim.Count(smsim.OpGetMetadata, f.bk)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := bk.Metadata(ctx, id)
		require.Error(t, err)
		assert.ErrorIs(t, err, engine.ErrNotSent)
		assert.True(t, engine.IsRetryable(err))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "rate limit")
		assert.LessOrEqual(t, f.sim.Count(smsim.OpGetMetadata, f.bk)-before, 10)
	})
	t.Run("a 429 holds every call to the instance", func(t *testing.T) {
		c := f.newClient(keyManager, nil)
		bk := secretsmanager.Instance{Client: c, CRN: f.bk}
		f.sim.Inject(smsim.Fault{Op: smsim.OpGetMetadata, Instance: f.bk, Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := bk.Metadata(ctxT(t), id)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
	})
}

// TestProofPatchAfterImportNeedsNoRead: the engine patches a new copy's proof right
// after importing it; the create's answer stands for the read then (one call: the
// patch), once. A later UpdateLabels reads first and keeps a label the user added.
func TestProofPatchAfterImportNeedsNoRead(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	bk := f.backup()
	importing := engine.Labels{Name: "fresh", Description: "d", Marker: engine.Marker{Source: rootCRN, Proof: "import-proof"}}
	imported, err := bk.Import(ctx, importing, material(testCA.MustIssue("fresh.example.com")))
	require.NoError(t, err)

	f.sim.ResetLog()
	byID := engine.LabelsOf(*imported)
	byID.Marker.Proof = "id-proof"
	require.NoError(t, bk.UpdateLabels(ctx, imported.ID, byID))
	assert.Equal(t, 1, f.sim.Count("", f.bk), "the patch alone")
	assert.Equal(t, 1, f.sim.Count(smsim.OpUpdateMetadata, f.bk))
	s := f.get(f.bk, imported.ID)
	assert.Equal(t, "id-proof", s.CustomMetadata[secretsmanager.MetadataProof])
	assert.Equal(t, []string{secretsmanager.Label}, s.Labels)

	// The user labels the copy; the next update reads, and keeps the label.
	userLabels(t, f, imported.ID, []string{secretsmanager.Label, "team-a"})
	f.sim.ResetLog()
	renamed := byID
	renamed.Name = "fresh-2"
	require.NoError(t, bk.UpdateLabels(ctx, imported.ID, renamed))
	assert.Equal(t, 1, f.sim.Count(smsim.OpGetMetadata, f.bk), "not fresh any more: read first")
	s = f.get(f.bk, imported.ID)
	assert.Equal(t, bk.Fit(renamed).Name, s.Name)
	assert.ElementsMatch(t, []string{secretsmanager.Label, "team-a"}, s.Labels)
}

// userLabels sets a secret's labels as its owner would, through the API with the
// Manager key (a JSON merge patch replaces the array).
func userLabels(t *testing.T, f *fixture, secret string, labels []string) {
	t.Helper()
	form := url.Values{"grant_type": {simiam.APIKeyGrant}, "apikey": {keyManager}}
	resp, err := http.PostForm(f.srv.IAMURL()+"/identity/token", form)
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	_ = resp.Body.Close()
	p, err := crn.ParseSecret(secret)
	require.NoError(t, err)
	body, _ := json.Marshal(map[string]any{"labels": labels})
	req, err := http.NewRequest(http.MethodPatch, f.srv.InstanceURL(f.bk)+"/api/v2/secrets/"+p.SecretID+"/metadata", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
