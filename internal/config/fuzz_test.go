package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
)

const (
	fuzzSrc = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:11111111-1111-1111-1111-111111111111::"
	fuzzBk1 = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct1:22222222-2222-2222-2222-222222222222::"
	fuzzBk2 = "crn:v1:bluemix:public:cloudcerts:eu-gb:a/acct1:33333333-3333-3333-3333-333333333333::"
)

// FuzzParse feeds Parse arbitrary JSON objects, decoded as the action receives its
// parameters (encoding/json into map[string]any, numbers as float64) and with
// json.Number (what a UseNumber decoder hands over). Parse must never panic, never
// change its input, and either refuse (an ErrInvalid that quotes neither API key) or
// return a configuration that satisfies every documented invariant: in particular every
// URL the API key or a bearer token will be sent to passes ibmapi.ValidateEndpoint.
func FuzzParse(f *testing.F) {
	base := `"apikey":"k-123","source_instance_crn":"` + fuzzSrc + `","backup_instance_crns":"` + fuzzBk1 + `"`
	for _, s := range []string{
		`{` + base + `}`,
		`{` + base + `,"mode":"reconcile","prune":"true","dry_run":false,"concurrency":"8","max_concurrency":16}`,
		`{` + base + `,"mode":"verify","concurrency":4.5}`,
		`{` + base + `,"concurrency":65}`, `{` + base + `,"concurrency":-1}`, `{` + base + `,"concurrency":1e300}`,
		`{` + base + `,"max_concurrency":"0"}`, `{` + base + `,"concurrency":"0x10"}`,
		`{` + base + `,"iam_url":"http://127.0.0.1:8080","endpoints":{"us-south":"http://localhost:1/x"}}`,
		`{` + base + `,"iam_url":"http://iam.example.com"}`,
		`{` + base + `,"iam_url":"https://user:pass@iam.example.com"}`,
		`{` + base + `,"iam_url":"//iam.example.com"}`,
		`{` + base + `,"endpoints":"{\"us-south\":\"https://x.example\"}"}`,
		`{` + base + `,"endpoints":{"us-south:a/x":"https://x.example"}}`,
		`{` + base + `,"endpoints":{"us-south":"http://[::1]:1"}}`,
		`{` + base + `,"endpoints":{"us-south":"http://0x7f.1"}}`,
		`{` + base + `,"endpoints":{"us-south":42}}`, `{` + base + `,"endpoints":[]}`,
		`{` + base + `,"private_endpoints":"yes","source_public_key":"-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----"}`,
		`{` + base + `,"source_public_key":"not a key"}`,
		`{"apikey":"a key with spaces","backup_apikey":"{\"json\":1}","source_instance_crn":"` + fuzzSrc + `","backup_instance_crns":["` + fuzzBk1 + `","` + fuzzBk2 + `"]}`,
		`{"apikey":"` + fuzzSrc + `","source_instance_crn":"` + fuzzSrc + `x","backup_instance_crns":"` + fuzzSrc + `"}`,
		`{"apikey":12345,"source_instance_crn":["x"],"backup_instance_crns":[1,2]}`,
		`{"apikey":"k","source_instance_crn":"` + fuzzSrc + `","backup_instance_crns":"[\"` + fuzzBk1 + `\",\"` + fuzzBk1 + `\"]"}`,
		`{"apikey":"k","source_instance_crn":"` + fuzzSrc + `","backup_instance_crns":"` + fuzzBk1 + `, ` + fuzzBk2 + `,"}`,
		`{"apikey":"k","source_instance_crn":"crn:v1:bluemix:public:cloudcerts:us-south:a/acct1:1111/../2222::","backup_instance_crns":"` + fuzzBk1 + `"}`,
		`{"mode":"delete-everything"}`, `{"mode":null,"apikey":null}`, `{}`,
		// What the web layer merges from a request body (test/hostile shapes): a token
		// beside parameters the caller tries to set.
		`{"data":"a.b.c",` + base + `,"__ow_method":"post","__ow_headers":{"content-type":"application/json"},"__ow_path":""}`,
		`{"data":{"data":"a.b.c"},"__ow_body":"eyJkYXRhIjoiYS5iLmMifQ==",` + base + `}`,
		`{` + base + `,"concurrency":"lots"}`, `{` + base + `,"dry_run":"maybe","prune":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, useNumber := range []bool{false, true} {
			dec := json.NewDecoder(bytes.NewReader(doc))
			if useNumber {
				dec.UseNumber()
			}
			var params map[string]any
			if dec.Decode(&params) != nil || params == nil {
				return
			}
			checkParse(t, params)
		}
	})
}

func checkParse(t *testing.T, params map[string]any) {
	before, err := json.Marshal(params)
	require.NoError(t, err)
	cfg, err := config.Parse(params)
	after, _ := json.Marshal(params)
	require.Equal(t, string(before), string(after), "Parse changed its input")

	if err != nil {
		require.Nil(t, cfg)
		require.True(t, errors.Is(err, config.ErrInvalid), "error does not wrap ErrInvalid: %v", err)
		var pe *config.ParamError
		require.True(t, errors.As(err, &pe), "error names no parameter: %v", err)
		for _, name := range []string{"apikey", "backup_apikey"} {
			noLeak(t, params, name, func(c *config.Config, e error) string {
				if e == nil {
					return ""
				}
				return e.Error()
			})
		}
		return
	}
	require.NotNil(t, cfg)
	require.Contains(t, []string{config.ModeNotify, config.ModeReconcile, config.ModeVerify}, cfg.Mode)

	for _, k := range []string{cfg.APIKey, cfg.BackupAPIKey} {
		require.Equal(t, strings.TrimSpace(k), k)
		require.False(t, strings.ContainsAny(k, "\"{} \n"), "API key with a character no API key has")
	}
	require.NotEmpty(t, cfg.APIKey)

	_, err = crn.ParseInstance(cfg.SourceInstanceCRN)
	require.NoError(t, err, "source %q", cfg.SourceInstanceCRN)
	require.NotEmpty(t, cfg.BackupInstanceCRNs)
	seen := map[string]bool{}
	for _, b := range cfg.BackupInstanceCRNs {
		_, err := crn.ParseInstance(b)
		require.NoError(t, err, "backup %q", b)
		require.NotEqual(t, cfg.SourceInstanceCRN, b, "the source is its own backup")
		require.False(t, seen[b], "backup %q listed twice", b)
		seen[b] = true
	}

	require.NoError(t, ibmapi.ValidateEndpoint(cfg.IAMURL), "iam_url %q", cfg.IAMURL)
	for region, u := range cfg.Endpoints {
		require.NoError(t, ibmapi.ValidateEndpoint(u), "endpoint %q", u)
		_, err := crn.Parse("crn:v1:bluemix:public:cloudcerts:" + region + ":a/x:y::")
		require.NoError(t, err, "region %q", region)
	}
	require.True(t, cfg.SourcePublicKey == "" || strings.Contains(cfg.SourcePublicKey, "-----BEGIN"))
	require.GreaterOrEqual(t, cfg.Concurrency, 1)
	require.LessOrEqual(t, cfg.Concurrency, config.HardMaxConcurrency)

	// Key is a stable hash: it decides whether a warm container may reuse its clients.
	again, err := config.Parse(params)
	require.NoError(t, err)
	require.Equal(t, cfg.Key(), again.Key())

	for _, name := range []string{"apikey", "backup_apikey"} {
		noLeak(t, params, name, func(c *config.Config, _ error) string {
			if c == nil {
				return ""
			}
			return c.String()
		})
	}
}

// noLeak fails when the text render(Parse(params)) quotes the value of parameter name.
// A short key can occur in the text for other reasons (a word of a message, another
// parameter's value), so the occurrences are compared with a run where the key is
// replaced by a placeholder of the same validity made of a character the key lacks: more
// occurrences with the real key means the key itself was printed.
func noLeak(t *testing.T, params map[string]any, name string, render func(*config.Config, error) string) {
	t.Helper()
	v, ok := params[name].(string)
	key := strings.TrimSpace(v)
	if !ok || len(key) < 3 {
		return
	}
	text := render(config.Parse(params))
	n := strings.Count(text, key)
	if n == 0 {
		return
	}
	alt := maps.Clone(params)
	alt[name] = placeholder(key)
	if m := strings.Count(render(config.Parse(alt)), key); n > m {
		t.Fatalf("the value of %s appears in %q", name, text)
	}
}

func placeholder(key string) string {
	c := "~"
	for _, r := range []string{"~", "^", "|", "!", "@", "%"} {
		if !strings.Contains(key, r) {
			c = r
			break
		}
	}
	if strings.ContainsAny(key, "\"{} \n") {
		return c + "{" + c // invalid the same way
	}
	return strings.Repeat(c, 8)
}
