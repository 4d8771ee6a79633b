package smsim

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	sm "github.com/IBM/secrets-manager-go-sdk/v2/secretsmanagerv2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// sdkClient is IBM's own client, authenticated by go-sdk-core's IamAuthenticator against
// the simulator's IAM, for the instance of f.
func (f *fixture) sdkClient(key string) *sm.SecretsManagerV2 {
	f.t.Helper()
	auth, err := core.NewIamAuthenticatorBuilder().SetApiKey(key).SetURL(f.srv.IAMURL()).Build()
	require.NoError(f.t, err)
	c, err := sm.NewSecretsManagerV2(&sm.SecretsManagerV2Options{URL: f.base, Authenticator: auth})
	require.NoError(f.t, err)
	return c
}

// status is the HTTP status of an SDK call, also when it failed.
func status(resp *core.DetailedResponse) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func TestSDKImportedCertificateLifecycle(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	c := f.sdkClient(keyManager)

	// Secret groups.
	g, resp, err := c.CreateSecretGroupWithContext(ctx, &sm.CreateSecretGroupOptions{Name: core.StringPtr("backups"), Description: core.StringPtr("copies")})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NotNil(t, g.ID)
	assert.Equal(t, "backups", *g.Name)
	assert.Equal(t, "copies", *g.Description)
	assert.NotNil(t, g.CreatedAt)
	assert.NotNil(t, g.UpdatedAt)
	assert.NotEmpty(t, *g.CreatedBy)
	groups, _, err := c.ListSecretGroupsWithContext(ctx, &sm.ListSecretGroupsOptions{})
	require.NoError(t, err)
	require.Len(t, groups.SecretGroups, 1)
	assert.EqualValues(t, 1, *groups.TotalCount)
	got, _, err := c.GetSecretGroupWithContext(ctx, &sm.GetSecretGroupOptions{ID: g.ID})
	require.NoError(t, err)
	assert.Equal(t, *g.ID, *got.ID)

	// Create an imported certificate with everything.
	iss, err := testCA.Issue(testpki.Options{Domains: []string{"shop.example.com", "www.shop.example.com"}, Key: testpki.RSA2048})
	require.NoError(t, err)
	proto := &sm.ImportedCertificatePrototype{
		SecretType:            core.StringPtr(sm.ImportedCertificatePrototype_SecretType_ImportedCert),
		Name:                  core.StringPtr("shop-example-com"),
		Description:           core.StringPtr("the shop"),
		SecretGroupID:         g.ID,
		Labels:                []string{"certbackup", "source-us-south"},
		Certificate:           core.StringPtr(iss.CertPEM),
		Intermediate:          core.StringPtr(iss.Intermediate),
		PrivateKey:            core.StringPtr(iss.KeyPEM),
		CustomMetadata:        map[string]any{"source_crn": "crn:v1:x", "n": 1},
		VersionCustomMetadata: map[string]any{"source_version": "v1"},
	}
	created, resp, err := c.CreateSecretWithContext(ctx, &sm.CreateSecretOptions{SecretPrototype: proto})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	ic, ok := created.(*sm.ImportedCertificate)
	require.True(t, ok, "%T", created)
	id := *ic.ID
	assert.Equal(t, f.sim.instances[f.inst].crn.SecretCRN(id), *ic.Crn)
	assert.Equal(t, "shop-example-com", *ic.Name)
	assert.Equal(t, "the shop", *ic.Description)
	assert.Equal(t, []string{"certbackup", "source-us-south"}, ic.Labels)
	assert.Equal(t, map[string]any{"source_crn": "crn:v1:x", "n": float64(1)}, ic.CustomMetadata)
	assert.Equal(t, *g.ID, *ic.SecretGroupID)
	assert.Equal(t, "imported_cert", *ic.SecretType)
	assert.EqualValues(t, 1, *ic.State)
	assert.Equal(t, "active", *ic.StateDescription)
	assert.NotEmpty(t, *ic.CreatedBy)
	assert.Equal(t, time.Time(*ic.CreatedAt).UnixMilli(), f.clock.Now().UnixMilli())
	assert.NotNil(t, ic.UpdatedAt)
	assert.EqualValues(t, 1, *ic.VersionsTotal)
	assert.EqualValues(t, 0, *ic.LocksTotal)
	assert.False(t, *ic.Downloaded)
	assert.Equal(t, "shop.example.com", *ic.CommonName)
	assert.Equal(t, []string{"www.shop.example.com"}, ic.AltNames)
	assert.Equal(t, iss.Cert.NotAfter.Unix(), time.Time(*ic.ExpirationDate).Unix())
	assert.Equal(t, testCA.Intermediate.Subject.CommonName, *ic.Issuer)
	assert.Equal(t, "RSA2048", *ic.KeyAlgorithm)
	assert.Equal(t, "ECDSA-SHA256", *ic.SigningAlgorithm)
	assert.Equal(t, pemutil.SerialString(iss.Cert), *ic.SerialNumber)
	assert.Equal(t, iss.Cert.NotBefore.Unix(), time.Time(*ic.Validity.NotBefore).Unix())
	assert.Equal(t, iss.Cert.NotAfter.Unix(), time.Time(*ic.Validity.NotAfter).Unix())
	assert.True(t, *ic.IntermediateIncluded)
	assert.True(t, *ic.PrivateKeyIncluded)
	assert.Nil(t, ic.Certificate, "the create answer carries no payload")
	assert.Nil(t, ic.PrivateKey)

	// More secrets for the pager: four labelled, two not.
	for i, labelled := range []bool{true, false, true, true, false, true} {
		labels := []string{"other"}
		if labelled {
			labels = []string{"certbackup", "source-us-south", "xy"}
		}
		is := testCA.MustIssue("host" + string(rune('a'+i)) + ".example.com")
		_, _, err := c.CreateSecretWithContext(ctx, &sm.CreateSecretOptions{SecretPrototype: &sm.ImportedCertificatePrototype{
			SecretType: core.StringPtr("imported_cert"), Name: core.StringPtr("host-" + string(rune('a'+i))),
			Labels: labels, Certificate: core.StringPtr(is.CertPEM), PrivateKey: core.StringPtr(is.KeyPEM),
		}})
		require.NoError(t, err)
	}
	pager, err := c.NewSecretsPager(&sm.ListSecretsOptions{
		Limit: core.Int64Ptr(2), MatchAllLabels: []string{"certbackup", "source-us-south"},
		SecretTypes: []string{"imported_cert"}, Sort: core.StringPtr("name"),
	})
	require.NoError(t, err)
	all, err := pager.GetAllWithContext(ctx)
	require.NoError(t, err)
	var names []string
	for _, m := range all {
		md, ok := m.(*sm.ImportedCertificateMetadata)
		require.True(t, ok, "%T", m)
		names = append(names, *md.Name)
	}
	assert.Equal(t, []string{"host-a", "host-c", "host-d", "host-f", "shop-example-com"}, names)
	assert.Equal(t, 3, f.sim.Count(OpListSecrets, f.inst), "5 hits at 2 a page")
	page, _, err := c.ListSecretsWithContext(ctx, &sm.ListSecretsOptions{Limit: core.Int64Ptr(2), Offset: core.Int64Ptr(2), Sort: core.StringPtr("-name")})
	require.NoError(t, err)
	assert.EqualValues(t, 7, *page.TotalCount)
	assert.EqualValues(t, 2, *page.Limit)
	assert.EqualValues(t, 2, *page.Offset)
	require.NotNil(t, page.Next)
	require.NotNil(t, page.Previous)
	assert.Contains(t, *page.Next.Href, "offset=4")
	assert.Contains(t, *page.Last.Href, "offset=6")
	assert.NotContains(t, *page.First.Href, "offset=")
	assert.Contains(t, *page.First.Href, "sort=-name")

	// Read with payload: downloaded flips.
	sec, resp, err := c.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &id})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	full := sec.(*sm.ImportedCertificate)
	assert.Equal(t, iss.CertPEM, *full.Certificate)
	assert.Equal(t, iss.Intermediate, *full.Intermediate)
	assert.Equal(t, iss.KeyPEM, *full.PrivateKey)
	assert.True(t, *full.Downloaded)
	md, _, err := c.GetSecretMetadataWithContext(ctx, &sm.GetSecretMetadataOptions{ID: &id})
	require.NoError(t, err)
	meta := md.(*sm.ImportedCertificateMetadata)
	assert.True(t, *meta.Downloaded)
	assert.Equal(t, *ic.SerialNumber, *meta.SerialNumber)

	// A new version (reimport): the previous one keeps its payload.
	iss2 := testCA.MustIssue("shop.example.com", "www.shop.example.com")
	nv, resp, err := c.CreateSecretVersionWithContext(ctx, &sm.CreateSecretVersionOptions{SecretID: &id,
		SecretVersionPrototype: &sm.ImportedCertificateVersionPrototype{
			Certificate: core.StringPtr(iss2.CertPEM), Intermediate: core.StringPtr(iss2.Intermediate),
			PrivateKey:            core.StringPtr(iss2.KeyPEM),
			CustomMetadata:        map[string]any{"source_crn": "crn:v1:x", "n": 2},
			VersionCustomMetadata: map[string]any{"source_version": "v2"},
		}})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	v2 := nv.(*sm.ImportedCertificateVersion)
	assert.Equal(t, "current", *v2.Alias)
	assert.Equal(t, id, *v2.SecretID)
	assert.Equal(t, "shop-example-com", *v2.SecretName)
	assert.Equal(t, "imported_cert", *v2.SecretType)
	assert.Equal(t, *g.ID, *v2.SecretGroupID)
	assert.True(t, *v2.PayloadAvailable)
	assert.False(t, *v2.Downloaded)
	assert.Equal(t, map[string]any{"source_version": "v2"}, v2.VersionCustomMetadata)
	assert.Equal(t, pemutil.SerialString(iss2.Cert), *v2.SerialNumber)
	assert.NotNil(t, v2.Validity)
	assert.NotNil(t, v2.CreatedAt)
	assert.Nil(t, v2.Certificate)

	cur, _, err := c.GetSecretVersionWithContext(ctx, &sm.GetSecretVersionOptions{SecretID: &id, ID: core.StringPtr("current")})
	require.NoError(t, err)
	curV := cur.(*sm.ImportedCertificateVersion)
	assert.Equal(t, iss2.CertPEM, *curV.Certificate)
	assert.Equal(t, iss2.KeyPEM, *curV.PrivateKey)
	assert.True(t, *curV.Downloaded)
	prev, _, err := c.GetSecretVersionWithContext(ctx, &sm.GetSecretVersionOptions{SecretID: &id, ID: core.StringPtr("previous")})
	require.NoError(t, err)
	prevV := prev.(*sm.ImportedCertificateVersion)
	assert.Equal(t, iss.CertPEM, *prevV.Certificate)
	assert.Equal(t, "previous", *prevV.Alias)
	assert.Equal(t, map[string]any{"source_version": "v1"}, prevV.VersionCustomMetadata)

	versions, _, err := c.ListSecretVersionsWithContext(ctx, &sm.ListSecretVersionsOptions{SecretID: &id})
	require.NoError(t, err)
	assert.EqualValues(t, 2, *versions.TotalCount)
	require.Len(t, versions.Versions, 2)
	first := versions.Versions[0].(*sm.ImportedCertificateVersionMetadata)
	assert.Equal(t, *v2.ID, *first.ID, "newest first")
	vm, _, err := c.GetSecretVersionMetadataWithContext(ctx, &sm.GetSecretVersionMetadataOptions{SecretID: &id, ID: prevV.ID})
	require.NoError(t, err)
	assert.Equal(t, "previous", *vm.(*sm.ImportedCertificateVersionMetadata).Alias)

	md, _, err = c.GetSecretMetadataWithContext(ctx, &sm.GetSecretMetadataOptions{ID: &id})
	require.NoError(t, err)
	meta = md.(*sm.ImportedCertificateMetadata)
	assert.EqualValues(t, 2, *meta.VersionsTotal)
	assert.Equal(t, pemutil.SerialString(iss2.Cert), *meta.SerialNumber)
	assert.Equal(t, map[string]any{"source_crn": "crn:v1:x", "n": float64(2)}, meta.CustomMetadata)

	// Metadata update.
	f.clock.Advance(time.Minute)
	patch, err := (&sm.ImportedCertificateMetadataPatch{
		Name: core.StringPtr("shop-renamed"), Description: core.StringPtr("renamed"),
		Labels: []string{"certbackup"}, CustomMetadata: map[string]any{"k": "v"},
	}).AsPatch()
	require.NoError(t, err)
	um, resp, err := c.UpdateSecretMetadataWithContext(ctx, &sm.UpdateSecretMetadataOptions{ID: &id, SecretMetadataPatch: patch})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	upd := um.(*sm.ImportedCertificateMetadata)
	assert.Equal(t, "shop-renamed", *upd.Name)
	assert.Equal(t, "renamed", *upd.Description)
	assert.Equal(t, []string{"certbackup"}, upd.Labels)
	assert.Equal(t, map[string]any{"k": "v"}, upd.CustomMetadata)
	assert.True(t, time.Time(*upd.UpdatedAt).After(time.Time(*upd.CreatedAt)))

	// By name.
	byName, _, err := c.GetSecretByNameTypeWithContext(ctx, &sm.GetSecretByNameTypeOptions{
		SecretType: core.StringPtr("imported_cert"), Name: core.StringPtr("shop-renamed"), SecretGroupName: core.StringPtr("backups")})
	require.NoError(t, err)
	assert.Equal(t, id, *byName.(*sm.ImportedCertificate).ID)

	// Locks: 412 for patch, new version and delete; the SDK reports errors[0].message.
	require.NoError(t, f.sim.LockSecret(f.inst, id, "in-use"))
	_, resp, err = c.UpdateSecretMetadataWithContext(ctx, &sm.UpdateSecretMetadataOptions{ID: &id, SecretMetadataPatch: patch})
	require.Error(t, err)
	assert.Equal(t, http.StatusPreconditionFailed, status(resp))
	assert.Contains(t, err.Error(), "the secret version is locked")
	_, resp, err = c.CreateSecretVersionWithContext(ctx, &sm.CreateSecretVersionOptions{SecretID: &id,
		SecretVersionPrototype: &sm.ImportedCertificateVersionPrototype{Certificate: core.StringPtr(iss.CertPEM), PrivateKey: core.StringPtr(iss.KeyPEM)}})
	require.Error(t, err)
	assert.Equal(t, http.StatusPreconditionFailed, status(resp))
	resp, err = c.DeleteSecretWithContext(ctx, &sm.DeleteSecretOptions{ID: &id})
	require.Error(t, err)
	assert.Equal(t, http.StatusPreconditionFailed, status(resp))
	md, _, err = c.GetSecretMetadataWithContext(ctx, &sm.GetSecretMetadataOptions{ID: &id})
	require.NoError(t, err)
	assert.EqualValues(t, 2, *md.(*sm.ImportedCertificateMetadata).LocksTotal)
	require.NoError(t, f.sim.Unlock(f.inst, id, "in-use"))

	// A group with secrets cannot be deleted.
	resp, err = c.DeleteSecretGroupWithContext(ctx, &sm.DeleteSecretGroupOptions{ID: g.ID})
	require.Error(t, err)
	assert.Equal(t, http.StatusConflict, status(resp))

	// Delete.
	resp, err = c.DeleteSecretWithContext(ctx, &sm.DeleteSecretOptions{ID: &id})
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, resp, err = c.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &id})
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, status(resp))
	resp, err = c.DeleteSecretGroupWithContext(ctx, &sm.DeleteSecretGroupOptions{ID: g.ID})
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func TestSDKPublicAndPrivateCertificates(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	c := f.sdkClient(keySecretsReader)

	pub, err := testCA.Issue(testpki.Options{Domains: []string{"api.example.com", "api2.example.com"}, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)
	pubID, err := f.sim.Seed(f.inst, Seed{Type: PublicCert, Name: "api-example-com", Bundled: true,
		Certificate: pub.CertPEM + pub.Intermediate, Intermediate: pub.Intermediate, PrivateKey: pub.KeyPEM,
		CA: "letsencrypt", DNS: "cis"})
	require.NoError(t, err)
	priv, err := testCA.Issue(testpki.Options{Domains: []string{"internal.example.com"}, NotAfter: time.Now().Add(60 * 24 * time.Hour)})
	require.NoError(t, err)
	privID, err := f.sim.Seed(f.inst, Seed{Type: PrivateCert, Name: "internal-example-com",
		Certificate: priv.CertPEM, PrivateKey: priv.KeyPEM, IssuingCA: priv.Intermediate,
		CAChain: []string{priv.Intermediate, testCA.RootPEM}})
	require.NoError(t, err)
	pending, err := f.sim.Seed(f.inst, Seed{Type: PublicCert, Name: "pending-example-com"})
	require.NoError(t, err)

	s, _, err := c.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &pubID})
	require.NoError(t, err)
	p := s.(*sm.PublicCertificate)
	assert.Equal(t, pub.CertPEM+pub.Intermediate, *p.Certificate)
	assert.Equal(t, pub.Intermediate, *p.Intermediate)
	assert.Equal(t, pub.KeyPEM, *p.PrivateKey)
	assert.True(t, *p.BundleCerts)
	assert.Equal(t, "letsencrypt", *p.Ca)
	assert.Equal(t, "cis", *p.Dns)
	assert.Equal(t, "ECDSA256", *p.KeyAlgorithm)
	assert.Equal(t, "api.example.com", *p.CommonName)
	assert.EqualValues(t, 1, *p.IssuanceInfo.State)
	require.NotNil(t, p.Rotation)
	assert.False(t, *p.Rotation.(*sm.RotationPolicy).AutoRotate)

	s, _, err = c.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &privID})
	require.NoError(t, err)
	q := s.(*sm.PrivateCertificate)
	assert.Equal(t, priv.CertPEM, *q.Certificate)
	assert.Equal(t, priv.Intermediate, *q.IssuingCa)
	assert.Equal(t, []string{priv.Intermediate, testCA.RootPEM}, q.CaChain)
	assert.Equal(t, "simulated-template", *q.CertificateTemplate)
	assert.Equal(t, pemutil.SerialString(priv.Cert), *q.SerialNumber)

	s, _, err = c.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &pending})
	require.NoError(t, err)
	pp := s.(*sm.PublicCertificate)
	assert.EqualValues(t, 0, *pp.State)
	assert.Equal(t, "pre_activation", *pp.StateDescription)
	assert.Nil(t, pp.Certificate)
	assert.False(t, *pp.Downloaded)
	assert.EqualValues(t, 0, *pp.VersionsTotal)

	list, _, err := c.ListSecretsWithContext(ctx, &sm.ListSecretsOptions{SecretTypes: []string{"public_cert", "private_cert"}, Sort: core.StringPtr("expiration_date")})
	require.NoError(t, err)
	require.Len(t, list.Secrets, 3)
	_, isPub := list.Secrets[0].(*sm.PublicCertificateMetadata)
	_, isPriv := list.Secrets[1].(*sm.PrivateCertificateMetadata)
	assert.True(t, isPub && isPriv, "by expiration date: issued earlier first, the pending one last")
	assert.Equal(t, "pending-example-com", *list.Secrets[2].(*sm.PublicCertificateMetadata).Name)

	// A Reader sees metadata but not payloads; the SDK reports the simulator's message.
	r := f.sdkClient(keyReader)
	_, resp, err := r.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &privID})
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, status(resp))
	assert.Contains(t, err.Error(), "SecretsReader role")
	_, _, err = r.GetSecretMetadataWithContext(ctx, &sm.GetSecretMetadataOptions{ID: &privID})
	require.NoError(t, err)
}
