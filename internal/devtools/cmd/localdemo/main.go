// Command localdemo is `./deploy.sh local`: it runs the action from build/action.zip
// the way OpenWhisk does, against a simulated IAM and Certificate Manager on
// 127.0.0.1, and reports whether the backup follows the source. `local sm` runs
// build/exec, the terminal command, for a Certificate Manager -> Secrets Manager
// migration and a Secrets Manager -> Secrets Manager sync on the simulators; `local
// codeengine` runs `build/exec serve` and sends it Event Notifications envelopes. Exit
// status 0 when every step behaved as expected, 1 otherwise, 2 for a usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/certbackup/certbackup/internal/devtools/localdemo"
)

func main() {
	// Ctrl-C ends --serve normally, and interrupts a report in progress cleanly: the
	// exec processes and listeners are closed on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second Ctrl-C
	// kills at once if shutting down ever hangs.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// demos are the demos by the name given after the flags: the OpenWhisk one by default.
var demos = map[string]func(context.Context, localdemo.Options, io.Writer) error{
	"":           localdemo.Run,
	"sm":         localdemo.RunSM,
	"codeengine": localdemo.RunCodeEngine,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("localdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts localdemo.Options
	fs.StringVar(&opts.Zip, "zip", "build/action.zip", "the action zip (./deploy.sh build makes it)")
	fs.StringVar(&opts.Exec, "exec", "build/exec", "sm, codeengine: the binary to run (./deploy.sh build makes it)")
	fs.StringVar(&opts.Manifest, "manifest", "manifest.yaml", "the manifest that gives the runtime and the bound parameters of notify")
	fs.BoolVar(&opts.Serve, "serve", false, "after the report, keep everything running until Ctrl-C: print the environment (throwaway keys) for the README's commands, and a line per notification as it arrives")
	fs.BoolVar(&opts.Verbose, "verbose", false, "print the action's own log lines (after the report; with --serve, as they come); sm: the binary's stderr too; codeengine: the server's log lines")
	fs.IntVar(&opts.PoolSize, "pool", 2, "number of exec processes behind the web action")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: ./deploy.sh local [sm|codeengine] [--serve] [--verbose]
          (go run ./internal/devtools/cmd/localdemo [flags] [sm|codeengine] [flags])

  (none)      the action from build/action.zip run as OpenWhisk runs it, notified by a
              simulated Certificate Manager
  sm          build/exec, the terminal command and Code Engine job: Certificate Manager
              -> Secrets Manager migration, then Secrets Manager -> Secrets Manager sync
  codeengine  build/exec serve, the Code Engine application, notified by Event
              Notifications for a Secrets Manager source; then the job, and SIGTERM`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	name := ""
	if fs.NArg() > 0 {
		// The demo's name may come before or after the flags.
		if name = fs.Arg(0); name == "" {
			name = `""`
		}
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	demo, ok := demos[name]
	if !ok {
		fmt.Fprintf(stderr, "localdemo: unknown demo %q\n", name)
		fs.Usage()
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "localdemo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if opts.PoolSize < 1 {
		fmt.Fprintln(stderr, "localdemo: --pool must be at least 1")
		return 2
	}
	if opts.Serve && name != "" {
		fmt.Fprintf(stderr, "localdemo: --serve is for the OpenWhisk demo, not %s\n", name)
		return 2
	}
	if err := demo(ctx, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "localdemo: FAILED: %v\n", err)
		return 1
	}
	return 0
}
