package crn

import (
	"errors"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	inst = "crn:v1:bluemix:public:cloudcerts:us-south:a/30f0a21f77994b9eb414b37300e2ced1:91a17928-da3c-4465-9c4b-f1a6b4dce684::"
	cert = "crn:v1:bluemix:public:cloudcerts:us-south:a/30f0a21f77994b9eb414b37300e2ced1:91a17928-da3c-4465-9c4b-f1a6b4dce684:certificate:071dfc45f85442e0c840196317e1afe6"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		cert    bool
		region  string
	}{
		{name: "instance", in: inst, region: "us-south"},
		{name: "certificate", in: cert, cert: true, region: "us-south"},
		{name: "test event dummy certificate id", in: inst[:len(inst)-1] + "certificate:12345678-9012-3456-7890-123456789012", cert: true, region: "us-south"},
		{name: "staging", in: "crn:v1:staging:public:cloudcerts:eu-de:a/abc:def::", region: "eu-de"},
		{name: "empty", in: "", wantErr: true},
		{name: "other service", in: "crn:v1:bluemix:public:secrets-manager:us-south:a/abc:def::", wantErr: true},
		{name: "no account prefix", in: "crn:v1:bluemix:public:cloudcerts:us-south:abc:def::", wantErr: true},
		{name: "path traversal in id", in: inst[:len(inst)-1] + "certificate:../../x", wantErr: true},
		{name: "slash in id", in: inst[:len(inst)-1] + "certificate:a/b", wantErr: true},
		{name: "space", in: inst[:len(inst)-1] + "certificate:a b", wantErr: true},
		{name: "unicode", in: inst[:len(inst)-1] + "certificate:é", wantErr: true},
		{name: "bad region", in: "crn:v1:bluemix:public:cloudcerts:US_SOUTH:a/abc:def::", wantErr: true},
		{name: "extra field", in: cert + ":x", wantErr: true},
		{name: "half certificate", in: inst[:len(inst)-1] + "certificate:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.True(t, errors.Is(err, ErrInvalid))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.cert, c.IsCertificate())
			assert.Equal(t, tt.region, c.Region)
			assert.Equal(t, tt.in, c.String(), "round trip")
		})
	}
}

func TestBelongs(t *testing.T) {
	other := "crn:v1:bluemix:public:cloudcerts:us-south:a/30f0a21f77994b9eb414b37300e2ced1:00000000-da3c-4465-9c4b-f1a6b4dce684::"
	otherAccount := "crn:v1:bluemix:public:cloudcerts:us-south:a/ffffa21f77994b9eb414b37300e2ced1:91a17928-da3c-4465-9c4b-f1a6b4dce684::"
	assert.True(t, CertificateBelongsTo(cert, inst))
	assert.False(t, CertificateBelongsTo(cert, other))
	assert.False(t, CertificateBelongsTo(cert, otherAccount))
	assert.False(t, CertificateBelongsTo(inst, inst), "an instance is not a certificate")
	assert.False(t, CertificateBelongsTo(cert, cert))
	assert.False(t, CertificateBelongsTo("garbage", inst))

	c, err := ParseCertificate(cert)
	require.NoError(t, err)
	assert.Equal(t, inst, c.InstanceCRN().String())
	assert.Equal(t, cert, c.InstanceCRN().Certificate("071dfc45f85442e0c840196317e1afe6").String())
	_, err = ParseInstance(cert)
	assert.Error(t, err)
	_, err = ParseCertificate(inst)
	assert.Error(t, err)
}

func TestPathEscape(t *testing.T) {
	// The literal form used by a working client against the real service.
	want := "crn%3Av1%3Abluemix%3Apublic%3Acloudcerts%3Aus-south%3Aa%2F30f0a21f77994b9eb414b37300e2ced1%3A91a17928-da3c-4465-9c4b-f1a6b4dce684%3A%3A"
	assert.Equal(t, want, PathEscape(inst))
	back, err := url.PathUnescape(PathEscape(cert))
	require.NoError(t, err)
	assert.Equal(t, cert, back)
	assert.Equal(t, "a%20b%3F%23%25", PathEscape("a b?#%"))
}
