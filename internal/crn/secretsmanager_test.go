package crn

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	smInst   = "crn:v1:bluemix:public:secrets-manager:us-south:a/b3c5e2a8f1d94c6e8a7b2d1f0e9c8b7a:4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d::"
	smSecret = "crn:v1:bluemix:public:secrets-manager:us-south:a/b3c5e2a8f1d94c6e8a7b2d1f0e9c8b7a:4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d:secret:0b5571f7-21e6-42b7-91c5-3f5ac9793a46"
	smPrefix = "crn:v1:bluemix:public:secrets-manager:us-south:a/b3c5e2a8f1d94c6e8a7b2d1f0e9c8b7a:4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d:"
)

func TestParseSecretsManager(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		secret  string
	}{
		{name: "instance", in: smInst},
		{name: "secret", in: smSecret, secret: "0b5571f7-21e6-42b7-91c5-3f5ac9793a46"},
		{name: "secret id upper case", in: smPrefix + "secret:0B5571F7-21E6-42B7-91C5-3F5AC9793A46", secret: "0B5571F7-21E6-42B7-91C5-3F5AC9793A46"},
		{name: "staging", in: "crn:v1:staging:public:secrets-manager:eu-de:a/abc:def::"},
		{name: "empty", in: "", wantErr: true},
		{name: "certificate manager", in: "crn:v1:bluemix:public:cloudcerts:us-south:a/abc:def::", wantErr: true},
		{name: "certificate manager certificate", in: "crn:v1:bluemix:public:cloudcerts:us-south:a/abc:def:certificate:0b5571f721e642b7", wantErr: true},
		{name: "certificate resource type", in: smPrefix + "certificate:0b5571f7-21e6-42b7-91c5-3f5ac9793a46", wantErr: true},
		{name: "secret id not a uuid", in: smPrefix + "secret:0b5571f721e642b791c53f5ac9793a46", wantErr: true},
		{name: "secret id too short", in: smPrefix + "secret:0b5571f7-21e6-42b7-91c5-3f5ac9793a4", wantErr: true},
		{name: "secret id not hex", in: smPrefix + "secret:0b5571f7-21e6-42b7-91c5-3f5ac9793a4g", wantErr: true},
		{name: "path traversal in id", in: smPrefix + "secret:../../x", wantErr: true},
		{name: "slash in id", in: smPrefix + "secret:0b5571f7-21e6-42b7-91c5/3f5ac9793a46", wantErr: true},
		{name: "percent in id", in: smPrefix + "secret:0b5571f7-21e6-42b7-91c5-3f5ac9793a4%2f", wantErr: true},
		{name: "half secret", in: smPrefix + "secret:", wantErr: true},
		{name: "no account prefix", in: "crn:v1:bluemix:public:secrets-manager:us-south:abc:def::", wantErr: true},
		{name: "bad region", in: "crn:v1:bluemix:public:secrets-manager:US_SOUTH:a/abc:def::", wantErr: true},
		{name: "slash in instance", in: "crn:v1:bluemix:public:secrets-manager:us-south:a/abc:d/ef::", wantErr: true},
		{name: "extra field", in: smSecret + ":x", wantErr: true},
		{name: "crn v2", in: strings.Replace(smInst, "crn:v1:", "crn:v2:", 1), wantErr: true},
		{name: "too long", in: smPrefix + strings.Repeat("a", 600), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseSecretsManager(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.True(t, errors.Is(err, ErrInvalid))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.in, c.String(), "round trip")
			assert.Equal(t, tt.secret, c.SecretID)
			assert.Equal(t, tt.secret != "", c.IsSecret())
		})
	}
}

func TestParseSecretsManagerKinds(t *testing.T) {
	_, err := ParseSecretsManagerInstance(smSecret)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = ParseSecret(smInst)
	require.ErrorIs(t, err, ErrInvalid)

	i, err := ParseSecretsManagerInstance(smInst)
	require.NoError(t, err)
	assert.Equal(t, "us-south", i.Region)
	assert.Equal(t, "b3c5e2a8f1d94c6e8a7b2d1f0e9c8b7a", i.Account)
	assert.Equal(t, "4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d", i.Instance)

	s, err := ParseSecret(smSecret)
	require.NoError(t, err)
	assert.Equal(t, smInst, s.InstanceCRN().String())
	assert.Equal(t, smSecret, i.Secret("0b5571f7-21e6-42b7-91c5-3f5ac9793a46").String())
}

func TestSecretBelongsTo(t *testing.T) {
	other := func(old, new string) string { return strings.Replace(smSecret, old, new, 1) }
	tests := []struct {
		name     string
		secret   string
		instance string
		want     bool
	}{
		{name: "same instance", secret: smSecret, instance: smInst, want: true},
		{name: "instance guid in upper case", secret: other("4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d", "4F0AB2C3-8D7E-4A1B-9C6D-5E4F3A2B1C0D"), instance: smInst, want: true},
		{name: "other instance", secret: other("4f0ab2c3", "5f0ab2c3"), instance: smInst},
		{name: "other region", secret: other("us-south", "eu-de"), instance: smInst},
		{name: "other account", secret: other("a/b3c5", "a/c3c5"), instance: smInst},
		{name: "other account case", secret: other("a/b3c5", "a/B3c5"), instance: smInst},
		{name: "other cloud", secret: other("bluemix", "staging"), instance: smInst},
		{name: "other service", secret: other("secrets-manager", "cloudcerts"), instance: smInst},
		{name: "instance is not a secret", secret: smInst, instance: smInst},
		{name: "secret as instance", secret: smSecret, instance: smSecret},
		{name: "malformed", secret: "0b5571f7-21e6-42b7-91c5-3f5ac9793a46", instance: smInst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, SecretBelongsTo(tt.secret, tt.instance))
		})
	}
}

func TestIsSecretID(t *testing.T) {
	for s, want := range map[string]bool{
		"0b5571f7-21e6-42b7-91c5-3f5ac9793a46":   true,
		"0B5571F7-21E6-42B7-91C5-3F5AC9793A46":   true,
		"":                                       false,
		"0b5571f7-21e6-42b7-91c5-3f5ac9793a46\n": false,
		" 0b5571f7-21e6-42b7-91c5-3f5ac9793a46":  false,
		"{0b5571f7-21e6-42b7-91c5-3f5ac9793a46}": false,
		"0b5571f721e642b791c53f5ac9793a46":       false,
		"../../../../../../../../../../../../..": false,
		"0b5571f7-21e6-42b7-91c5-3f5ac9793a4６":   false, // a full-width digit
	} {
		assert.Equal(t, want, IsSecretID(s), "%q", s)
	}
}
