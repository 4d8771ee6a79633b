package manifest

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture has one of each thing the reader must get right; the cases below
// look up its actions.
const fixture = `# comment: actions: notify: runtime: go:9.9
---
project:
  name: certbackup
  packages:
    $PACKAGE_NAME:
      version: 1.0.0
      actions:
        notify:
          function: build/action.zip
          limits:
            runtime: go:1.99     # a nested key of the same name must not count
          runtime: go:1.24   # trailing comment
          web: true
          inputs:
            # a comment inside the block
            mode: notify   # trailing comment
            apikey: $CM_APIKEY
            quoted: "a # not a comment"
            single: 'x: y'
            empty:
            url: http://127.0.0.1:1/x
        "quoted":
          runtime: 'go:1.22'
          web: raw
        bare:
          function: build/action.zip
          inputs:
        nested:
          runtime: go:1.21
          inputs:
            plain: p
            payload:
              type: json
              value: x
        blank-runtime:
          runtime:
      triggers:
        notify:
          runtime: go:1.30
    other:
      actions:
        notify:
          runtime: go:1.5
        late:
          runtime: go:1.6
`

func TestParse(t *testing.T) {
	crlf := strings.ReplaceAll(fixture, "\n", "\r\n")
	notify := Action{
		Name: "notify", Runtime: "go:1.24", RuntimeLine: 13, Web: "true", InputsLine: 15,
		Inputs: []Input{
			{"mode", "notify"}, {"apikey", "$CM_APIKEY"}, {"quoted", "a # not a comment"},
			{"single", "x: y"}, {"empty", ""}, {"url", "http://127.0.0.1:1/x"},
		},
	}
	for _, tc := range []struct {
		name, doc, action string
		want              Action
		wantInputsErr     string // substring of Action.InputsErr; "" for none
	}{
		{"comments, trailing comments, quoted values, input order", fixture, "notify", notify, ""},
		{"CRLF reads the same", crlf, "notify", notify, ""},
		{"quoted key and value", fixture, "quoted", Action{Name: "quoted", Runtime: "go:1.22", RuntimeLine: 24, Web: "raw"}, ""},
		{"no runtime, empty inputs block", fixture, "bare", Action{Name: "bare", InputsLine: 28, Inputs: []Input{}}, ""},
		{"nested input value refused, runtime still read", fixture, "nested",
			Action{Name: "nested", Runtime: "go:1.21", RuntimeLine: 30, InputsLine: 31}, "line 34: input of action \"nested\" has a nested value"},
		{"runtime key without value", fixture, "blank-runtime", Action{Name: "blank-runtime", RuntimeLine: 37}, ""},
		{"an action of a later package", fixture, "late", Action{Name: "late", Runtime: "go:1.6", RuntimeLine: 46}, ""},
		{"list item under inputs refused", "actions:\n  a:\n    inputs:\n      - x\n", "a",
			Action{Name: "a", InputsLine: 3}, "line 4: input of action \"a\" has a nested value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			require.NoError(t, err)
			got, ok := m.Action(tc.action)
			require.True(t, ok)
			if tc.wantInputsErr == "" {
				assert.NoError(t, got.InputsErr)
			} else {
				assert.ErrorContains(t, got.InputsErr, tc.wantInputsErr)
			}
			got.InputsErr = nil
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseLooksOnlyUnderActions(t *testing.T) {
	m, err := Parse([]byte(fixture))
	require.NoError(t, err)
	var names []string
	for _, a := range m.Actions {
		names = append(names, a.Name)
	}
	// notify twice (two packages; Action returns the first), no trigger, no input.
	assert.Equal(t, []string{"notify", "quoted", "bare", "nested", "blank-runtime", "notify", "late"}, names)
	for _, name := range []string{"missing", "mode", "payload", "limits", "reconcileTimer", ""} {
		_, ok := m.Action(name)
		assert.False(t, ok, "%q", name)
	}
	a, _ := m.Action("notify")
	assert.Equal(t, "go:1.24", a.Runtime, "the first package's notify")
}

func TestParseRefuses(t *testing.T) {
	for _, doc := range []string{"actions:\n\ta:\n", "actions:\n  a:\n  \t runtime: go:1.21\n"} {
		_, err := Parse([]byte(doc))
		assert.ErrorContains(t, err, "tab in indentation", "%q", doc)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "project:\n  name: x\n", "actions:\n", "actions: none\n  a:\n"} {
		m, err := Parse([]byte(doc))
		require.NoError(t, err, "%q", doc)
		assert.Empty(t, m.Actions, "%q", doc)
	}
}

// TestRepoManifest reads the shipped manifest: both actions, their inputs in order.
func TestRepoManifest(t *testing.T) {
	doc, err := os.ReadFile("../../../manifest.yaml")
	require.NoError(t, err)
	m, err := Parse(doc)
	require.NoError(t, err)
	for name, web := range map[string]string{"notify": "true", "reconcile": "false"} {
		a, ok := m.Action(name)
		require.True(t, ok, name)
		assert.Equal(t, "go:1.21", a.Runtime, name)
		assert.Equal(t, web, a.Web, name)
		require.NoError(t, a.InputsErr, name)
		var keys []string
		for _, in := range a.Inputs {
			keys = append(keys, in.Key)
		}
		assert.Equal(t, []string{"mode", "apikey", "backup_apikey", "source_instance_crn", "backup_instance_crns",
			"source_public_key", "iam_url", "endpoints", "private_endpoints", "secret_group", "ownership_key", "max_requests_per_second"}, keys, name)
		assert.Equal(t, Input{"mode", name}, a.Inputs[0], name)
	}
}
