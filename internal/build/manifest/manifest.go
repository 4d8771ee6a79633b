// Package manifest reads our own wskdeploy manifest.yaml: its actions, their
// runtime and their inputs.
//
// It is a line-based reader for this file's shape, not a YAML parser: block
// mappings of plain or quoted scalars, comments (whole-line and trailing), a
// `---` marker and CRLF line ends. Tabs in indentation are an error, as in YAML.
// An input with a nested value (a multi-line parameter such as type:/value:) is
// refused rather than guessed at, through Action.InputsErr, so that a caller
// that needs only the runtime still reads such a manifest.
package manifest

import (
	"fmt"
	"strings"
)

// Manifest is what the reader takes from a manifest: every action, in order.
type Manifest struct {
	Actions []Action
}

// Action is one entry of an `actions:` block (of any package).
type Action struct {
	Name string
	// Runtime is the action's `runtime:`, unquoted; "" when it has none or when
	// the key has no inline value (RuntimeLine tells the two apart).
	Runtime string
	// RuntimeLine is the 1-based line of `runtime:`; 0 when the action has none.
	RuntimeLine int
	// Web is the action's `web:` as written (true, false, raw, ...); "" when absent.
	Web string
	// Inputs are the entries of the action's `inputs:` block in manifest order,
	// values unquoted and not expanded; nil when there is no block or InputsErr is set.
	Inputs []Input
	// InputsLine is the 1-based line of `inputs:`; 0 when the action has none.
	InputsLine int
	// InputsErr is set when the inputs hold a nested value, which this reader
	// refuses rather than guesses at.
	InputsErr error
}

// Input is one entry of an action's `inputs:` block.
type Input struct {
	Key, Value string
}

// Action returns the first action named name in manifest order.
func (m *Manifest) Action(name string) (Action, bool) {
	for _, a := range m.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}

// Parse reads the actions of doc: the entries of every `actions:` block, with
// their runtime, web and inputs. Its only error is a tab in indentation.
func Parse(doc []byte) (*Manifest, error) {
	lines, err := scan(doc)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	for i, l := range lines {
		if l.key != "actions" || l.value != "" {
			continue
		}
		for _, j := range children(lines, i) {
			if lines[j].key != "" {
				m.Actions = append(m.Actions, action(lines, j))
			}
		}
	}
	return m, nil
}

// action reads the properties of the action whose key is lines[at].
func action(lines []line, at int) Action {
	a := Action{Name: lines[at].key}
	for _, j := range children(lines, at) {
		p := lines[j]
		switch {
		case p.key == "runtime" && a.RuntimeLine == 0:
			a.Runtime, a.RuntimeLine = p.value, p.no
		case p.key == "web" && a.Web == "":
			a.Web = p.value
		case p.key == "inputs" && a.InputsLine == 0:
			a.InputsLine = p.no
			a.Inputs, a.InputsErr = inputs(lines, j, a.Name)
		}
	}
	return a
}

// inputs reads the block under lines[at], refusing anything but one level of
// `key: scalar` entries.
func inputs(lines []line, at int, action string) ([]Input, error) {
	ins := []Input{}
	for j := at + 1; j < len(lines) && lines[j].indent > lines[at].indent; j++ {
		l := lines[j]
		if l.indent != lines[at+1].indent || l.key == "" {
			return nil, fmt.Errorf("line %d: input of action %q has a nested value, which this reader does not read", l.no, action)
		}
		ins = append(ins, Input{Key: l.key, Value: l.value})
	}
	return ins, nil
}

// children returns the indexes of the lines directly under lines[at]: those
// indented like the first line after it, up to the first line not indented
// deeper than lines[at].
func children(lines []line, at int) []int {
	var out []int
	for j := at + 1; j < len(lines) && lines[j].indent > lines[at].indent; j++ {
		if lines[j].indent == lines[at+1].indent {
			out = append(out, j)
		}
	}
	return out
}

// line is one significant line of the document.
type line struct {
	no     int    // 1-based line number
	indent int    // leading spaces
	key    string // mapping key, unquoted; "" for a line that is not a mapping entry
	value  string // inline value, unquoted, comment stripped; "" when the value is a nested block
}

// scan splits doc into its significant lines, leaving out blank lines,
// comments and `---`.
func scan(doc []byte) ([]line, error) {
	var out []line
	for i, raw := range strings.Split(string(doc), "\n") {
		raw = strings.TrimRight(raw, "\r")
		body := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(body)
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		body = strings.TrimSpace(body)
		if body == "" || strings.HasPrefix(body, "#") || body == "---" {
			continue
		}
		l := line{no: i + 1, indent: indent}
		if key, rest, ok := splitKey(body); ok {
			l.key = key
			l.value = scalar(rest)
		}
		out = append(out, l)
	}
	return out, nil
}

// splitKey splits `key: rest` (key possibly quoted). It reports false for
// lines that are not mapping entries.
func splitKey(body string) (key, rest string, ok bool) {
	if strings.HasPrefix(body, "- ") || body == "-" {
		return "", "", false
	}
	if q := body[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(body[1:], q)
		if end < 0 {
			return "", "", false
		}
		key, rest = body[1:end+1], body[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return key, strings.TrimSpace(rest[1:]), true
	}
	for i := 0; i < len(body); i++ {
		if body[i] == ':' && (i+1 == len(body) || body[i+1] == ' ') {
			return body[:i], strings.TrimSpace(body[i+1:]), true
		}
	}
	return "", "", false
}

// scalar unquotes an inline value and strips a trailing comment.
func scalar(v string) string {
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
