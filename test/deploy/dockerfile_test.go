package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/test/deploy/deploytest"
)

// No Docker daemon runs here, so the Dockerfile is held to its rules by reading it:
// test/deploy/realcommand also builds ./function from exactly the build context that
// .dockerignore lets through, with the Dockerfile's own go build line.

var goDirectiveRE = regexp.MustCompile(`(?m)^go ([0-9]+)\.([0-9]+)(?:\.[0-9]+)?\s*$`)

// goModVersion is go.mod's go directive as major.minor.
func goModVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixture.root, "go.mod"))
	require.NoError(t, err)
	m := goDirectiveRE.FindStringSubmatch(string(data))
	require.NotNil(t, m, "go.mod has a go directive")
	return m[1] + "." + m[2]
}

// finalImages are the minimal bases the final stage may use.
var finalImages = []string{"gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/static-debian12", "scratch"}

// dockerfileProblems lists every way text breaks the rules in the Dockerfile's header.
func dockerfileProblems(text, goVersion, dockerignore string) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	d, err := deploytest.ParseDockerfile(text)
	if err != nil {
		return []string{err.Error()}
	}
	if len(d.Stages) < 2 {
		return []string{fmt.Sprintf("want a build stage and a final stage, got %d stage(s)", len(d.Stages))}
	}
	build, final := d.Stages[0], d.Stages[len(d.Stages)-1]

	// The build stage: the Go of go.mod, a static linux/amd64 ./function.
	image, tag, _ := strings.Cut(build.Image, ":")
	if image != "golang" && !strings.HasSuffix(image, "/golang") {
		bad("the build stage is %q, not a golang image", build.Image)
	} else if tag != goVersion && !strings.HasPrefix(tag, goVersion+".") && !strings.HasPrefix(tag, goVersion+"-") {
		bad("the build stage's Go is %q, go.mod says %s", tag, goVersion)
	}
	if build.Name == "" {
		bad("the build stage has no name (FROM ... AS build)")
	}
	words, stage, ok := d.GoBuild()
	if !ok || stage.Line != build.Line {
		bad("the build stage has no RUN go build")
	} else {
		env := stage.Env()
		inline := strings.Join(words, " ")
		for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"} {
			if env[k] != want && !strings.Contains(inline, k+"="+want) {
				bad("go build runs without %s=%s", k, want)
			}
		}
		if !slices.Contains(words, "-trimpath") {
			bad("go build has no -trimpath")
		}
		if i := slices.Index(words, "-ldflags"); i < 0 || i+1 >= len(words) || !strings.Contains(words[i+1], "-s -w") {
			bad(`go build has no -ldflags "-s -w"`)
		}
		if words[len(words)-1] != "./function" {
			bad("go build builds %q, not ./function", words[len(words)-1])
		}
		out := ""
		if i := slices.Index(words, "-o"); i >= 0 && i+1 < len(words) {
			out = words[i+1]
		}
		if out == "" {
			bad("go build has no -o")
		}
		copied := false
		for _, in := range final.All("COPY") {
			f := strings.Fields(in.Args)
			copied = copied || (len(f) == 3 && f[0] == "--from="+build.Name && f[1] == out && f[2] == "/exec")
		}
		if !copied {
			bad("the final stage does not COPY --from=%s %s /exec", build.Name, out)
		}
	}
	ignore := deploytest.ParseDockerignore(dockerignore)
	for _, in := range build.All("COPY") {
		f := strings.Fields(in.Args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			probe := strings.TrimSuffix(src, "/")
			if strings.HasSuffix(src, "/") {
				probe += "/x.go"
			}
			if ignore.Excluded(probe) {
				bad("COPY %s: .dockerignore leaves %s out of the build context", src, probe)
			}
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "function/main.go", "internal/cli/cli.go"} {
		if ignore.Excluded(keep) {
			bad(".dockerignore leaves %s out of the build context", keep)
		}
	}
	for _, drop := range []string{".git/config", "build/exec", "README.md", "internal/cli/cli_test.go", ".env"} {
		if !ignore.Excluded(drop) {
			bad(".dockerignore lets %s into the build context", drop)
		}
	}

	// The final stage: minimal, non-root, /exec serve on 8080.
	if !slices.Contains(finalImages, final.Image) {
		bad("the final stage is %q, not one of %v", final.Image, finalImages)
	}
	if final.Image == "scratch" {
		certs := false
		for _, in := range final.All("COPY") {
			certs = certs || strings.Contains(in.Args, "ca-certificates.crt")
		}
		if !certs {
			bad("a scratch image needs the CA certificates")
		}
	}
	users := final.All("USER")
	if len(users) == 0 {
		bad("the final stage has no USER (it would run as root)")
	} else if u, _, _ := strings.Cut(users[len(users)-1].Args, ":"); u == "root" || u == "0" {
		bad("the final stage runs as %s", u)
	} else if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(u) {
		bad("USER %s is not a numeric UID (runAsNonRoot cannot check a name)", u)
	}
	expect := func(cmd string, want []string) {
		ins := final.All(cmd)
		if len(ins) == 0 {
			bad("the final stage has no %s", cmd)
			return
		}
		got, ok := deploytest.ExecForm(ins[len(ins)-1].Args)
		if !ok || !slices.Equal(got, want) {
			bad("%s is %s, want the exec form %q", cmd, ins[len(ins)-1].Args, want)
		}
	}
	expect("ENTRYPOINT", []string{"/exec"})
	expect("CMD", []string{"serve"})
	exposed := false
	for _, in := range final.All("EXPOSE") {
		exposed = exposed || slices.Contains(strings.Fields(in.Args), "8080")
	}
	if !exposed {
		bad("the final stage does not EXPOSE 8080")
	}
	for _, s := range d.Stages {
		for _, in := range s.Instrs {
			if in.Cmd == "ADD" {
				bad("line %d: ADD (use COPY; nothing is fetched at build time)", in.Line)
			}
			if in.Cmd == "ENV" || in.Cmd == "ARG" {
				for _, secret := range []string{"APIKEY", "WEBHOOK_SECRET"} {
					if strings.Contains(in.Args, secret) {
						bad("line %d: %s in the image", in.Line, secret)
					}
				}
			}
		}
	}
	return probs
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixture.root, name))
	require.NoError(t, err)
	return string(data)
}

func TestDockerfile(t *testing.T) {
	assert.Empty(t, dockerfileProblems(readRepoFile(t, "Dockerfile"), goModVersion(t), readRepoFile(t, ".dockerignore")))
}

// TestDockerfileCheckerCatches makes sure the checker above can fail.
func TestDockerfileCheckerCatches(t *testing.T) {
	doc, ignore := readRepoFile(t, "Dockerfile"), readRepoFile(t, ".dockerignore")
	replace := func(in, old, new string) string {
		t.Helper()
		require.Contains(t, in, old)
		return strings.Replace(in, old, new, 1)
	}
	for name, c := range map[string]struct{ doc, ignore, want string }{
		"other go":       {replace(doc, "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.25"), ignore, "go.mod says"},
		"cgo":            {replace(doc, "ENV CGO_ENABLED=0", "ENV CGO_ENABLED=1"), ignore, "without CGO_ENABLED=0"},
		"arm":            {replace(doc, "GOARCH=amd64", "GOARCH=arm64"), ignore, "without GOARCH=amd64"},
		"no trimpath":    {replace(doc, "go build -trimpath ", "go build "), ignore, "-trimpath"},
		"no strip":       {replace(doc, `-ldflags "-s -w -buildid="`, `-ldflags "-buildid="`), ignore, "-s -w"},
		"other package":  {replace(doc, "-o /out/exec ./function", "-o /out/exec ./cmd"), ignore, "not ./function"},
		"root":           {replace(doc, "USER 65532:65532", "USER root"), ignore, "runs as root"},
		"uid 0":          {replace(doc, "USER 65532:65532", "USER 0:0"), ignore, "runs as 0"},
		"user name":      {replace(doc, "USER 65532:65532", "USER nonroot:nonroot"), ignore, "not a numeric UID"},
		"no user":        {replace(doc, "USER 65532:65532\n", ""), ignore, "no USER"},
		"full image":     {replace(doc, "gcr.io/distroless/static-debian12:nonroot", "debian:12"), ignore, "not one of"},
		"shell form":     {replace(doc, `ENTRYPOINT ["/exec"]`, "ENTRYPOINT /exec"), ignore, "exec form"},
		"other command":  {replace(doc, `CMD ["serve"]`, `CMD ["reconcile"]`), ignore, "CMD is"},
		"port":           {replace(doc, "EXPOSE 8080", "EXPOSE 80"), ignore, "EXPOSE 8080"},
		"not copied":     {replace(doc, "COPY --from=build /out/exec /exec", "COPY --from=build /out/other /exec"), ignore, "does not COPY"},
		"one stage":      {doc[strings.LastIndex(doc, "\nFROM"):], ignore, "stage"},
		"add":            {replace(doc, "COPY go.mod go.sum ./", "ADD go.mod go.sum ./"), ignore, "ADD"},
		"secret":         {replace(doc, "WORKDIR /src", "WORKDIR /src\nARG APIKEY"), ignore, "APIKEY in the image"},
		"ignored source": {doc, replace(ignore, "!internal\n", ""), "leaves internal"},
		"leaky context":  {doc, replace(ignore, "*\n", ""), "lets .git/config into"},
		"tests in":       {doc, replace(ignore, "**/*_test.go\n", ""), "lets internal/cli/cli_test.go into"},
	} {
		t.Run(name, func(t *testing.T) {
			probs := dockerfileProblems(c.doc, goModVersion(t), c.ignore)
			assert.NotEmpty(t, probs)
			assert.Contains(t, strings.Join(probs, "\n"), c.want)
		})
	}
}

// TestHadolint runs hadolint when it is installed. It is not a Debian package and CI
// does not download it, so this usually skips; TestDockerfile is the check that runs.
func TestHadolint(t *testing.T) {
	h, err := exec.LookPath("hadolint")
	if err != nil {
		t.Skip("hadolint is not installed (not packaged by Debian 12; TestDockerfile checks the rules that matter here)")
	}
	out, err := exec.Command(h, filepath.Join(fixture.root, "Dockerfile")).CombinedOutput()
	assert.NoError(t, err, "hadolint:\n%s", out)
}
