package main

import (
	"fmt"
	"sort"
	"strings"
)

// kind is how a flag takes its value.
type kind int

const (
	str     kind = iota // --name VALUE or --name=VALUE, at most once
	multi               // like str, any number of times
	boolean             // --name, or --name=true|false
)

// spec lists the flags a command accepts, by long name. The key "" (kind multi) lets the
// command take positional arguments.
type spec map[string]kind

// flagSet is what parseFlags found.
type flagSet struct {
	vals  map[string][]string
	bools map[string]bool
	pos   []string
}

func (f flagSet) get(name string) string {
	if v := f.vals[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f flagSet) all(name string) []string { return f.vals[name] }
func (f flagSet) has(name string) bool     { _, ok := f.vals[name]; return ok }
func (f flagSet) on(name string) bool      { return f.bools[name] }
func (f flagSet) positional() []string     { return f.pos }

// parseFlags accepts only long flags (--name), as deploy.sh writes them; an unknown flag,
// a repeated single flag or a missing value is an error, as in the real CLIs.
func parseFlags(args []string, sp spec) (flagSet, error) {
	f := flagSet{vals: map[string][]string{}, bools: map[string]bool{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			if _, ok := sp[""]; !ok {
				return f, fmt.Errorf("unexpected argument %q", a)
			}
			f.pos = append(f.pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		k, ok := sp[name]
		if !ok || name == "" {
			return f, fmt.Errorf("unknown flag --%s (accepted: %s)", name, sp.names())
		}
		switch k {
		case boolean:
			switch {
			case !hasValue || value == "true":
				f.bools[name] = true
			case value == "false":
				f.bools[name] = false
			default:
				return f, fmt.Errorf("--%s takes true or false, not %q", name, value)
			}
			continue
		case str:
			if f.has(name) {
				return f, fmt.Errorf("--%s given twice", name)
			}
		}
		if !hasValue {
			if i+1 >= len(args) {
				return f, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		f.vals[name] = append(f.vals[name], value)
	}
	return f, nil
}

func (sp spec) names() string {
	var n []string
	for k := range sp {
		if k != "" {
			n = append(n, "--"+k)
		}
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

// require fails unless every name was given.
func (f flagSet) require(names ...string) error {
	for _, n := range names {
		if !f.has(n) || f.get(n) == "" {
			return fmt.Errorf("--%s is required", n)
		}
	}
	return nil
}
