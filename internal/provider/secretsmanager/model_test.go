package secretsmanager

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/pemutil"
)

var unitCA = testpki.MustNewCA("Secrets Manager Model Test")

func state(n int64) *int64 { return &n }

func TestMaterialOf(t *testing.T) {
	iss := unitCA.MustIssue("a.example.com")
	inter, root := unitCA.IntermediatePEM, unitCA.RootPEM
	chainOf := func(m engine.Material) []string {
		var out []string
		for _, c := range strings.SplitAfter(m.Intermediate, "-----END CERTIFICATE-----\n") {
			if c != "" {
				out = append(out, c)
			}
		}
		return out
	}
	tests := []struct {
		name      string
		v         secretView
		wantChain []string
	}{
		{"imported: intermediate", secretView{SecretType: ImportedCert, Certificate: iss.CertPEM, Intermediate: inter}, []string{inter}},
		{"imported: no chain", secretView{SecretType: ImportedCert, Certificate: iss.CertPEM}, nil},
		{"public, bundled: chain once although intermediate repeats it",
			secretView{SecretType: PublicCert, Certificate: iss.CertPEM + inter + root, Intermediate: inter + root}, []string{inter, root}},
		{"public, not bundled", secretView{SecretType: PublicCert, Certificate: iss.CertPEM, Intermediate: inter}, []string{inter}},
		{"private: issuing_ca then ca_chain without duplicates",
			secretView{SecretType: PrivateCert, Certificate: iss.CertPEM, IssuingCA: inter, CAChain: []string{inter, root}}, []string{inter, root}},
		{"private: issuing_ca only", secretView{SecretType: PrivateCert, Certificate: iss.CertPEM, IssuingCA: inter}, []string{inter}},
		{"windows line endings are normalised", secretView{SecretType: ImportedCert,
			Certificate: strings.ReplaceAll(iss.CertPEM, "\n", "\r\n"), Intermediate: strings.ReplaceAll(inter, "\n", "\r\n")}, []string{inter}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.v.PrivateKey = iss.KeyPEM
			m := materialOf(tc.v)
			assert.Equal(t, iss.CertPEM, m.Certificate)
			assert.Equal(t, iss.KeyPEM, m.PrivateKey)
			assert.Equal(t, tc.wantChain, chainOf(m))
			_, err := pemutil.ParseBundle(m.Certificate, m.PrivateKey, m.Intermediate)
			assert.NoError(t, err)
		})
	}
	t.Run("not PEM: passed on for the engine to refuse", func(t *testing.T) {
		m := materialOf(secretView{Certificate: "garbage", PrivateKey: "k", Intermediate: inter})
		assert.Equal(t, "garbage", m.Certificate)
		assert.Equal(t, inter, m.Intermediate)
		_, err := pemutil.ParseBundle(m.Certificate, m.PrivateKey, m.Intermediate)
		assert.ErrorIs(t, err, pemutil.ErrInvalid)
	})
}

func TestStateOf(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	future, past := now.Add(time.Hour), now.Add(-time.Hour)
	tests := []struct {
		name      string
		v         secretView
		notAfter  time.Time
		want      engine.State
		reasonHas string
	}{
		{"active", secretView{SecretType: ImportedCert, State: state(1)}, future, engine.Active, ""},
		{"active but expired", secretView{SecretType: PublicCert, State: state(1)}, past, engine.Expired, "expired"},
		{"pre-activation", secretView{SecretType: PublicCert, State: state(0), StateDescription: "pre_activation"}, time.Time{}, engine.Pending, "pre_activation"},
		{"suspended", secretView{SecretType: PrivateCert, State: state(2), StateDescription: "suspended"}, future, engine.Inactive, "suspended"},
		{"deactivated, no description", secretView{SecretType: PublicCert, State: state(3)}, future, engine.Inactive, "deactivated"},
		{"destroyed", secretView{SecretType: ImportedCert, State: state(5), StateDescription: "destroyed"}, past, engine.Inactive, "destroyed"},
		{"not a certificate", secretView{SecretType: "arbitrary", State: state(1)}, future, engine.Inactive, `"arbitrary" is not a certificate`},
		{"no state", secretView{SecretType: ImportedCert}, future, engine.Inactive, "no state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := stateOf(tc.v, tc.notAfter, now)
			assert.Equal(t, tc.want, got)
			if tc.reasonHas == "" {
				assert.Empty(t, reason)
			} else {
				assert.Contains(t, reason, tc.reasonHas)
			}
		})
	}
}

func TestToEngineDomainsAndMarker(t *testing.T) {
	v := secretView{
		ID: "id", CRN: "crn:x", Name: "n", SecretType: ImportedCert, State: state(1),
		CommonName: "a.example.com", AltNames: []string{"b.example.com", "a.example.com", "c.example.com"},
		CustomMetadata: map[string]any{MetadataSource: "crn:src", MetadataOrigin: nil, MetadataProof: "p", "user": "kept"},
	}
	c := toEngine(v, v.CRN, time.Now())
	assert.Equal(t, []string{"a.example.com", "b.example.com", "c.example.com"}, c.Domains)
	require.NotNil(t, c.Marker)
	assert.Equal(t, engine.Marker{Source: "crn:src", Proof: "p"}, *c.Marker)
	assert.Nil(t, markerOf(map[string]any{MetadataProof: "p"}), "no source, no marker")
	assert.Nil(t, markerOf(nil))
}

func TestLabelsPatch(t *testing.T) {
	m := engine.Marker{Source: "crn:src", Proof: "p1"}
	cur := secretView{
		Name: "old", Description: "desc", Labels: []string{"team-a", Label},
		CustomMetadata: map[string]any{MetadataSource: "crn:src", MetadataOrigin: "crn:root", MetadataProof: "p0", "owner": "team-a"},
	}
	tests := []struct {
		name string
		cur  secretView
		l    engine.Labels
		want map[string]any
	}{
		{"nothing differs", secretView{Name: "n", Labels: []string{Label}, CustomMetadata: map[string]any{MetadataSource: "crn:src", MetadataProof: "p1"}},
			engine.Labels{Name: "n", Marker: m}, map[string]any{}},
		{"rename, clear description, new proof, origin removed (null), user keys kept", cur,
			engine.Labels{Name: "new", Marker: m},
			map[string]any{"name": "new", "description": nil,
				"custom_metadata": map[string]any{MetadataSource: "crn:src", MetadataProof: "p1", MetadataOrigin: nil, "owner": "team-a"}}},
		{"marker removed (an original): label and keys go, user's stay", cur,
			engine.Labels{Name: "old", Description: "desc"},
			map[string]any{"labels": []string{"team-a"},
				"custom_metadata": map[string]any{"owner": "team-a", MetadataSource: nil, MetadataOrigin: nil, MetadataProof: nil}}},
		{"marker removed, nothing else left: fields cleared",
			secretView{Name: "x", Labels: []string{Label}, CustomMetadata: map[string]any{MetadataSource: "s"}},
			engine.Labels{Name: "x"}, map[string]any{"labels": nil, "custom_metadata": nil}},
		{"adopted copy gets the label and the marker", secretView{Name: "x", Description: "d", Labels: []string{"mine"}},
			engine.Labels{Name: "x", Description: "d", Marker: m},
			map[string]any{"labels": []string{"mine", Label}, "custom_metadata": map[string]any{MetadataSource: "crn:src", MetadataProof: "p1"}}},
		{"a null left by a merge patch counts as absent", secretView{Name: "x", Labels: []string{Label},
			CustomMetadata: map[string]any{MetadataSource: "crn:src", MetadataProof: "p1", MetadataOrigin: nil}},
			engine.Labels{Name: "x", Marker: m}, map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, labelsPatch(tc.cur, tc.l))
		})
	}
}
