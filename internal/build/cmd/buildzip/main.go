// Command buildzip packs a prebuilt linux/amd64 action binary into the
// precompiled OpenWhisk Go action archive (root entries `exec` and `exec.env`).
//
// The execution env written to exec.env comes from -kind, or else from the
// `runtime:` of the -action(s) in -manifest. Used by `./deploy.sh build`:
//
//	go run ./internal/build/cmd/buildzip -exec build/exec -out build/action.zip \
//	    -manifest manifest.yaml -action notify,reconcile
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/certbackup/certbackup/internal/build/buildzip"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("buildzip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	execPath := fs.String("exec", "build/exec", "linux/amd64 executable to pack as `exec`")
	outPath := fs.String("out", "build/action.zip", "archive to write")
	manifest := fs.String("manifest", "manifest.yaml", "wskdeploy manifest to read the runtime kind from")
	actions := fs.String("action", "notify", "comma-separated actions of the manifest that use the archive; their runtimes must agree")
	kind := fs.String("kind", "", "runtime kind (go:1.N); overrides the manifest")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "buildzip: unexpected arguments %q\n", fs.Args())
		return 2
	}

	k := *kind
	source := "-kind"
	if k == "" {
		doc, err := os.ReadFile(*manifest)
		if err != nil {
			fmt.Fprintf(stderr, "buildzip: %v\n", err)
			return 1
		}
		k, err = buildzip.KindForActions(doc, strings.Split(*actions, ","))
		if err != nil {
			fmt.Fprintf(stderr, "buildzip: %s: %v\n", *manifest, err)
			return 1
		}
		source = *manifest
	}
	env, err := buildzip.ExecutionEnvForKind(k)
	if err != nil {
		fmt.Fprintf(stderr, "buildzip: %s: %v\n", source, err)
		return 1
	}
	size, err := buildzip.BuildFile(*execPath, *outPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "buildzip: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d bytes (runtime %s, exec.env %s)\n", *outPath, size, k, env)
	return 0
}
