package deploytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Dockerfile is a parsed Dockerfile: enough of the format to check this repository's
// (no Docker daemon runs in these tests).
type Dockerfile struct {
	Args   map[string]string // global ARG defaults (before the first FROM)
	Stages []Stage
}

// Stage is one FROM and its instructions.
type Stage struct {
	Image    string // ARGs substituted
	Name     string // AS name
	Platform string // --platform
	Line     int
	Instrs   []Instruction
}

// Instruction is one instruction, continuation lines joined.
type Instruction struct {
	Cmd  string // upper case
	Args string
	Line int
}

var fromRE = regexp.MustCompile(`(?i)^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$`)

// ParseDockerfile parses text.
func ParseDockerfile(text string) (*Dockerfile, error) {
	d := &Dockerfile{Args: map[string]string{}}
	var cur strings.Builder
	start := 0
	lines := strings.Split(text, "\n")
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		} else if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		if err := d.add(cur.String(), start); err != nil {
			return nil, err
		}
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: the last instruction ends with a continuation", start)
	}
	return d, nil
}

func (d *Dockerfile) add(instr string, line int) error {
	cmd, args, _ := strings.Cut(instr, " ")
	cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
	switch {
	case cmd == "FROM":
		m := fromRE.FindStringSubmatch(args)
		if m == nil {
			return fmt.Errorf("line %d: FROM %q", line, args)
		}
		d.Stages = append(d.Stages, Stage{Platform: m[1], Image: d.expand(m[2]), Name: m[3], Line: line})
	case len(d.Stages) == 0:
		if cmd != "ARG" {
			return fmt.Errorf("line %d: %s before the first FROM", line, cmd)
		}
		name, value, _ := strings.Cut(args, "=")
		d.Args[name] = value
	default:
		s := &d.Stages[len(d.Stages)-1]
		s.Instrs = append(s.Instrs, Instruction{Cmd: cmd, Args: args, Line: line})
	}
	return nil
}

var argRefRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func (d *Dockerfile) expand(s string) string {
	return argRefRE.ReplaceAllStringFunc(s, func(ref string) string {
		return d.Args[argRefRE.FindStringSubmatch(ref)[1]]
	})
}

// Env is what the stage's ENV instructions set (both the K=V and the "K V" forms).
func (s Stage) Env() map[string]string {
	env := map[string]string{}
	for _, in := range s.Instrs {
		if in.Cmd != "ENV" {
			continue
		}
		if !strings.Contains(strings.Fields(in.Args)[0], "=") {
			k, v, _ := strings.Cut(in.Args, " ")
			env[k] = strings.TrimSpace(v)
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// All returns the stage's instructions of one kind.
func (s Stage) All(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Instrs {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// ExecForm decodes a JSON-array ("exec form") argument; ok is false for the shell form.
func ExecForm(args string) (list []string, ok bool) {
	if err := json.Unmarshal([]byte(args), &list); err != nil {
		return nil, false
	}
	return list, true
}

// GoBuild finds the build stage's `go build` and returns its words (shell quotes
// removed), and the stage.
func (d *Dockerfile) GoBuild() (words []string, stage Stage, ok bool) {
	for _, s := range d.Stages {
		for _, in := range s.All("RUN") {
			for _, part := range strings.Split(in.Args, "&&") {
				w := shellWords(part)
				for i := 0; i+1 < len(w); i++ {
					if w[i] == "go" && w[i+1] == "build" {
						return w[i:], s, true
					}
				}
			}
		}
	}
	return nil, Stage{}, false
}

// shellWords splits a simple shell command: whitespace, with "..." and '...' quoting.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}
