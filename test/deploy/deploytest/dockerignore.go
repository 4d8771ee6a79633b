package deploytest

import (
	"bufio"
	"path"
	"regexp"
	"strings"
)

// Dockerignore is a parsed .dockerignore. It follows Docker's rules as far as the
// patterns of this repository need: each line is a glob relative to the context root
// (`*` and `?` within a path element, `**` across any number of them), `!` re-includes,
// the last matching line wins, and a line that matches a directory matches everything
// under it. Comments (#) and blank lines are ignored.
type Dockerignore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	pattern string
	re      *regexp.Regexp
	negate  bool
}

// ParseDockerignore parses the text of a .dockerignore.
func ParseDockerignore(text string) *Dockerignore {
	d := &Dockerignore{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{pattern: line}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean(line), "/")
		r.re = regexp.MustCompile("^" + globToRegexp(line) + "$")
		d.rules = append(d.rules, r)
	}
	return d
}

func globToRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// Excluded reports whether the file at rel (slash-separated, relative to the context
// root) is left out of the build context.
func (d *Dockerignore) Excluded(rel string) bool {
	rel = strings.TrimPrefix(path.Clean(rel), "/")
	excluded := false
	for _, r := range d.rules {
		if r.matches(rel) {
			excluded = !r.negate
		}
	}
	return excluded
}

// matches: the path itself or one of its parent directories.
func (r ignoreRule) matches(rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if r.re.MatchString(p) {
			return true
		}
	}
	return false
}
