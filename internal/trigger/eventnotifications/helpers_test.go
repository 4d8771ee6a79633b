package eventnotifications

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The configured source instance of every test, and the instance of the testdata files.
const (
	acct         = "b3c5e2a8f1d94c6e8a7b2d1f0e9c8b7a"
	guid         = "4f0ab2c3-8d7e-4a1b-9c6d-5e4f3a2b1c0d"
	srcCRN       = "crn:v1:bluemix:public:secrets-manager:us-south:a/" + acct + ":" + guid + "::"
	secretPrefix = "crn:v1:bluemix:public:secrets-manager:us-south:a/" + acct + ":" + guid + ":secret:"

	id1 = "0b5571f7-21e6-42b7-91c5-3f5ac9793a46"
	id2 = "6d1f4a7e-93b0-4c8e-a2f5-1e9d7c3b5a08"
	id3 = "c7a2ea20-b2f1-4c94-ae05-319acb5c7427"

	// A value no error may ever contain: hostile values in the tests carry it.
	evil = "evil"
)

// webhookSecret is a valid configured secret (40 visible ASCII characters).
const webhookSecret = "Xq9vT2mLkP8wZr4nB7yH1cD6fJ0aE5gU-s3cr3t_"

func secretCRN(id string) string { return secretPrefix + id }

// replaced returns s with the first old replaced by new; old must be in s.
func replaced(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic(fmt.Sprintf("%q not in %q", old, s))
	}
	return strings.Replace(s, old, new, 1)
}

// secretEntry is one data.secrets entry as Secrets Manager documents it.
func secretEntry(id string) map[string]any {
	return map[string]any{
		"secret_id":          id,
		"secret_name":        "shop-example-com",
		"secret_group_id":    "default",
		"domains":            "shop.example.com",
		"serial_number":      "1:2:3:4",
		"event_time":         "2026-03-04T09:12:30Z",
		"event_triggered_by": "SecretsManager",
	}
}

// newEnvelope returns a realistic envelope for event naming the given secret ids (used
// as given: CRNs or UUIDs). Tests mutate the map with set.
func newEnvelope(event string, ids ...string) map[string]any {
	secrets := make([]any, len(ids))
	for i, id := range ids {
		secrets[i] = secretEntry(id)
	}
	return map[string]any{
		"id":                "7f26144b-9828-4fcd-99a5-4a7bb1fee08f_119a72d1-74c9-4f6a-8c01-1cdd9474031b",
		"source":            srcCRN,
		"specversion":       "1.0",
		"type":              EventTypePrefix + event,
		"time":              "2026-03-04T09:13:41.228734Z",
		"datacontenttype":   "application/json",
		"notification_id":   "451abd81-f1d6-4ed6-97f5-e837d70820fe",
		"ibmensourceid":     srcCRN,
		"ibmenseverity":     "low",
		"ibmendefaultshort": "secret rotated",
		"ibmendefaultlong":  "secret rotated",
		"data": map[string]any{
			"event_type":                     event,
			"secret_type":                    "imported_cert",
			"secrets":                        secrets,
			"source_instance_crn":            srcCRN,
			"source_instance_api_public_url": "https://" + guid + ".us-south.secrets-manager.appdomain.cloud/api",
			"source_service":                 "SecretsManager",
		},
	}
}

// deleted, as a value for set, removes the key.
type deletedT struct{}

var deleted deletedT

// set sets (or deletes) the value at a dotted path ("data.secrets") and returns m.
func set(m map[string]any, path string, v any) map[string]any {
	keys := strings.Split(path, ".")
	cur := m
	for _, k := range keys[:len(keys)-1] {
		cur = cur[k].(map[string]any)
	}
	if _, ok := v.(deletedT); ok {
		delete(cur, keys[len(keys)-1])
	} else {
		cur[keys[len(keys)-1]] = v
	}
	return m
}

func toJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// nested returns depth arrays around a value: [[[...1...]]].
func nested(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth))
}

// manySecrets returns n distinct secret CRNs of the source instance.
func manySecrets(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = secretCRN(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i))
	}
	return ids
}
