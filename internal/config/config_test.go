package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	src = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:11111111-1111-1111-1111-111111111111::"
	bk1 = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct1:22222222-2222-2222-2222-222222222222::"
	bk2 = "crn:v1:bluemix:public:cloudcerts:eu-gb:a/acct1:33333333-3333-3333-3333-333333333333::"
	key = "s3cr3t-api-key-value-XYZ"
)

func base() map[string]any {
	return map[string]any{"apikey": key, "source_instance_crn": src, "backup_instance_crns": bk1}
}

func with(kv ...any) map[string]any {
	p := base()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(p, kv[i].(string))
			continue
		}
		p[kv[i].(string)] = kv[i+1]
	}
	return p
}

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		param  string // the parameter the error must name; "" = valid
		check  func(t *testing.T, c *Config)
	}{
		{name: "minimal", params: base(), check: func(t *testing.T, c *Config) {
			assert.Equal(t, ModeNotify, c.Mode)
			assert.Equal(t, []string{bk1}, c.BackupInstanceCRNs)
			assert.Equal(t, "https://iam.cloud.ibm.com", c.IAMURL)
			assert.Equal(t, DefaultConcurrency, c.Concurrency)
		}},
		{name: "json array string", params: with("backup_instance_crns", `["`+bk1+`", "`+bk2+`"]`), check: func(t *testing.T, c *Config) {
			assert.Equal(t, []string{bk1, bk2}, c.BackupInstanceCRNs)
		}},
		{name: "array value", params: with("backup_instance_crns", []any{bk1, bk2}), check: func(t *testing.T, c *Config) {
			assert.Len(t, c.BackupInstanceCRNs, 2)
		}},
		{name: "comma separated with spaces", params: with("backup_instance_crns", bk1+" , "+bk2+","), check: func(t *testing.T, c *Config) {
			assert.Equal(t, []string{bk1, bk2}, c.BackupInstanceCRNs)
		}},
		{name: "empty optional strings are absent (wskdeploy unset variables)", params: with("backup_apikey", "", "source_public_key", "", "iam_url", "", "endpoints", "", "private_endpoints", "", "mode", ""), check: func(t *testing.T, c *Config) {
			assert.Empty(t, c.BackupAPIKey)
			assert.Nil(t, c.Endpoints)
			assert.False(t, c.PrivateEndpoints)
		}},
		{name: "endpoints object on loopback", params: with("endpoints", map[string]any{"us-south": "http://127.0.0.1:8080/us-south"}), check: func(t *testing.T, c *Config) {
			assert.Equal(t, "http://127.0.0.1:8080/us-south", c.Endpoints["us-south"])
		}},
		{name: "endpoints as JSON string", params: with("endpoints", `{"eu-de":"https://cm.example.com"}`), check: func(t *testing.T, c *Config) {
			assert.Equal(t, "https://cm.example.com", c.Endpoints["eu-de"])
		}},
		{name: "reconcile options", params: with("mode", "reconcile", "prune", "true", "dry_run", true, "concurrency", float64(8)), check: func(t *testing.T, c *Config) {
			assert.True(t, c.Prune)
			assert.True(t, c.DryRun)
			assert.Equal(t, 8, c.Concurrency)
		}},
		{name: "missing apikey", params: with("apikey", nil), param: "apikey"},
		{name: "apikey not a string", params: with("apikey", float64(3)), param: "apikey"},
		{name: "missing source", params: with("source_instance_crn", nil), param: "source_instance_crn"},
		{name: "source is a certificate", params: with("source_instance_crn", src[:len(src)-1]+"certificate:abc"), param: "source_instance_crn"},
		{name: "missing backups", params: with("backup_instance_crns", nil), param: "backup_instance_crns"},
		{name: "empty backups", params: with("backup_instance_crns", "  "), param: "backup_instance_crns"},
		{name: "backup not a crn", params: with("backup_instance_crns", "eu-de"), param: "backup_instance_crns"},
		{name: "backup equals source", params: with("backup_instance_crns", src), param: "backup_instance_crns"},
		{name: "backup twice", params: with("backup_instance_crns", bk1+","+bk1), param: "backup_instance_crns"},
		{name: "backups wrong type", params: with("backup_instance_crns", float64(1)), param: "backup_instance_crns"},
		{name: "bad json array", params: with("backup_instance_crns", `["x"`), param: "backup_instance_crns"},
		{name: "http endpoint off loopback", params: with("endpoints", `{"us-south":"http://cm.example.com"}`), param: "endpoints"},
		{name: "endpoint with credentials", params: with("endpoints", `{"us-south":"https://u:p@cm.example.com"}`), param: "endpoints"},
		{name: "endpoint bad region", params: with("endpoints", `{"US South":"https://cm.example.com"}`), param: "endpoints"},
		{name: "http iam off loopback", params: with("iam_url", "http://iam.example.com"), param: "iam_url"},
		{name: "private_endpoints not boolean", params: with("private_endpoints", "maybe"), param: "private_endpoints"},
		{name: "unknown mode", params: with("mode", "backup"), param: "mode"},
		{name: "public key not PEM", params: with("source_public_key", "abc"), param: "source_public_key"},
		{name: "concurrency above max", params: with("mode", "reconcile", "concurrency", float64(20), "max_concurrency", float64(10)), param: "concurrency"},
		{name: "concurrency above the default max_concurrency", params: with("mode", "reconcile", "concurrency", "17"), param: "concurrency"},
		{name: "concurrency 17 to 64 with max_concurrency raised", params: with("mode", "reconcile", "concurrency", "64", "max_concurrency", "64"), check: func(t *testing.T, c *Config) {
			assert.Equal(t, 64, c.Concurrency)
		}},
		{name: "max_concurrency below the default lowers the default", params: with("mode", "reconcile", "max_concurrency", float64(2)), check: func(t *testing.T, c *Config) {
			assert.Equal(t, 2, c.Concurrency)
		}},
		{name: "max_concurrency above the hard bound", params: with("mode", "reconcile", "max_concurrency", float64(65)), param: "max_concurrency"},
		{name: "concurrency zero", params: with("mode", "reconcile", "concurrency", float64(0)), param: "concurrency"},
		{name: "concurrency fraction", params: with("mode", "verify", "concurrency", 1.5), param: "concurrency"},
		{name: "prune not boolean", params: with("mode", "reconcile", "prune", "sometimes"), param: "prune"},
		{name: "notify ignores the reconcile's switches, which callers may send", params: with("concurrency", "lots", "prune", []any{}, "dry_run", "x"), check: func(t *testing.T, c *Config) {
			assert.False(t, c.Prune)
			assert.False(t, c.DryRun)
			assert.Equal(t, DefaultConcurrency, c.Concurrency)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.params)
			if tt.param == "" {
				require.NoError(t, err)
				tt.check(t, c)
				assert.NotContains(t, c.String(), key)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid))
			var pe *ParamError
			require.True(t, errors.As(err, &pe))
			assert.Equal(t, tt.param, pe.Param)
			assert.Contains(t, err.Error(), tt.param)
			assert.NotContains(t, err.Error(), key, "an error must never quote the API key")
		})
	}
}

// TestConcurrencyOneRule: concurrency is judged by one rule with one message, whatever
// makes it too large; a bad max_concurrency is reported once, not again through
// concurrency.
func TestConcurrencyOneRule(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		want   []string // every error of the run, in order
	}{
		{name: "65 against the default cap", params: with("mode", "reconcile", "concurrency", float64(65)),
			want: []string{"parameter concurrency: must be between 1 and max_concurrency (16; max_concurrency itself is at most 64)"}},
		{name: "17 against the default cap", params: with("mode", "verify", "concurrency", "17"),
			want: []string{"parameter concurrency: must be between 1 and max_concurrency (16; max_concurrency itself is at most 64)"}},
		{name: "65 against the raised cap", params: with("mode", "reconcile", "concurrency", "65", "max_concurrency", "64"),
			want: []string{"parameter concurrency: must be between 1 and max_concurrency (64; max_concurrency itself is at most 64)"}},
		{name: "zero", params: with("mode", "reconcile", "concurrency", "0", "max_concurrency", "32"),
			want: []string{"parameter concurrency: must be between 1 and max_concurrency (32; max_concurrency itself is at most 64)"}},
		{name: "bad cap alone", params: with("mode", "reconcile", "concurrency", "20", "max_concurrency", "100"),
			want: []string{"parameter max_concurrency: must be between 1 and 64"}},
		{name: "bad cap and a concurrency above the hard bound", params: with("mode", "reconcile", "concurrency", "65", "max_concurrency", "0"),
			want: []string{"parameter max_concurrency: must be between 1 and 64", "parameter concurrency: must be between 1 and max_concurrency (64; max_concurrency itself is at most 64)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.params)
			require.Error(t, err)
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var pe *ParamError
				require.True(t, errors.As(e, &pe))
				got = append(got, pe.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAllMissingNamesEach(t *testing.T) {
	_, err := Parse(map[string]any{})
	require.Error(t, err)
	for _, p := range []string{"apikey", "source_instance_crn", "backup_instance_crns"} {
		assert.Contains(t, err.Error(), "parameter "+p)
	}
}

func TestKeyChangesWithSecrets(t *testing.T) {
	a, err := Parse(base())
	require.NoError(t, err)
	b, err := Parse(with("apikey", "another-key"))
	require.NoError(t, err)
	assert.NotEqual(t, a.Key(), b.Key())
	c, err := Parse(with("mode", "reconcile"))
	require.NoError(t, err)
	assert.Equal(t, a.Key(), c.Key(), "the mode does not change which clients a warm container may reuse")
	assert.NotContains(t, a.Key(), key)
}

func TestGoStringHidesKeys(t *testing.T) {
	c, err := Parse(with("backup_apikey", "backup-secret-000"))
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c)} {
		assert.NotContains(t, s, key)
		assert.NotContains(t, s, "backup-secret-000")
	}
}

// TestErrorsNeverQuoteValues: an API key pasted into the wrong parameter never comes
// back in the error, which names the parameter instead.
func TestErrorsNeverQuoteValues(t *testing.T) {
	const pasted = "Zx9-pasted_APIkey_0123456789abcdefXYZ"
	for _, param := range []string{"source_instance_crn", "backup_instance_crns", "iam_url", "endpoints", "mode", "concurrency", "private_endpoints", "source_public_key"} {
		t.Run(param, func(t *testing.T) {
			p := with(param, pasted, "mode", "reconcile")
			if param == "mode" {
				p["mode"] = pasted
			}
			if param == "endpoints" {
				p[param] = `{"` + pasted + `":"https://x.example.com"}`
			}
			_, err := Parse(p)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), pasted)
			assert.NotContains(t, err.Error(), pasted[:12])
			assert.Contains(t, err.Error(), "parameter "+param)
		})
	}
}

func TestSuccessorParameters(t *testing.T) {
	const sm = "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct1:44444444-4444-4444-4444-444444444444::"
	c, err := Parse(with("backup_instance_crns", sm+","+bk1, "endpoints", `{"`+sm+`":"http://127.0.0.1:9/","us-south":"https://x.example.com"}`))
	require.NoError(t, err)
	assert.Equal(t, []string{sm, bk1}, c.BackupInstanceCRNs)
	assert.Equal(t, "default", c.SecretGroup)
	assert.Equal(t, DefaultRequestsPerSecond, c.MaxRequestsPerSec)
	assert.Equal(t, "http://127.0.0.1:9/", c.Endpoints[sm])

	upper := "crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:11111111-1111-1111-1111-111111111111::"
	_, err = Parse(with("backup_instance_crns", strings.ToUpper(upper[:51])+upper[51:]))
	require.Error(t, err, "the source in other case is still the source")
	_, err = Parse(with("backup_instance_crns", sm+","+strings.Replace(sm, "44444444-4444", "44444444-4444", 1)))
	assert.ErrorContains(t, err, "item 2 is the same instance as item 1")
	_, err = Parse(with("webhook_secret", "short"))
	assert.ErrorContains(t, err, "parameter webhook_secret: must be at least 32 characters")
	_, err = Parse(with("secret_group", "x"))
	assert.ErrorContains(t, err, "parameter secret_group")
	_, err = Parse(with("endpoints", `{"not a region":"https://x.example.com"}`))
	assert.ErrorContains(t, err, "neither a region name nor an instance CRN")
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"CM_APIKEY": "old", "APIKEY": "new", "CM_ENDPOINTS": `{"us-south":"https://x.example.com"}`, "SOURCE_INSTANCE_CRN": src, "BACKUP_INSTANCE_CRNS": bk1, "DRY_RUN": "true", "UNRELATED": "x"}
	p := FromEnv(ModeReconcile, func(k string) string { return env[k] })
	assert.Equal(t, "new", p["apikey"], "the contract's name wins over the old one")
	assert.Equal(t, env["CM_ENDPOINTS"], p["endpoints"], "the old name is still accepted")
	c, err := Parse(p)
	require.NoError(t, err)
	assert.True(t, c.DryRun)
	assert.Equal(t, []string{"APIKEY", "CM_APIKEY"}, EnvNames("apikey"))
}
