package localdemo

import (
	"fmt"
	"os"
	"strings"
)

// boundParams returns the inputs that manifest.yaml binds to action, with every
// $VARIABLE replaced from vars and an unset one replaced by "", as wskdeploy does at
// deploy time. Values stay strings, as they reach the deployed action. Reading the
// manifest rather than repeating its list here means the demo runs the action with
// exactly the parameters a deployment gives it, including any added later.
//
// It is a line-based reader for our own manifest (like buildzip's), not a YAML parser:
// an input with a nested value is refused rather than guessed at.
func boundParams(manifest []byte, action string, vars map[string]string) (map[string]any, error) {
	lines := significantLines(manifest)
	for i, l := range lines {
		if l.key != "actions" || l.value != "" {
			continue
		}
		childIndent := -1
		for j := i + 1; j < len(lines) && lines[j].indent > l.indent; j++ {
			c := lines[j]
			if childIndent < 0 {
				childIndent = c.indent
			}
			if c.indent == childIndent && c.key == action {
				return inputsOf(lines[j+1:], c.indent, action, vars)
			}
		}
	}
	return nil, fmt.Errorf("action %q not found under any actions: block", action)
}

func inputsOf(rest []mline, actionIndent int, action string, vars map[string]string) (map[string]any, error) {
	propIndent := -1
	for i, l := range rest {
		if l.indent <= actionIndent {
			break
		}
		if propIndent < 0 {
			propIndent = l.indent
		}
		if l.indent != propIndent || l.key != "inputs" {
			continue
		}
		params := map[string]any{}
		inputIndent := -1
		for _, in := range rest[i+1:] {
			if in.indent <= l.indent {
				break
			}
			if inputIndent < 0 {
				inputIndent = in.indent
			}
			if in.indent != inputIndent || in.key == "" {
				return nil, fmt.Errorf("line %d: input of action %q has a nested value, which the demo does not read", in.no, action)
			}
			params[in.key] = os.Expand(in.value, func(name string) string { return vars[name] })
		}
		return params, nil
	}
	return nil, fmt.Errorf("action %q has no inputs: block", action)
}

// mline is one significant line of the manifest.
type mline struct {
	no     int
	indent int
	key    string // "" for a line that is not a mapping entry
	value  string // inline value, unquoted, comment stripped
}

func significantLines(doc []byte) []mline {
	var out []mline
	for i, raw := range strings.Split(string(doc), "\n") {
		raw = strings.TrimRight(raw, "\r")
		body := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(body)
		body = strings.TrimSpace(body)
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		l := mline{no: i + 1, indent: indent}
		if k, v, ok := strings.Cut(body, ":"); ok && !strings.HasPrefix(body, "-") && (v == "" || v[0] == ' ') {
			l.key = strings.Trim(strings.TrimSpace(k), `"'`)
			l.value = unquote(strings.TrimSpace(v))
		}
		out = append(out, l)
	}
	return out
}

// unquote strips quotes or a trailing comment from an inline scalar.
func unquote(v string) string {
	if v == "" {
		return ""
	}
	if q := v[0]; q == '"' || q == '\'' {
		if end := strings.IndexByte(v[1:], q); end >= 0 {
			return v[1 : end+1]
		}
		return v
	}
	if strings.HasPrefix(v, "#") {
		return ""
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
