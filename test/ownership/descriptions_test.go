package ownership

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// serviceLen is a description's length as the service (and the simulator) counts it:
// UTF-16 code units, JavaScript's String.length.
func serviceLen(s string) int { return len(utf16.Encode([]rune(s))) }

// TestFitCutsByCharacters is the unit half of section 5: cms.Instance.Fit cuts the
// user's description so that it, the separator and the marker use the 1024 characters
// exactly, counted as characters, not bytes (1024 'é' kept 422 when cut by bytes).
func TestFitCutsByCharacters(t *testing.T) {
	t.Parallel()
	m := engine.Marker{
		Source: "crn:v1:bluemix:public:cloudcerts:us-south:a/0123456789abcdef0123456789abcdef:6a0a2c1e-0b1d-4c6e-8f00-1234567890ab:certificate:0123456789abcdef0123456789abcdef",
		Proof:  "ABCDEFGHIJKLMNOPQRSTUV",
	}
	markerText := "[certbackup source=" + m.Source + " proof=" + m.Proof + "]"
	for _, tc := range []struct {
		name, desc string
	}{
		{"1024 é", strings.Repeat("é", 1024)},
		{"1024 ASCII", strings.Repeat("a", 1024)},
		{"1024 CJK", strings.Repeat("証", 1024)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cms.Instance{}.Fit(engine.Labels{Name: "n", Description: tc.desc, Marker: m})
			kept := utf8.RuneCountInString(got.Description)
			assert.Equal(t, cms.MaxDescription, kept+1+utf8.RuneCountInString(markerText), "the description, the separator and the marker use the limit exactly")
			assert.True(t, strings.HasPrefix(tc.desc, got.Description), "a prefix of the user's text, cut on a character boundary")
			assert.True(t, utf8.ValidString(got.Description))
			whole := cms.Instance{}.Fit(engine.Labels{Name: "n", Description: tc.desc})
			assert.Equal(t, tc.desc, whole.Description, "without a marker, 1024 characters fit whole")
		})
	}
}

// TestDescriptionsAsTheServiceCountsThem: end to end, through the real zip and the
// command, a source description at the limit is copied cut to the limit (never over it,
// never far under it), and user text that happens to end like a marker (the source's
// own, which proves nothing there) is kept in the copy, not dropped.
func TestDescriptionsAsTheServiceCountsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	b := e.s.Backups[0]
	other := strings.TrimSuffix(e.s.Source, ":") + "certificate:" + randomHex(16)
	cases := []struct {
		name, desc string
		whole      bool // the copy keeps the whole user text
	}{
		{"1024 é", strings.Repeat("é", 1024), false},
		{"text ending like an old marker", "renew by hand every March [certbackup source=" + other + "]", true},
		{"text ending like a marker on its own line", "see the runbook\n[certbackup source=" + other + "]", true},
		{"text ending like a marker with a proof", "notes\n[certbackup source=" + other + " proof=ABCDEFGHIJKLMNOPQRSTUV]", true},
		{"text that is only a marker", "[certbackup source=" + other + " origin=" + other + "]", true},
	}
	ids := map[string]string{}
	var all []string
	for _, tc := range cases {
		ids[tc.name] = e.imported(t, tc.name, tc.desc)
		all = append(all, ids[tc.name])
	}
	n := e.notify(t, e.event(t, "cert_issued", all...))
	require.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
	check := func(when string) {
		for _, tc := range cases {
			cp := e.copies(b, ids[tc.name])
			if !assert.Len(t, cp, 1, "%s: %s copied", when, tc.name) {
				continue
			}
			stored, user := cp[0].Description, engineDescription(cp[0])
			assert.LessOrEqual(t, serviceLen(stored), cms.MaxDescription, "%s: %s", when, tc.name)
			if tc.whole {
				assert.Equal(t, tc.desc, user, "%s: %s: the user's text is kept whole in the copy", when, tc.name)
			} else {
				assert.Equal(t, cms.MaxDescription, serviceLen(stored), "%s: %s: cut to the limit, not below it", when, tc.name)
				assert.True(t, strings.HasPrefix(tc.desc, user), "%s: %s: a prefix of the user's text", when, tc.name)
			}
		}
	}
	check("after the notification")
	e.reconcileNow(t)
	check("after the reconcile")
	e.s.Sim.ResetLog()
	e.reconcileNow(t)
	assert.Zero(t, e.s.Sim.Writes(""), "the descriptions are stable: a second run writes nothing")
	code, _ := run(t, e.cliEnv(e.s.APIKey), "verify")
	assert.Equal(t, cli.ExitOK, code)
}

// TestDescriptionOfAstralCharacters: the service counts a description in UTF-16 code
// units (the simulator's documented choice 5, as JavaScript's String.length), where a
// character outside the Basic Multilingual Plane (an emoji) counts two. A source
// description of 500 emoji is valid there (1000 units); its copy must be cut so that it
// and the marker fit, or the import is refused and the certificate is never copied.
//
// At e7dfd00 cms.fitDescription counted runes, kept all 500 emoji and the import of
// 1000 + 1 + marker units was refused with 400 on every notification and reconcile
// (fixed in e037aff).
func TestDescriptionOfAstralCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	b := e.s.Backups[0]
	desc := strings.Repeat("😀", 500)
	require.Equal(t, 1000, serviceLen(desc))
	src := e.imported(t, "emoji", desc)
	n := e.notify(t, e.event(t, "cert_issued", src))
	p := n.pair(t, src, b)
	assert.Equal(t, http.StatusOK, n.Status, "outcome %s: %s", p.Outcome, p.Message)
	if cp := e.copies(b, src); assert.Len(t, cp, 1, "the certificate is copied") {
		assert.LessOrEqual(t, serviceLen(cp[0].Description), cms.MaxDescription)
		assert.True(t, strings.HasPrefix(desc, engineDescription(cp[0])))
	}
}

// TestNotificationForDeletedCertificates: when no certificate of a notification exists
// any more, the answer says so instead of "every certificate is in every backup", and
// nothing is written.
func TestNotificationForDeletedCertificates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	a := e.imported(t, "gone-a", "")
	bb := e.imported(t, "gone-b", "")
	tok := e.event(t, "cert_renewed", a, bb)
	require.NoError(t, e.s.Sim.Delete(a))
	require.NoError(t, e.s.Sim.Delete(bb))
	e.s.Sim.ResetLog()
	n := e.notify(t, tok)
	assert.Equal(t, http.StatusOK, n.Status, "%s", n.Raw)
	assert.NotContains(t, n.Message, "every certificate is in every backup")
	assert.Contains(t, n.Message, "exists", "the message says the certificates no longer exist: %q", n.Message)
	assert.Equal(t, 2, n.Summary["skipped"], "%s", n.Raw)
	assert.Zero(t, e.s.Sim.Writes(""))
}

// TestBackupSameAsSourceInOtherCase: a backup CRN that is the source's with the GUID in
// upper case is the source (IBM Cloud GUIDs compare without regard to case) and is
// refused by the configuration, by the command (exit 2, naming the variable) and by the
// action, before any call.
func TestBackupSameAsSourceInOtherCase(t *testing.T) {
	t.Parallel()
	src := "crn:v1:bluemix:public:cloudcerts:us-south:a/0123456789abcdef0123456789abcdef:6a0a2c1e-0b1d-4c6e-8f00-1234567890ab::"
	c, err := crn.ParseInstance(src)
	require.NoError(t, err)
	c.Instance = strings.ToUpper(c.Instance)
	upper := c.String()
	require.NotEqual(t, src, upper)
	for _, backups := range []string{upper, `["` + upper + `"]`, "crn:v1:bluemix:public:cloudcerts:eu-de:a/0123456789abcdef0123456789abcdef:11111111-0b1d-4c6e-8f00-1234567890ab::," + upper} {
		_, err := config.Parse(map[string]any{"mode": "reconcile", "apikey": "k", "source_instance_crn": src, "backup_instance_crns": backups})
		if assert.Error(t, err, "backups %s", backups) {
			assert.Contains(t, err.Error(), "backup_instance_crns")
			assert.Contains(t, err.Error(), "source")
		}
		code, _, stderr := command(t, map[string]string{"APIKEY": "k", "SOURCE_INSTANCE_CRN": src, "BACKUP_INSTANCE_CRNS": backups, "IAM_URL": "http://127.0.0.1:1"}, "reconcile")
		assert.Equal(t, cli.ExitUsage, code, "stderr: %s", stderr)
		assert.Contains(t, stderr, "BACKUP_INSTANCE_CRNS")
	}
}
