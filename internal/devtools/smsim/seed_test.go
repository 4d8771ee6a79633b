package smsim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

func TestSeedValidation(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	other := testCA.MustIssue("b.example.com")
	otherCA := testpki.MustNewCA("Other")
	tests := []struct {
		name string
		in   Seed
		err  error
	}{
		{"imported", Seed{Name: "imported", Certificate: iss.CertPEM}, nil},
		{"public bundled", Seed{Type: PublicCert, Name: "pub-bundled", Bundled: true, Certificate: iss.CertPEM + iss.Intermediate + testCA.RootPEM, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM}, nil},
		{"public not bundled", Seed{Type: PublicCert, Name: "pub-plain", Certificate: iss.CertPEM, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM}, nil},
		{"public pending", Seed{Type: PublicCert, Name: "pub-pending"}, nil},
		{"private", Seed{Type: PrivateCert, Name: "private", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, IssuingCA: iss.Intermediate, CAChain: []string{iss.Intermediate, testCA.RootPEM}}, nil},
		{"unknown type", Seed{Type: "kv", Name: "kv-secret", Certificate: iss.CertPEM}, ErrRejected},
		{"public without key", Seed{Type: PublicCert, Name: "pub-nokey", Certificate: iss.CertPEM}, ErrRejected},
		{"public bundle not bundled", Seed{Type: PublicCert, Name: "pub-bad", Certificate: iss.CertPEM + iss.Intermediate, PrivateKey: iss.KeyPEM}, ErrRejected},
		{"bundle in the wrong order", Seed{Type: PublicCert, Name: "pub-order", Bundled: true, Certificate: iss.CertPEM + testCA.RootPEM + iss.Intermediate, PrivateKey: iss.KeyPEM}, ErrRejected},
		{"private without key", Seed{Type: PrivateCert, Name: "priv-nokey", Certificate: iss.CertPEM, IssuingCA: iss.Intermediate}, ErrRejected},
		{"private with intermediate", Seed{Type: PrivateCert, Name: "priv-inter", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, Intermediate: iss.Intermediate}, ErrRejected},
		{"private wrong issuer", Seed{Type: PrivateCert, Name: "priv-ca", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, IssuingCA: otherCA.IntermediatePEM}, ErrRejected},
		{"private bad chain entry", Seed{Type: PrivateCert, Name: "priv-chain", Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, IssuingCA: iss.Intermediate, CAChain: []string{strings.Repeat("x", 60)}}, ErrRejected},
		{"issuing CA on imported", Seed{Name: "imp-ca", Certificate: iss.CertPEM, IssuingCA: iss.Intermediate}, ErrRejected},
		{"bundled imported", Seed{Name: "imp-bundle", Bundled: true, Certificate: iss.CertPEM}, ErrRejected},
		{"key mismatch", Seed{Name: "mismatch", Certificate: iss.CertPEM, PrivateKey: other.KeyPEM}, ErrRejected},
		{"unknown group", Seed{Name: "nogroup", Certificate: iss.CertPEM, GroupID: randomUUID()}, ErrRejected},
		{"bad metadata", Seed{Name: "badmeta", Certificate: iss.CertPEM, CustomMetadata: map[string]any{"x": strings.Repeat("a", maxMetadataBytes)}}, ErrRejected},
		{"duplicate", Seed{Name: "imported", Certificate: iss.CertPEM}, ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.sim.Seed(f.inst, tc.in)
			if tc.err == nil {
				require.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.err)
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
	_, err := f.sim.Seed("crn:v1:bluemix:public:secrets-manager:us-south:a/x:"+randomUUID()+"::", Seed{Name: "x1", Certificate: iss.CertPEM})
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestRotateAndPendingPublicCertificate(t *testing.T) {
	f := newFixture(t, Options{})
	id, err := f.sim.Seed(f.inst, Seed{Type: PublicCert, Name: "ordered", Bundled: true})
	require.NoError(t, err)
	s, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	assert.Equal(t, PreActivation, s.State)
	assert.Nil(t, s.Current())

	iss := testCA.MustIssue("ordered.example.com")
	_, err = f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM, PrivateKey: iss.KeyPEM, IssuingCA: iss.Intermediate})
	assert.ErrorIs(t, err, ErrRejected, "issuing_ca is for private_cert")
	vid, err := f.sim.Rotate(f.inst, id, Version{Certificate: iss.CertPEM + iss.Intermediate, Intermediate: iss.Intermediate, PrivateKey: iss.KeyPEM})
	require.NoError(t, err)
	require.NoError(t, f.sim.SetState(f.inst, id, Active))
	s, err = f.sim.Get(f.inst, id)
	require.NoError(t, err)
	assert.Equal(t, vid, s.Current().ID)
	assert.Equal(t, "ordered.example.com", s.Current().CommonName)

	r := f.postJSON(keyWriter, "/api/v2/secrets/"+id+"/versions", map[string]any{"certificate": iss.CertPEM})
	assert.Equal(t, 400, r.status, "the API makes versions only of imported certificates")
	_, err = f.sim.Rotate(f.inst, randomUUID(), Version{Certificate: iss.CertPEM})
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestNothingSecretIsPrinted(t *testing.T) {
	f := newFixture(t, Options{})
	iss := testCA.MustIssue("a.example.com")
	id := f.seed("printed", iss)
	s, err := f.sim.Get(f.inst, id)
	require.NoError(t, err)
	require.Contains(t, s.Current().PrivateKey, "PRIVATE KEY", "the Go API gives the payload to tests")
	for _, text := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s),
		fmt.Sprint(s.Versions), fmt.Sprintf("%+v", *s.Current()), fmt.Sprintf("%#v", s.Versions),
	} {
		assert.NotContains(t, text, "PRIVATE KEY")
		assert.NotContains(t, text, "BEGIN CERTIFICATE")
	}

	// Every error answer and log record of a run full of refusals is free of keys and
	// tokens.
	tok := f.token(keyWriter)
	bodies := []any{
		importBody("bad name", iss),
		map[string]any{"secret_type": "imported_cert", "name": "mismatch", "certificate": iss.CertPEM, "private_key": testCA.MustIssue("b.example.com").KeyPEM},
		map[string]any{"secret_type": "imported_cert", "name": "garbage", "certificate": iss.CertPEM, "private_key": iss.KeyPEM[:len(iss.KeyPEM)/2] + "\n-----END PRIVATE KEY-----\n"},
		map[string]any{"secret_type": "imported_cert", "name": "oops", "certificate": iss.KeyPEM},
	}
	for _, b := range bodies {
		r := f.postJSON(keyWriter, "/api/v2/secrets", b)
		require.Equal(t, 400, r.status)
		assert.NotContains(t, string(r.body), "PRIVATE KEY")
		assert.NotContains(t, string(r.body), "MII")
		assert.NotContains(t, string(r.body), tok)
	}
	for _, req := range f.sim.Requests() {
		line := fmt.Sprintf("%+v", req)
		assert.NotContains(t, line, tok)
		assert.NotContains(t, line, keyWriter)
	}
}

func TestInstances(t *testing.T) {
	s := New(Options{Account: "acc1"})
	inst := s.AddInstance("eu-es")
	c, err := ParseInstanceCRN(inst)
	require.NoError(t, err)
	assert.Equal(t, "eu-es", c.Region)
	assert.Equal(t, "acc1", c.Account)
	assert.Equal(t, "crn:v1:bluemix:public:secrets-manager:eu-es:a/acc1:"+c.GUID+":secret:abc", c.SecretCRN("abc"))
	u, err := s.InstanceURL("http://127.0.0.1:1/", inst)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:1/eu-es/"+c.GUID, u)
	assert.Error(t, s.AddInstanceCRN(inst), "twice")
	assert.Equal(t, []string{inst}, s.Instances())
	assert.Panics(t, func() { s.AddInstance("mars-1") })

	for _, bad := range []string{
		"", "crn:v1:bluemix:public:cloudcerts:us-south:a/acc:" + c.GUID + "::",
		"crn:v1:bluemix:public:secrets-manager:us-south:a/acc:" + c.GUID + ":secret:x",
		"crn:v1:bluemix:public:secrets-manager:moon:a/acc:" + c.GUID + "::",
		"crn:v1:bluemix:public:secrets-manager:us-south:acc:" + c.GUID + "::",
		"crn:v1:bluemix:public:secrets-manager:us-south:a/acc:NOT-A-GUID::",
		"crn:v1:staging:public:secrets-manager:us-south:a/acc:" + c.GUID + "::",
	} {
		_, err := ParseInstanceCRN(bad)
		assert.ErrorIs(t, err, ErrInvalidCRN, bad)
	}

	srv, err := Start(Options{})
	require.NoError(t, err)
	defer srv.Close()
	a, b := srv.AddInstance("us-south"), srv.AddInstance("us-east")
	eps := srv.Endpoints()
	assert.Len(t, eps, 2)
	assert.True(t, strings.HasPrefix(eps[a], srv.URL()+"/us-south/"))
	assert.True(t, strings.HasPrefix(eps[b], srv.URL()+"/us-east/"))
	assert.True(t, strings.HasPrefix(srv.URL(), "http://127.0.0.1:"))
}
