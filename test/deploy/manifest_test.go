package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Allow-lists: the yaml struct tags of wskdeploy's parsers/yamlparser.go (the
// manifest is decoded with yaml.UnmarshalStrict, so any other key is an error;
// docs/services/openwhisk.md §9.2), minus deprecated aliases (`location`, `source`).
// Note there is no `kind` key: the specification's alias `kind` would be rejected
// (§9.2).
var (
	topKeys     = []string{"project"}
	projectKeys = []string{"name", "namespace", "credential", "apiHost", "apigwAccessToken", "version", "packages", "inputs", "config"}
	packageKeys = []string{"name", "version", "license", "public", "repositories", "dependencies", "namespace", "credential",
		"apiHost", "apigwAccessToken", "actions", "triggers", "feeds", "rules", "inputs", "sequences", "description", "annotations", "apis"}
	actionKeys = []string{"version", "function", "code", "runtime", "namespace", "credential", "exposedUrl", "web-export", "web",
		"main", "docker", "native", "conductor", "limits", "inputs", "outputs", "description", "annotations", "include", "exclude"}
	limitsKeys  = []string{"timeout", "memorySize", "logSize", "concurrentActivations", "userInvocationRate", "codeSize", "parameterSize"}
	triggerKeys = []string{"feed", "namespace", "credential", "inputs", "description", "annotations"}
	ruleKeys    = []string{"trigger", "action", "rule", "description", "annotations"}
	// A mapping under inputs is a multi-line parameter only if all its keys are these.
	paramKeys = []string{"type", "description", "value", "required", "default", "status", "schema"}
	// Parameters of /whisk.system/alarms/alarm (docs/services/openwhisk.md §10), without
	// the deprecated maxTriggers.
	alarmKeys = []string{"cron", "timezone", "trigger_payload", "startDate", "stopDate", "strict"}
	// A single-line value equal to one of the first five is a type declaration; the rest
	// are the parser's aliases of them, refused as values too (docs/services/openwhisk.md
	// §9.3, parameters.go).
	typeNames = []string{"string", "integer", "float", "boolean", "json", "int", "bool", "int8", "int16", "int32",
		"int64", "float32", "float64", "map", "slice"}
)

// The action inputs: parameter name → the variable deploy.sh exports for it.
var wantInputs = map[string]string{
	"apikey":                  "CM_APIKEY",
	"backup_apikey":           "BACKUP_APIKEY",
	"source_instance_crn":     "SOURCE_INSTANCE_CRN",
	"backup_instance_crns":    "BACKUP_INSTANCE_CRNS",
	"source_public_key":       "SOURCE_PUBLIC_KEY",
	"iam_url":                 "IAM_URL",
	"endpoints":               "CM_ENDPOINTS",
	"private_endpoints":       "PRIVATE_ENDPOINTS",
	"secret_group":            "SECRET_GROUP",
	"ownership_key":           "OWNERSHIP_KEY",
	"max_requests_per_second": "MAX_REQUESTS_PER_SECOND",
}

// node is one entry of a block mapping.
type node struct {
	key      string
	value    string // "" when the entry holds a block
	line     int
	children []*node
}

func (n *node) get(key string) *node {
	for _, c := range n.children {
		if c.key == key {
			return c
		}
	}
	return nil
}

func (n *node) keys() []string {
	var ks []string
	for _, c := range n.children {
		ks = append(ks, c.key)
	}
	return ks
}

// parseYAML reads the subset of YAML our manifest may use: block mappings of
// plain or quoted scalars, and comments. Lists, flow collections, anchors,
// aliases, block scalars, tabs and duplicate keys are errors, so the manifest
// stays simple enough for this checker and for deploy.sh's buildzip reader.
func parseYAML(doc string) (*node, error) {
	root := &node{key: "(root)", line: 0}
	type frame struct {
		indent int
		n      *node
	}
	stack := []frame{{-1, root}}
	for i, raw := range strings.Split(doc, "\n") {
		no := i + 1
		raw = strings.TrimRight(raw, "\r")
		body := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(body)
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", no)
		}
		body = strings.TrimSpace(body)
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		if strings.HasPrefix(body, "- ") || body == "-" || body == "---" {
			return nil, fmt.Errorf("line %d: lists and documents are not used in this manifest", no)
		}
		key, rest, ok := strings.Cut(body, ":")
		if !ok || (rest != "" && rest[0] != ' ') {
			return nil, fmt.Errorf("line %d: not a `key: value` line: %q", no, body)
		}
		key = unquote(strings.TrimSpace(key))
		value, err := plainValue(strings.TrimSpace(rest), no)
		if err != nil {
			return nil, err
		}
		for stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parent := stack[len(stack)-1].n
		if parent.value != "" {
			return nil, fmt.Errorf("line %d: %q has a value and a block", no, parent.key)
		}
		if len(parent.children) > 0 {
			if first := parent.children[0]; first.line > 0 && indentOf(doc, first.line) != indent {
				return nil, fmt.Errorf("line %d: inconsistent indentation under %q", no, parent.key)
			}
		}
		if parent.get(key) != nil {
			return nil, fmt.Errorf("line %d: duplicate key %q", no, key)
		}
		n := &node{key: key, value: value, line: no}
		parent.children = append(parent.children, n)
		stack = append(stack, frame{indent, n})
	}
	return root, nil
}

func indentOf(doc string, line int) int {
	l := strings.Split(doc, "\n")[line-1]
	return len(l) - len(strings.TrimLeft(l, " "))
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func plainValue(v string, no int) (string, error) {
	if v == "" || strings.HasPrefix(v, "#") {
		return "", nil
	}
	if q := v[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(v[1:], q)
		if end < 0 {
			return "", fmt.Errorf("line %d: unterminated quote", no)
		}
		if tail := strings.TrimSpace(v[end+2:]); tail != "" && !strings.HasPrefix(tail, "#") {
			return "", fmt.Errorf("line %d: text after a quoted value", no)
		}
		return v[1 : end+1], nil
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if strings.ContainsAny(v[:1], "{[&*|>!%@`") {
		return "", fmt.Errorf("line %d: value %q uses YAML syntax this manifest avoids (flow, anchor, alias, block scalar, tag)", no, v)
	}
	return v, nil
}

// manifestProblems checks the manifest and returns every problem found.
func manifestProblems(doc string) []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	allowed := func(n *node, what string, allow []string) {
		for _, c := range n.children {
			if !slices.Contains(allow, c.key) {
				bad("line %d: unknown %s key %q (allowed: %s)", c.line, what, c.key, strings.Join(allow, ", "))
			}
		}
	}

	root, err := parseYAML(doc)
	if err != nil {
		return []string{err.Error()}
	}

	// No secret, key or CRN anywhere, comments included.
	if m := regexp.MustCompile(`(?i)crn:v[0-9]+:[^\s]*`).FindString(doc); m != "" {
		bad("a CRN literal is in the manifest: %s", m)
	}
	if strings.Contains(doc, "-----BEGIN") {
		bad("a PEM block is in the manifest")
	}
	walk(root, func(n *node) {
		if looksLikeKey(n.value) {
			bad("line %d: value of %q looks like a key or token", n.line, n.key)
		}
	})

	allowed(root, "top-level", topKeys)
	project := root.get("project")
	if project == nil {
		return append(p, "no project")
	}
	allowed(project, "project", projectKeys)
	pkgs := project.get("packages")
	if pkgs == nil || len(pkgs.children) != 1 {
		return append(p, "want exactly one package under project.packages")
	}
	pkg := pkgs.children[0]
	if pkg.key != "$PACKAGE_NAME" {
		bad("package is %q, want $PACKAGE_NAME (interpolated, docs/services/openwhisk.md §9.3)", pkg.key)
	}
	allowed(pkg, "package", packageKeys)

	actions := pkg.get("actions")
	if actions == nil {
		return append(p, "no actions")
	}
	if got := actions.keys(); !slices.Equal(sorted(got), []string{"notify", "reconcile"}) {
		bad("actions are %v, want notify and reconcile", got)
	}
	inputsOf := map[string]map[string]string{}
	for _, a := range actions.children {
		allowed(a, "action "+a.key, actionKeys)
		if v := value(a, "function"); v != "build/action.zip" {
			bad("action %s: function is %q, want build/action.zip", a.key, v)
		}
		if v := value(a, "runtime"); v != "go:1.21" {
			bad("action %s: runtime is %q, want go:1.21 (required for a .zip; both actions share one exec.env)", a.key, v)
		}
		if a.get("web-export") != nil {
			bad("action %s: use web:, not web-export:", a.key)
		}
		if l := a.get("limits"); l != nil {
			allowed(l, "limits", limitsKeys)
			for _, c := range l.children {
				if _, err := strconv.Atoi(c.value); err != nil {
					bad("line %d: limit %s must be a plain integer, is %q", c.line, c.key, c.value)
				}
			}
		} else {
			bad("action %s: no limits", a.key)
		}
		in := a.get("inputs")
		if in == nil {
			bad("action %s: no inputs", a.key)
			continue
		}
		inputsOf[a.key] = map[string]string{}
		for _, c := range in.children {
			if c.key == "data" || strings.HasPrefix(c.key, "__ow_") {
				bad("action %s: input %q would clash with the web request (web: true makes inputs final)", a.key, c.key)
			}
			if len(c.children) > 0 {
				allowed(c, "parameter "+c.key, paramKeys)
			}
			if slices.Contains(typeNames, c.value) {
				bad("line %d: input %s = %q is a type name, not a value (docs/services/openwhisk.md §9.3)", c.line, c.key, c.value)
			}
			inputsOf[a.key][c.key] = c.value
		}
	}

	notify, reconcile := actions.get("notify"), actions.get("reconcile")
	if notify != nil {
		if v := value(notify, "web"); v != "true" {
			bad("notify: web is %q, want true", v)
		}
		checkLimit(notify, "timeout", "60000", bad)
		checkLimit(notify, "memorySize", "256", bad)
	}
	if reconcile != nil {
		if v := value(reconcile, "web"); v != "" && v != "false" && v != "no" {
			bad("reconcile: web is %q, want false or absent", v)
		}
		checkLimit(reconcile, "timeout", "300000", bad)
	}
	for action, mode := range map[string]string{"notify": "notify", "reconcile": "reconcile"} {
		in, ok := inputsOf[action]
		if !ok {
			continue
		}
		if in["mode"] != mode {
			bad("%s: input mode is %q, want %q", action, in["mode"], mode)
		}
		for name, v := range wantInputs {
			if in[name] != "$"+v {
				bad("%s: input %s is %q, want $%s", action, name, in[name], v)
			}
		}
		for name := range in {
			if _, ok := wantInputs[name]; !ok && name != "mode" {
				bad("%s: unexpected input %q", action, name)
			}
		}
	}

	triggers := pkg.get("triggers")
	var timer *node
	if triggers != nil {
		timer = triggers.get("reconcileTimer")
	}
	if timer == nil {
		bad("no trigger reconcileTimer")
	} else {
		allowed(timer, "trigger", triggerKeys)
		if v := value(timer, "feed"); v != "/whisk.system/alarms/alarm" {
			bad("reconcileTimer: feed is %q", v)
		}
		in := timer.get("inputs")
		if in == nil {
			bad("reconcileTimer: no inputs")
		} else {
			allowed(in, "alarm parameter", alarmKeys)
			if v := value(in, "cron"); v != "$RECONCILE_CRON" {
				bad("reconcileTimer: cron is %q, want $RECONCILE_CRON", v)
			}
			tp := in.get("trigger_payload")
			if tp != nil {
				allowed(tp, "parameter trigger_payload", paramKeys)
			}
			switch {
			case tp == nil:
				bad("reconcileTimer: no trigger_payload")
			case value(tp, "type") != "json" || tp.get("value") == nil || len(tp.get("value").children) == 0:
				bad("reconcileTimer: trigger_payload must be `type: json` with a `value:` object")
			default:
				for _, c := range tp.get("value").children {
					// Nor the reconcile's own switches: a timer must not turn on prune or dry_run.
					if _, clash := wantInputs[c.key]; clash || slices.Contains([]string{"mode", "data", "prune", "dry_run", "concurrency", "max_concurrency"}, c.key) {
						bad("reconcileTimer: trigger_payload names the action input %q", c.key)
					}
				}
			}
		}
	}

	rules := pkg.get("rules")
	var rule *node
	if rules != nil {
		rule = rules.get("reconcileRule")
	}
	if rule == nil {
		bad("no rule reconcileRule")
	} else {
		allowed(rule, "rule", ruleKeys)
		if value(rule, "trigger") != "reconcileTimer" || value(rule, "action") != "reconcile" {
			bad("reconcileRule must bind reconcileTimer to reconcile, binds %q to %q", value(rule, "trigger"), value(rule, "action"))
		}
	}
	return p
}

func checkLimit(a *node, key, want string, bad func(string, ...any)) {
	if l := a.get("limits"); l == nil || value(l, key) != want {
		bad("%s: limits.%s must be %s", a.key, key, want)
	}
}

func value(n *node, key string) string {
	if c := n.get(key); c != nil {
		return c.value
	}
	return ""
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func walk(n *node, f func(*node)) {
	f(n)
	for _, c := range n.children {
		walk(c, f)
	}
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_\-+/=.]{24,}$`)

// looksLikeKey flags long opaque tokens (API keys, base64), which a manifest
// value never needs to be; paths and $VARs are not tokens.
func looksLikeKey(v string) bool {
	if v == "" || strings.HasPrefix(v, "$") || strings.HasPrefix(v, "/") || strings.Contains(v, "/") && strings.Contains(v, ".") && !strings.ContainsAny(v, "+=") {
		return false
	}
	return tokenRE.MatchString(v)
}

func readManifest(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixture.root, "manifest.yaml"))
	require.NoError(t, err)
	return string(data)
}

func TestManifest(t *testing.T) {
	assert.Empty(t, manifestProblems(readManifest(t)))
}

// TestManifestCheckerCatches makes sure the checker above can fail.
func TestManifestCheckerCatches(t *testing.T) {
	doc := readManifest(t)
	replace := func(old, new string) string {
		t.Helper()
		require.Contains(t, doc, old)
		return strings.Replace(doc, old, new, 1)
	}
	for name, c := range map[string]struct{ doc, want string }{
		"kind alias":       {replace("runtime: go:1.21", "kind: go:1.21"), `unknown action notify key "kind"`},
		"unknown limit":    {replace("memorySize: 256", "memory: 256"), `unknown limits key "memory"`},
		"unknown trigger":  {replace("feed: /whisk", "source: /whisk"), `unknown trigger key "source"`},
		"unknown rule key": {replace("action: reconcile", "actions: reconcile"), `unknown rule key "actions"`},
		"unknown package":  {replace("version: 1.0.0", "versions: 1.0.0"), `unknown package key "versions"`},
		"data input":       {replace("mode: notify", "mode: notify\n            data: x"), `input "data"`},
		"type name":        {replace("iam_url: $IAM_URL", "iam_url: string"), "is a type name"},
		"crn literal":      {replace("$SOURCE_INSTANCE_CRN", "crn:v1:bluemix:public:cloudcerts:us-south:a/1:2::"), "CRN literal"},
		"api key literal":  {replace("$CM_APIKEY", "0123456789abcdefghijABCDEFGHIJ_-xyz"), "looks like a key"},
		"notify not web":   {replace("          web: true", "          web: false"), "notify: web"},
		"reconcile web":    {replace("          web: false", "          web: true"), "reconcile: web"},
		"rule target":      {replace("action: reconcile", "action: notify"), "reconcileRule must bind"},
		"payload clash":    {replace("fired_by: reconcileTimer", "mode: notify"), `names the action input "mode"`},
		"payload prune":    {replace("fired_by: reconcileTimer", "prune: true"), `names the action input "prune"`},
		"bad param key":    {replace("type: json", "kind: json"), `unknown parameter trigger_payload key "kind"`},
		"tab":              {replace("          web: true", "\t  web: true"), "tab"},
		"list":             {replace("          web: true", "          web:\n            - true"), "lists"},
		"duplicate":        {replace("          web: true", "          web: true\n          web: true"), "duplicate"},
		"string limit":     {replace("timeout: 60000", "timeout: 60s"), "plain integer"},
	} {
		t.Run(name, func(t *testing.T) {
			probs := manifestProblems(c.doc)
			assert.NotEmpty(t, probs)
			assert.Contains(t, strings.Join(probs, "\n"), c.want)
		})
	}
}

// TestManifestVariablesAreExported checks that every $VAR the manifest
// interpolates is one deploy.sh exports (an unexported one would silently be "").
func TestManifestVariablesAreExported(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(fixture.root, "deploy.sh"))
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`readonly (?:ACTION)_VARS=\(([^)]*)\)`).FindAllStringSubmatch(string(script), -1) {
		for _, v := range strings.Fields(m[1]) {
			exported[v] = true
		}
	}
	m := regexp.MustCompile(`(?m)^\s*export (PACKAGE_NAME RECONCILE_CRON)\s*$`).FindStringSubmatch(string(script))
	require.NotNil(t, m, "deploy.sh exports PACKAGE_NAME and RECONCILE_CRON")
	for _, v := range strings.Fields(m[1]) {
		exported[v] = true
	}
	root, err := parseYAML(readManifest(t))
	require.NoError(t, err)
	varRE := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	used := 0
	walk(root, func(n *node) { // keys and values; comments are not interpolated
		for _, s := range []string{n.key, n.value} {
			for _, m := range varRE.FindAllStringSubmatch(s, -1) {
				used++
				assert.True(t, exported[m[1]], "line %d: manifest uses $%s, which deploy.sh does not export", n.line, m[1])
			}
		}
	})
	assert.Equal(t, 2*len(wantInputs)+2, used, "inputs of both actions, the package name and the cron")
	assert.Len(t, exported, 16, "the action settings under both names of APIKEY and ENDPOINTS, the package name and the cron")
}
