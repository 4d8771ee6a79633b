package pemutil_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/pemutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBundle(t *testing.T) {
	ca := testpki.MustNewCA("Test")
	other := testpki.MustNewCA("Other")
	a := ca.MustIssue("a.example.com", "www.a.example.com")
	b := ca.MustIssue("b.example.com")
	foreign := other.MustIssue("c.example.com")
	rsaLeaf, err := ca.Issue(testpki.Options{Domains: []string{"rsa.example.com"}, Key: testpki.RSA2048})
	require.NoError(t, err)

	// The same key in PKCS#1 form must be accepted and give the same digest.
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(mustKey(t, rsaLeaf.KeyPEM).(*rsa.PrivateKey))}))

	tests := []struct {
		name        string
		content     string
		key         string
		inter       string
		wantErr     string
		wantInterms int
	}{
		{name: "full bundle", content: a.CertPEM, key: a.KeyPEM, inter: a.Intermediate, wantInterms: 1},
		{name: "no key no intermediate", content: a.CertPEM},
		{name: "CRLF line endings", content: strings.ReplaceAll(a.CertPEM, "\n", "\r\n"), key: a.KeyPEM, inter: a.Intermediate, wantInterms: 1},
		{name: "rsa pkcs1 key", content: rsaLeaf.CertPEM, key: pkcs1},
		{name: "key of another certificate", content: a.CertPEM, key: b.KeyPEM, wantErr: "does not match"},
		{name: "intermediate that did not sign", content: a.CertPEM, key: a.KeyPEM, inter: foreign.Intermediate, wantErr: "does not sign"},
		{name: "garbage", content: "hello", wantErr: "not PEM"},
		{name: "empty", content: "", wantErr: "no PEM"},
		{name: "two certificates", content: a.CertPEM + b.CertPEM, wantErr: "exactly one"},
		{name: "key where certificate expected", content: a.KeyPEM, wantErr: "unexpected PEM block"},
		{name: "garbage key", content: a.CertPEM, key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", wantErr: "malformed"},
		{name: "trailing junk", content: a.CertPEM + "junk", wantErr: "not PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, err := pemutil.ParseBundle(tt.content, tt.key, tt.inter)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.True(t, errors.Is(err, pemutil.ErrInvalid))
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "-----", "an error must never quote PEM input")
				assert.NotContains(t, err.Error(), a.KeyPEM[40:80], "an error must never quote key material")
				return
			}
			require.NoError(t, err)
			assert.Len(t, bundle.Intermediates, tt.wantInterms)
			assert.NotContains(t, bundle.String(), "PRIVATE")
		})
	}

	d1, err := pemutil.ParseBundle(rsaLeaf.CertPEM, rsaLeaf.KeyPEM, "")
	require.NoError(t, err)
	d2, err := pemutil.ParseBundle(rsaLeaf.CertPEM, pkcs1, "")
	require.NoError(t, err)
	assert.Equal(t, d1.Digest(), d2.Digest(), "key encoding must not change the digest")
	d3, err := pemutil.ParseBundle(rsaLeaf.CertPEM, rsaLeaf.KeyPEM, rsaLeaf.Intermediate)
	require.NoError(t, err)
	assert.NotEqual(t, d1.Digest(), d3.Digest(), "the chain is part of the digest")
}

func TestMetadataOf(t *testing.T) {
	ca := testpki.MustNewCA("Meta")
	i := ca.MustIssue("primary.example.com", "alt.example.com", "primary.example.com")
	m := pemutil.MetadataOf(i.Cert)
	assert.Equal(t, []string{"primary.example.com", "alt.example.com"}, m.Domains)
	assert.Equal(t, "Meta Issuing CA", m.Issuer)
	assert.Equal(t, "ecdsa-with-SHA256", m.Algorithm)
	assert.Equal(t, "id-ecPublicKey 256 bit", m.KeyAlgorithm)
	assert.Equal(t, i.Cert.NotAfter.UnixMilli(), m.ExpiresOn)
	assert.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2})*$`, m.SerialNumber)

	r, err := ca.Issue(testpki.Options{Domains: []string{"rsa.example.com"}, Key: testpki.RSA2048})
	require.NoError(t, err)
	assert.Equal(t, "rsaEncryption 2048 bit", pemutil.MetadataOf(r.Cert).KeyAlgorithm)
}

func mustKey(t *testing.T, s string) any {
	k, err := pemutil.ParsePrivateKey(s)
	require.NoError(t, err)
	return k
}
