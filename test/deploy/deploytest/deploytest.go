// Package deploytest runs deploy.sh, in a copy of the parts of the repository it uses,
// against stand-ins for every program it calls (test/deploy/standin, installed as
// ibmcloud, wskdeploy, wsk, curl, go and certbackup-cli), and returns what it printed and
// what it asked for. test/deploy and test/deploy/realcommand use it.
//
// Nothing here calls IBM Cloud: the stand-ins record their invocations and keep the
// pretend cloud's state in a directory the test chooses (package fakecloud).
package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/certbackup/certbackup/test/deploy/fakecloud"
)

// FakeFunctionPkg stands in for ./function when deploy.sh builds the action.
const FakeFunctionPkg = "./test/deploy/testdata/fakefunction"

// StandinNames are the programs the stand-in plays in StubBin; GoBin holds `go`.
var StandinNames = []string{"ibmcloud", "wskdeploy", "wsk", "curl", "certbackup-cli"}

// Vars are the variables deploy.sh, the stand-ins or the checker read; they are
// removed from the inherited environment so that a developer's shell cannot change a
// result.
var Vars = []string{
	"APIKEY", "CM_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS", "BACKUP_APIKEY",
	"SOURCE_PUBLIC_KEY", "IAM_URL", "ENDPOINTS", "CM_ENDPOINTS", "PRIVATE_ENDPOINTS", "SECRET_GROUP",
	"WEBHOOK_SECRET", "RECONCILE_CRON", "PACKAGE_NAME", "DEPLOY_TOOL", "CE_PROJECT", "CE_REGION",
	"CE_APP", "EN_INSTANCE_CRN", "IBMCLOUD_EN_ENDPOINT", "CERTBACKUP_FUNCTION_PKG", "CERTBACKUP_CLI",
	"STUB_LOG", "STUB_ENV_LOG", "STUB_FAIL", "STUB_URL", "STUB_STATE", "STUB_CONFIG_ERRORS",
	"STUB_TEST_CHANNEL", "STUB_HEALTHZ", "REAL_GO", "TMPDIR",
}

// Fixture is the shared set-up: the stand-ins, built once.
type Fixture struct {
	Root    string // the real repository
	Tmp     string // everything the fixture writes
	StubBin string // ibmcloud, wskdeploy, wsk, curl, certbackup-cli
	GoBin   string // the `go` stand-in (answers check-config and localdemo, delegates the rest)
	RealGo  string // the real go command
}

// Setup builds the stand-in and installs it. Close removes everything.
func Setup() (*Fixture, error) {
	_, file, _, _ := runtime.Caller(0)
	f := &Fixture{Root: filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))}
	var err error
	if f.RealGo, err = exec.LookPath("go"); err != nil {
		return nil, err
	}
	if f.Tmp, err = os.MkdirTemp("", "certbackup-deploy-test-"); err != nil {
		return nil, err
	}
	f.StubBin = filepath.Join(f.Tmp, "bin")
	f.GoBin = filepath.Join(f.Tmp, "gobin")
	for _, d := range []string{f.StubBin, f.GoBin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Close()
			return nil, err
		}
	}
	standin := filepath.Join(f.Tmp, "standin")
	build := exec.Command(f.RealGo, "build", "-o", standin, "./test/deploy/standin")
	build.Dir = f.Root
	if out, err := build.CombinedOutput(); err != nil {
		f.Close()
		return nil, fmt.Errorf("building the stand-in: %v\n%s", err, out)
	}
	for _, name := range StandinNames {
		if err := os.Link(standin, filepath.Join(f.StubBin, name)); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := os.Link(standin, filepath.Join(f.GoBin, "go")); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close removes what the fixture wrote.
func (f *Fixture) Close() {
	if f.Tmp != "" {
		os.RemoveAll(f.Tmp)
	}
}

// RepoFiles are copied from the repository, besides the Go packages in RepoDirs.
var RepoFiles = []string{"deploy.sh", "manifest.yaml", "go.mod", "go.sum", "Dockerfile", ".dockerignore"}

// RepoDirs are the Go packages deploy.sh builds or runs in these tests.
var RepoDirs = []string{"internal/build/buildzip", "internal/build/manifest", "internal/build/cmd/buildzip", "test/deploy/testdata/fakefunction"}

// CopyRepo copies what deploy.sh needs into dst: the script, the manifest, the module
// and container files, the buildzip packages and the stand-in function.
func (f *Fixture) CopyRepo(dst string) (string, error) {
	files := append([]string(nil), RepoFiles...)
	for _, dir := range RepoDirs {
		matches, err := filepath.Glob(filepath.Join(f.Root, dir, "*.go"))
		if err != nil {
			return "", err
		}
		if len(matches) == 0 {
			return "", fmt.Errorf("no Go files in %s", dir)
		}
		for _, m := range matches {
			if !strings.HasSuffix(m, "_test.go") {
				rel, _ := filepath.Rel(f.Root, m)
				files = append(files, rel)
			}
		}
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(f.Root, name))
		if errors.Is(err, os.ErrNotExist) && name == "go.sum" {
			continue
		}
		if err != nil {
			return "", err
		}
		mode := os.FileMode(0o644)
		if name == "deploy.sh" {
			mode = 0o755
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, data, mode); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// Opts are one run's settings.
type Opts struct {
	Env   map[string]string // added to the environment; "" values are set empty
	Unset []string          // not set at all (also among the defaults below)
	Path  string            // replaces PATH entirely when set
	State string            // STUB_STATE: the pretend cloud's directory ("" = a fresh one)
}

// Result is what a run printed and asked for.
type Result struct {
	Code           int
	Stdout, Stderr string
	Calls          []string // one per stand-in invocation, in order: "<name> <args...>"
	EnvLog         []string
	State          string // the STUB_STATE directory used
	TmpDir         string // TMPDIR of the run, for checking that deploy.sh cleaned up
}

// Output is stdout followed by stderr.
func (r Result) Output() string { return r.Stdout + r.Stderr }

// EnvOf returns what the stand-in name saw for variable v at its first call, and
// whether it was set.
func (r Result) EnvOf(name, v string) (string, bool) {
	for _, l := range r.EnvLog {
		if l == name+" "+v+"<unset>" {
			return "", false
		}
		if val, ok := strings.CutPrefix(l, name+" "+v+"="); ok {
			return val, true
		}
	}
	return "", false
}

// CallsOf returns the calls of the stand-in name, without the name.
func (r Result) CallsOf(name string) []string {
	var out []string
	for _, c := range r.Calls {
		if rest, ok := strings.CutPrefix(c, name+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// Cloud loads the pretend cloud as the run left it.
func (r Result) Cloud() (*fakecloud.State, error) { return fakecloud.Load(r.State) }

// Run runs ./deploy.sh args... in repo, with the stand-ins (and the `go` stand-in) first
// on PATH.
func (f *Fixture) Run(repo string, o Opts, args ...string) (Result, error) {
	runDir, err := os.MkdirTemp(f.Tmp, "run-")
	if err != nil {
		return Result{}, err
	}
	state := o.State
	if state == "" {
		state = filepath.Join(runDir, "cloud")
		if err := os.Mkdir(state, 0o755); err != nil {
			return Result{}, err
		}
	}
	tmp := filepath.Join(runDir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return Result{}, err
	}
	vars := map[string]string{
		"STUB_LOG":                filepath.Join(runDir, "calls.log"),
		"STUB_ENV_LOG":            filepath.Join(runDir, "env.log"),
		"STUB_STATE":              state,
		"REAL_GO":                 f.RealGo,
		"TMPDIR":                  tmp,
		"CERTBACKUP_FUNCTION_PKG": FakeFunctionPkg,
		"CERTBACKUP_CLI":          filepath.Join(f.StubBin, "certbackup-cli"),
	}
	for k, v := range o.Env {
		vars[k] = v
	}
	for _, k := range o.Unset {
		delete(vars, k)
	}
	path := strings.Join([]string{f.GoBin, f.StubBin, os.Getenv("PATH")}, string(os.PathListSeparator))
	if o.Path != "" {
		path = o.Path
	}
	env := append(baseEnv(), "PATH="+path)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}

	cmd := exec.Command(filepath.Join(repo, "deploy.sh"), args...)
	cmd.Dir = repo
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), State: state, TmpDir: tmp}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		return r, err
	}
	if r.Calls, err = readLines(vars["STUB_LOG"]); err != nil {
		return r, err
	}
	if r.EnvLog, err = readLines(vars["STUB_ENV_LOG"]); err != nil {
		return r, err
	}
	return r, nil
}

func baseEnv() []string {
	drop := map[string]bool{"PATH": true}
	for _, v := range Vars {
		drop[v] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return env
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), nil
}
