package eventnotifications

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
)

type parseCase struct {
	name   string
	body   func(t testing.TB) []byte
	source string // configured source; srcCRN when ""
	want   error  // nil: success
	// secrets is the expected Notification.Secrets IDs, in order, on success.
	secrets []string
	check   func(t *testing.T, n *Notification)
}

// obj is a body built from a (mutated) envelope.
func obj(m map[string]any) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return toJSON(t, m) }
}

// raw is a body given as text.
func raw(s string) func(testing.TB) []byte {
	return func(testing.TB) []byte { return []byte(s) }
}

// minimal is the smallest body with every required field.
const minimal = `{"source":"` + srcCRN + `","type":"` + EventTypePrefix + `secret_rotated","data":{"secrets":[{"secret_id":"` + id1 + `"}]}}`

func parseCases() []parseCase {
	rotated := func(ids ...string) map[string]any { return newEnvelope(EventSecretRotated, ids...) }
	c1, c2 := secretCRN(id1), secretCRN(id2)
	otherGUID := "9e1d2c3b-4a5f-4e6d-8c7b-0a1b2c3d4e5f"
	return []parseCase{
		// --- accepted shapes
		{name: "rotated, secret CRNs", body: obj(rotated(c1, c2)), secrets: []string{id1, id2}},
		{name: "created", body: obj(newEnvelope(EventSecretCreated, c1)), secrets: []string{id1}},
		{name: "minimal body", body: raw(minimal), secrets: []string{id1}},
		{name: "bare UUID becomes a secret of the configured instance", body: obj(rotated(id1)), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) { assert.Equal(t, secretCRN(id1), n.Secrets[0].CRN) }},
		{name: "upper-case UUID is lower-cased", body: obj(rotated(strings.ToUpper(id1))), secrets: []string{id1}},
		{name: "source GUID in upper case", body: obj(set(rotated(c1), "source", replaced(srcCRN, guid, strings.ToUpper(guid)))), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) { assert.Equal(t, srcCRN, n.InstanceCRN, "the configured spelling") }},
		{name: "secret CRN with the GUID in upper case", body: obj(rotated(replaced(c1, guid, strings.ToUpper(guid)))), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) { assert.Equal(t, c1, n.Secrets[0].CRN) }},
		{name: "duplicates collapse in first-seen order", body: obj(rotated(c2, c1, id2, strings.ToUpper(id1), c2, id3)), secrets: []string{id2, id1, id3}},
		{name: "100 secrets", body: obj(rotated(manySecrets(100)...)),
			check: func(t *testing.T, n *Notification) { assert.Len(t, n.Secrets, 100) }},
		{name: "unknown fields ignored at every level", body: obj(set(set(set(set(rotated(c1),
			"ibmenfuture", map[string]any{"x": []any{1, "y", nil}}),
			"extensions", []any{map[string]any{"secret_id": "crn:" + evil}}),
			"data.future_field", map[string]any{"secrets": "not ours"}),
			"data.tasks", []any{map[string]any{"secret_id": evil}})), secrets: []string{id1}},
		{name: "unknown field inside a secret", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_id": c1, "new_prop": []any{1, 2}, "secret_expiration": nil}})), secrets: []string{id1}},
		{name: "deep but valid unknown field", body: obj(set(rotated(c1), "junk", nested(5000))), secrets: []string{id1}},
		{name: "huge unknown string", body: obj(set(rotated(c1), "junk", strings.Repeat("A", 900<<10))), secrets: []string{id1}},
		{name: "huge secret name is informational", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_id": c1, "secret_name": strings.Repeat("n", 500<<10)}})), secrets: []string{id1}},
		{name: "data as a string holding the object", body: func(t testing.TB) []byte {
			m := rotated(c1, id2)
			return toJSON(t, set(m, "data", string(toJSON(t, m["data"]))))
		}, secrets: []string{id1, id2}},
		{name: "data.source_instance_crn absent", body: obj(set(rotated(c1), "data.source_instance_crn", deleted)), secrets: []string{id1}},
		{name: "specversion absent", body: obj(set(rotated(c1), "specversion", deleted)), secrets: []string{id1}},
		{name: "type absent, data.event_type present", body: obj(set(rotated(c1), "type", deleted)), secrets: []string{id1}},
		{name: "type null, data.event_type present", body: obj(set(rotated(c1), "type", nil)), secrets: []string{id1}},
		{name: "data.event_type absent, type present", body: obj(set(rotated(c1), "data.event_type", deleted)), secrets: []string{id1}},
		{name: "subtype from type", body: obj(set(set(newEnvelope(EventSecretAboutToExpire, c1), "type", EventTypePrefix+"secret_about_to_expire:in_30_days"), "data.event_sub_type", "in_30_days")),
			secrets: []string{id1}, check: func(t *testing.T, n *Notification) {
				assert.Equal(t, EventSecretAboutToExpire, n.EventType)
				assert.Equal(t, "in_30_days", n.EventSubType)
				assert.Equal(t, Acknowledge, n.Action())
				assert.Empty(t, n.SecretsToCopy())
			}},
		{name: "time null", body: obj(set(rotated(c1), "time", nil)), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) { assert.True(t, n.Time.IsZero()) }},
		{name: "secrets null on an acknowledged event", body: obj(set(newEnvelope(EventSecretExpired), "data.secrets", nil))},
		{name: "test event without secrets", body: obj(set(newEnvelope(EventTest), "data.secrets", deleted)),
			check: func(t *testing.T, n *Notification) { assert.Equal(t, Test, n.Action()) }},
		{name: "undocumented event is accepted as Unknown", body: obj(newEnvelope("secret_teleported", c1)), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) {
				assert.Equal(t, Unknown, n.Action())
				assert.Empty(t, n.SecretsToCopy())
			}},
		{name: "created for an arbitrary secret copies nothing", body: obj(set(newEnvelope(EventSecretCreated, c1), "data.secret_type", "arbitrary")), secrets: []string{id1},
			check: func(t *testing.T, n *Notification) { assert.Empty(t, n.SecretsToCopy()) }},

		// --- authentication of the instance (403)
		{name: "source of another instance", body: obj(set(rotated(c1), "source", replaced(srcCRN, guid, otherGUID))), want: ErrWrongInstance},
		{name: "source in another region", body: obj(set(rotated(c1), "source", replaced(srcCRN, "us-south", "eu-de"))), want: ErrWrongInstance},
		{name: "source in another account", body: obj(set(rotated(c1), "source", replaced(srcCRN, acct, evil+"acct"))), want: ErrWrongInstance},
		{name: "source in another cloud", body: obj(set(rotated(c1), "source", replaced(srcCRN, "bluemix", "staging"))), want: ErrWrongInstance},
		{name: "source of another service", body: obj(set(rotated(c1), "source", replaced(srcCRN, "secrets-manager", "cloudcerts"))), want: ErrWrongInstance},
		{name: "source is a secret CRN", body: obj(set(rotated(c1), "source", c1)), want: ErrWrongInstance},
		{name: "source is not a CRN", body: obj(set(rotated(c1), "source", evil+"/source")), want: ErrWrongInstance},
		{name: "source is a huge string", body: obj(set(rotated(c1), "source", evil+strings.Repeat("A", 500<<10))), want: ErrWrongInstance},
		{name: "data.source_instance_crn of another instance", body: obj(set(rotated(c1), "data.source_instance_crn", replaced(srcCRN, guid, otherGUID))), want: ErrWrongInstance},
		{name: "data.source_instance_crn garbage", body: obj(set(rotated(c1), "data.source_instance_crn", evil)), want: ErrWrongInstance},
		{name: "foreign secret CRN", body: obj(rotated(c1, replaced(c2, guid, otherGUID))), want: ErrForeignSecret},
		{name: "secret CRN in another region", body: obj(rotated(replaced(c1, "us-south", "eu-de"))), want: ErrForeignSecret},
		{name: "secret CRN in another account", body: obj(rotated(replaced(c1, acct, evil+"acct"))), want: ErrForeignSecret},
		{name: "CRN of another service", body: obj(rotated("crn:v1:bluemix:public:cloudcerts:us-south:a/" + acct + ":" + guid + ":certificate:" + id1)), want: ErrForeignSecret},
		{name: "instance CRN as a secret", body: obj(rotated(srcCRN)), want: ErrForeignSecret},
		{name: "path-escaping id inside a secret CRN", body: obj(rotated(secretPrefix + "../../" + evil)), want: ErrForeignSecret},
		{name: "encoded slash inside a secret CRN", body: obj(rotated(secretPrefix + id1[:30] + "%2F" + evil)), want: ErrForeignSecret},
		{name: "foreign secret in a test event", body: obj(newEnvelope(EventTest, replaced(c1, guid, otherGUID))), want: ErrForeignSecret},
		{name: "foreign secret in an acknowledged event", body: obj(newEnvelope(EventSecretDeleted, replaced(c1, guid, otherGUID))), want: ErrForeignSecret},
		{name: "wrong source wins over a foreign secret", body: obj(set(rotated(replaced(c1, guid, otherGUID)), "source", replaced(srcCRN, guid, otherGUID))), want: ErrWrongInstance},

		// --- size (413)
		{name: "101 secrets", body: obj(rotated(manySecrets(101)...)), want: ErrTooLarge},
		{name: "101 entries of one secret", body: obj(rotated(strings.Split(strings.Repeat(c1+",", 101), ",")[:101]...)), want: ErrTooLarge},
		{name: "body over MaxBodySize", body: obj(set(rotated(c1), "junk", strings.Repeat("A", MaxBodySize))), want: ErrTooLarge},

		// --- malformed (400)
		{name: "empty body", body: raw(""), want: ErrMalformed},
		{name: "null body", body: raw("null"), want: ErrMalformed},
		{name: "array body", body: raw("[" + minimal + "]"), want: ErrMalformed},
		{name: "truncated", body: raw(minimal[:len(minimal)-3]), want: ErrMalformed},
		{name: "trailing data", body: raw(minimal + " {}"), want: ErrMalformed},
		{name: "two envelopes", body: raw(minimal + minimal), want: ErrMalformed},
		{name: "source missing", body: obj(set(rotated(c1), "source", deleted)), want: ErrMalformed},
		{name: "source null", body: obj(set(rotated(c1), "source", nil)), want: ErrMalformed},
		{name: "source a number", body: obj(set(rotated(c1), "source", 42)), want: ErrMalformed},
		{name: "source an object", body: obj(set(rotated(c1), "source", map[string]any{"crn": srcCRN})), want: ErrMalformed},
		{name: "data missing", body: obj(set(rotated(c1), "data", deleted)), want: ErrMalformed},
		{name: "data null", body: obj(set(rotated(c1), "data", nil)), want: ErrMalformed},
		{name: "data a number", body: obj(set(rotated(c1), "data", 1)), want: ErrMalformed},
		{name: "data an array", body: obj(set(rotated(c1), "data", []any{map[string]any{"event_type": "secret_rotated"}})), want: ErrMalformed},
		{name: "data a string holding a string", body: func(t testing.TB) []byte {
			m := rotated(c1)
			return toJSON(t, set(m, "data", string(toJSON(t, string(toJSON(t, m["data"]))))))
		}, want: ErrMalformed},
		{name: "data a string holding an array", body: obj(set(rotated(c1), "data", `[{"event_type":"secret_rotated"}]`)), want: ErrMalformed},
		{name: "data a string holding bad JSON", body: obj(set(rotated(c1), "data", `{"event_type":"secret_rotated",`)), want: ErrMalformed},
		{name: "data a string holding trailing data", body: obj(set(rotated(c1), "data", `{"event_type":"secret_rotated"} {}`)), want: ErrMalformed},
		{name: "data a string with duplicate keys", body: obj(set(rotated(c1), "data", `{"event_type":"secret_rotated","secrets":[{"secret_id":"`+id1+`"}],"secrets":[]}`)), want: ErrMalformed},
		{name: "data a string holding a foreign secret", body: func(t testing.TB) []byte {
			m := rotated(replaced(c1, guid, otherGUID))
			return toJSON(t, set(m, "data", string(toJSON(t, m["data"]))))
		}, want: ErrForeignSecret},
		{name: "duplicate source", body: raw(`{"source":"` + srcCRN + `","source":"` + srcCRN + `","type":"` + EventTypePrefix + `test_event","data":{}}`), want: ErrMalformed},
		{name: "duplicate source in another case", body: raw(strings.Replace(minimal, `"source"`, `"Source":"x","source"`, 1)), want: ErrMalformed},
		{name: "duplicate data, key spelled with an escape", body: raw(strings.Replace(minimal, `"data"`, `"data":{},"dat\u0061"`, 1)), want: ErrMalformed},
		{name: "duplicate secrets, long s folds to s", body: raw(strings.Replace(minimal, `"secrets"`, `"secrets":[],"ſecrets"`, 1)), want: ErrMalformed},
		{name: "duplicate secrets", body: raw(strings.Replace(minimal, `"secrets"`, `"secrets":[],"secrets"`, 1)), want: ErrMalformed},
		{name: "duplicate secret_id, ours then foreign", body: raw(strings.Replace(minimal, `"secret_id":"`+id1+`"`, `"secret_id":"`+id1+`","secret_id":"`+replaced(c1, guid, otherGUID)+`"`, 1)), want: ErrMalformed},
		{name: "secret_id in another case is another field", body: raw(strings.Replace(minimal, `"secret_id"`, `"Secret_ID"`, 1)), want: ErrMalformed},
		{name: "non-UUID id", body: obj(rotated(evil + "-secret")), want: ErrMalformed},
		{name: "path-escaping id", body: obj(rotated("../../" + evil)), want: ErrMalformed},
		{name: "slash in a UUID", body: obj(rotated(id1[:8] + "/" + id1[9:])), want: ErrMalformed},
		{name: "UUID without hyphens", body: obj(rotated(strings.ReplaceAll(id1, "-", ""))), want: ErrMalformed},
		{name: "UUID in braces", body: obj(rotated("{" + id1 + "}")), want: ErrMalformed},
		{name: "UUID with a trailing newline", body: obj(rotated(id1 + "\n")), want: ErrMalformed},
		{name: "UUID with a leading space", body: obj(rotated(" " + id1)), want: ErrMalformed},
		{name: "CRN prefix in upper case", body: obj(rotated(strings.Replace(c1, "crn:", "CRN:", 1))), want: ErrMalformed},
		{name: "huge secret id", body: obj(rotated(strings.Repeat("a", 500<<10))), want: ErrMalformed},
		{name: "numeric-looking id string", body: obj(rotated("12345")), want: ErrMalformed},
		{name: "secret_id a number", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_id": 12345}})), want: ErrMalformed},
		{name: "secret_id empty", body: obj(rotated("")), want: ErrMalformed},
		{name: "secret_id null", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_id": nil}})), want: ErrMalformed},
		{name: "secret_id missing", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_name": "x"}})), want: ErrMalformed},
		{name: "secret entry null", body: obj(set(rotated(), "data.secrets", []any{nil})), want: ErrMalformed},
		{name: "secret entry a string", body: obj(set(rotated(), "data.secrets", []any{c1})), want: ErrMalformed},
		{name: "secrets an object", body: obj(set(rotated(), "data.secrets", secretEntry(c1))), want: ErrMalformed},
		{name: "secrets a string-typed number", body: obj(set(rotated(), "data.secrets", "5")), want: ErrMalformed},
		{name: "secret_name a number", body: obj(set(rotated(), "data.secrets", []any{map[string]any{"secret_id": c1, "secret_name": 7}})), want: ErrMalformed},
		{name: "specversion a number", body: raw(strings.Replace(minimal, `"source"`, `"specversion":1.0,"source"`, 1)), want: ErrMalformed},
		{name: "specversion 0.3", body: obj(set(rotated(c1), "specversion", "0.3")), want: ErrMalformed},
		{name: "time a number", body: obj(set(rotated(c1), "time", 1772615621)), want: ErrMalformed},
		{name: "time not RFC 3339", body: obj(set(rotated(c1), "time", "yesterday")), want: ErrMalformed},
		{name: "datacontenttype a number", body: obj(set(rotated(c1), "datacontenttype", 1)), want: ErrMalformed},
		{name: "id an object", body: obj(set(rotated(c1), "id", map[string]any{})), want: ErrMalformed},
		{name: "secrets null on a copy event", body: obj(set(rotated(), "data.secrets", nil)), want: ErrMalformed},
		{name: "no secret on a copy event", body: obj(rotated()), want: ErrMalformed},
		{name: "event type mismatch", body: obj(set(rotated(c1), "data.event_type", EventSecretCreated)), want: ErrMalformed},
		{name: "event subtype mismatch", body: obj(set(set(newEnvelope(EventSecretAboutToExpire, c1), "type", EventTypePrefix+"secret_about_to_expire:in_30_days"), "data.event_sub_type", "in_1_day")), want: ErrMalformed},
		{name: "event type absent everywhere", body: obj(set(set(rotated(c1), "type", deleted), "data.event_type", deleted)), want: ErrMalformed},
		{name: "type of another service", body: obj(set(rotated(c1), "type", "com.ibm.cloud.logs.secret_rotated")), want: ErrMalformed},
		{name: "type prefix only", body: obj(set(set(rotated(c1), "type", EventTypePrefix), "data.event_type", deleted)), want: ErrMalformed},
		{name: "event type with a newline", body: obj(set(rotated(c1), "data.event_type", "secret_rotated\n"+evil)), want: ErrMalformed},
		{name: "event type a number", body: obj(set(rotated(c1), "data.event_type", 3)), want: ErrMalformed},
		{name: "huge event type", body: obj(set(set(rotated(c1), "type", EventTypePrefix+strings.Repeat("x", 200<<10)), "data.event_type", deleted)), want: ErrMalformed},
		{name: "secret type with a space", body: obj(set(rotated(c1), "data.secret_type", "imported cert")), want: ErrMalformed},
		{name: "nesting deeper than the decoder allows", body: raw(strings.Replace(minimal, `"data"`, `"junk":`+string(nested(20000))+`,"data"`, 1)), want: ErrMalformed},
		{name: "nesting too deep inside a secret", body: raw(strings.Replace(minimal, `"secret_id"`, `"junk":`+string(nested(20000))+`,"secret_id"`, 1)), want: ErrMalformed},
		{name: "unclosed nesting", body: raw(strings.Replace(minimal, `"data"`, `"junk":`+strings.Repeat("[{\"a\":", 50000)+`,"data"`, 1)), want: ErrMalformed},

		// --- configuration (500)
		{name: "configured source is a Certificate Manager instance", body: raw(minimal), source: "crn:v1:bluemix:public:cloudcerts:us-south:a/" + acct + ":" + guid + "::", want: ErrConfig},
		{name: "configured source is a secret", body: raw(minimal), source: secretCRN(id1), want: ErrConfig},
		{name: "configured source empty", body: raw(minimal), source: "-", want: ErrConfig},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			source := tc.source
			switch source {
			case "":
				source = srcCRN
			case "-":
				source = ""
			}
			body := tc.body(t)
			n, err := Parse(body, source)
			if tc.want != nil {
				require.Error(t, err)
				require.Nil(t, n)
				for _, s := range []error{ErrMalformed, ErrTooLarge, ErrWrongInstance, ErrForeignSecret, ErrConfig, ErrUnauthorized} {
					assert.Equal(t, s == tc.want, errors.Is(err, s), "%v: errors.Is(%v)", err, s)
				}
				msg := err.Error()
				t.Logf("%d %s", HTTPStatus(err), msg)
				assert.NotContains(t, strings.ToLower(msg), evil, "the error quotes the body")
				assert.Less(t, len(msg), 300, "the error quotes the body")
				return
			}
			require.NoError(t, err)
			checkInvariants(t, body, n)
			if tc.secrets != nil {
				ids := make([]string, len(n.Secrets))
				for i, s := range n.Secrets {
					ids[i] = s.ID
				}
				assert.Equal(t, tc.secrets, ids)
			}
			if tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

// checkInvariants holds for every successful Parse with srcCRN configured.
func checkInvariants(t *testing.T, body []byte, n *Notification) {
	t.Helper()
	require.NotNil(t, n)
	require.True(t, json.Valid(body), "accepted a body encoding/json refuses")
	require.Equal(t, srcCRN, n.InstanceCRN)
	require.Regexp(t, eventNameRE, n.EventType)
	require.LessOrEqual(t, len(n.Secrets), MaxSecrets)
	seen := map[string]bool{}
	for _, s := range n.Secrets {
		require.True(t, crn.IsSecretID(s.ID), "secret id %q", s.ID)
		require.Equal(t, strings.ToLower(s.ID), s.ID)
		require.Equal(t, secretPrefix+s.ID, s.CRN)
		require.True(t, crn.SecretBelongsTo(s.CRN, srcCRN), "foreign secret %q accepted", s.CRN)
		require.False(t, seen[s.ID], "duplicate secret %q", s.ID)
		seen[s.ID] = true
	}
	if n.Action() == Copy {
		require.NotEmpty(t, n.Secrets, "a copy event without secrets")
	} else {
		require.Empty(t, n.SecretsToCopy())
	}
}

// One realistic envelope per documented event, as Event Notifications delivers it.
func TestParseTestdata(t *testing.T) {
	want := map[string]struct {
		event, sub string
		action     Action
		secrets    int
		copies     int
	}{
		"secret_created.json":                    {event: EventSecretCreated, action: Copy, secrets: 1, copies: 1},
		"secret_rotated.json":                    {event: EventSecretRotated, action: Copy, secrets: 3, copies: 3},
		"secret_rotated_uuid_id.json":            {event: EventSecretRotated, action: Copy, secrets: 1, copies: 1},
		"test_event.json":                        {event: EventTest, action: Test},
		"secret_about_to_expire_in_10_days.json": {event: EventSecretAboutToExpire, sub: "in_10_days", action: Acknowledge, secrets: 2},
		"secret_creation_failed.json":            {event: EventSecretCreationFailed, action: Acknowledge, secrets: 1},
		"secret_rotation_failed.json":            {event: EventSecretRotationFailed, action: Acknowledge, secrets: 1},
		"secret_expired.json":                    {event: EventSecretExpired, action: Acknowledge, secrets: 1},
		"secret_revoked.json":                    {event: EventSecretRevoked, action: Acknowledge, secrets: 1},
		"secret_deleted.json":                    {event: EventSecretDeleted, action: Acknowledge, secrets: 1},
		"secret_deletion_failed.json":            {event: EventSecretDeletionFailed, action: Acknowledge, secrets: 1},
		"secret_deletion_blocked.json":           {event: EventSecretDeletionBlocked, action: Acknowledge, secrets: 1},
		"secret_revocation_blocked.json":         {event: EventSecretRevocationBlocked, action: Acknowledge, secrets: 1},
		"secret_rotation_blocked.json":           {event: EventSecretRotationBlocked, action: Acknowledge, secrets: 1},
		"secret_expiration_blocked.json":         {event: EventSecretExpirationBlocked, action: Acknowledge, secrets: 1},
		"secret_data_removed.json":               {event: EventSecretDataRemoved, action: Acknowledge, secrets: 1},
		"secret_version_data_deleted.json":       {event: EventSecretVersionDataDeleted, action: Acknowledge, secrets: 1},
		"secret_task_created.json":               {event: EventSecretTaskCreated, action: Acknowledge},
		"secret_task_succeeded.json":             {event: EventSecretTaskSucceeded, action: Acknowledge},
		"secret_task_failed.json":                {event: EventSecretTaskFailed, action: Acknowledge},
		"secret_task_deleted.json":               {event: EventSecretTaskDeleted, action: Acknowledge},
	}
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.Len(t, files, len(want), "one expectation per testdata file")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			w, ok := want[filepath.Base(f)]
			require.True(t, ok, "no expectation for %s", f)
			body, err := os.ReadFile(f)
			require.NoError(t, err)
			n, err := Parse(body, srcCRN)
			require.NoError(t, err)
			checkInvariants(t, body, n)
			assert.Equal(t, w.event, n.EventType)
			assert.Equal(t, w.sub, n.EventSubType)
			assert.Equal(t, w.action, n.Action())
			assert.Len(t, n.Secrets, w.secrets)
			assert.Len(t, n.SecretsToCopy(), w.copies)
			assert.NotEmpty(t, n.ID)
			assert.NotEmpty(t, n.NotificationID)
			assert.Equal(t, time.Date(2026, 3, 4, 9, 13, 41, 228734000, time.UTC), n.Time)
		})
	}
}

func TestClassify(t *testing.T) {
	tests := map[string]Action{
		EventSecretCreated: Copy, EventSecretRotated: Copy, EventTest: Test,
		EventSecretCreationFailed: Acknowledge, EventSecretRotationFailed: Acknowledge,
		EventSecretAboutToExpire: Acknowledge, EventSecretExpired: Acknowledge,
		EventSecretRevoked: Acknowledge, EventSecretDeleted: Acknowledge,
		EventSecretDeletionFailed: Acknowledge, EventSecretDeletionBlocked: Acknowledge,
		EventSecretRevocationBlocked: Acknowledge, EventSecretRotationBlocked: Acknowledge,
		EventSecretExpirationBlocked: Acknowledge, EventSecretDataRemoved: Acknowledge,
		EventSecretVersionDataDeleted: Acknowledge, EventSecretTaskCreated: Acknowledge,
		EventSecretTaskSucceeded: Acknowledge, EventSecretTaskFailed: Acknowledge,
		EventSecretTaskDeleted: Acknowledge,
		"":                     Unknown, "secret_teleported": Unknown, "Secret_Rotated": Unknown,
		EventTypePrefix + EventSecretRotated: Unknown, // Classify takes the bare name
		"cert_renewed":                       Unknown, // a Certificate Manager event
	}
	for event, want := range tests {
		assert.Equal(t, want, Classify(event), "%q", event)
	}
	for a, s := range map[Action]string{Copy: "copy", Test: "test", Acknowledge: "acknowledge", Unknown: "unknown", Action(42): "unknown"} {
		assert.Equal(t, s, a.String())
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{fmt.Errorf("%w: x", ErrUnauthorized), 401},
		{fmt.Errorf("%w: x", ErrMalformed), 400},
		{fmt.Errorf("%w: x", ErrTooLarge), 413},
		{fmt.Errorf("%w: x", ErrWrongInstance), 403},
		{fmt.Errorf("%w: x", ErrForeignSecret), 403},
		{fmt.Errorf("%w: x", ErrConfig), 500},
		{errors.New("something else"), 500},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, HTTPStatus(tt.err), "%v", tt.err)
	}
}

func TestNotificationPrinting(t *testing.T) {
	m := newEnvelope(EventSecretRotated, secretCRN(id1), id2)
	set(m, "data.secrets", []any{
		map[string]any{"secret_id": secretCRN(id1), "secret_name": evil + "-name\nfake log line"},
		map[string]any{"secret_id": id2, "secret_name": "b"},
	})
	n, err := Parse(toJSON(t, m), srcCRN)
	require.NoError(t, err)
	s := n.String()
	assert.Equal(t, "secret_rotated from "+srcCRN+" secrets=["+secretCRN(id1)+" "+secretCRN(id2)+"]", s)
	assert.NotContains(t, fmt.Sprint(n.LogValue()), evil)
	assert.Equal(t, []string{secretCRN(id1), secretCRN(id2)}, n.SecretCRNs())

	// SecretsToCopy is a copy: the caller cannot change the notification through it.
	c := n.SecretsToCopy()
	c[0].ID = "x"
	assert.Equal(t, id1, n.Secrets[0].ID)
	var nilN *Notification
	assert.Nil(t, nilN.SecretsToCopy())
}
