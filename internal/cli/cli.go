// Package cli is the logic of the terminal command: `reconcile` and `verify` (the
// channel commands join them here). It turns flags and environment variables into the
// same config.Config as the action's parameters, runs the reconcile and prints a table
// and a summary, or the full report as JSON. The binary's main wires it in; this
// package has no main and reads the environment only through the getenv it is given.
//
// It must never print an API key, a token or key material: what it prints comes from
// the report (CRNs, names, outcomes, error messages that the cms client has already
// filtered) and from config errors, which name parameters and never quote secrets.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Exit codes.
const (
	ExitOK    = 0 // verify: the backups match; reconcile: completed without failure or deferral
	ExitFail  = 1 // they do not match, something failed, or work was left for the next run
	ExitUsage = 2 // usage or configuration error: nothing was called
)

// Main runs the command in args (without the program name) and returns its exit code.
func Main(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	r := &runner{
		stdout: stdout, stderr: stderr, getenv: getenv,
		progressEveryN: 50, progressEvery: 2 * time.Second,
	}
	return r.main(args)
}

// runner holds a command's I/O and the knobs tests turn.
type runner struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	deps           app.Deps      // tests: shorter retries
	progressEveryN int           // a progress line every N certificates...
	progressEvery  time.Duration // ...or every so often, whichever comes first
	minRemaining   time.Duration // reconcile.Options.MinRemaining; 0: its default
}

type command struct {
	name    string
	summary string
	run     func(r *runner, name string, args []string) int
}

func commands() []command {
	return []command{
		{"reconcile", "make every backup equal to the source (--dry-run: only plan)", func(r *runner, name string, args []string) int {
			return r.report(name, config.ModeReconcile, args)
		}},
		{"verify", "compare the backups with the source; exit 0 when they match", func(r *runner, name string, args []string) int {
			return r.report(name, config.ModeVerify, args)
		}},
		{"register-channel", "register --url as the source's Callback URL channel (idempotent)", (*runner).channel},
		{"test-channel", "ask Certificate Manager to send a test notification to --url", (*runner).channel},
	}
}

func (r *runner) main(args []string) int {
	if len(args) == 0 {
		r.usage()
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		r.usage()
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(r, c.name, args[1:])
		}
	}
	fmt.Fprintf(r.stderr, "unknown command %q\n", args[0])
	r.usage()
	return ExitUsage
}

func (r *runner) usage() {
	fmt.Fprintln(r.stderr, "usage: exec <command> [flags]")
	fmt.Fprintln(r.stderr, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(r.stderr, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(r.stderr, "\nSettings come from flags or from the environment (CM_APIKEY, BACKUP_APIKEY,")
	fmt.Fprintln(r.stderr, "SOURCE_INSTANCE_CRN, BACKUP_INSTANCE_CRNS, IAM_URL, CM_ENDPOINTS, PRIVATE_ENDPOINTS).")
	fmt.Fprintln(r.stderr, "To restore, swap them: the backup as --source, a new instance as --backups.")
	fmt.Fprintln(r.stderr, "Run 'exec <command> -h' for its flags.")
}

// report runs reconcile or verify.
func (r *runner) report(name, mode string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(r.stderr)
	f := NewFlags(fs)
	timeout := fs.Duration("timeout", 30*time.Minute, "start no new work after this; what is left is reported as deferred")
	verbose := fs.Bool("verbose", false, "log each certificate written to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(r.stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return ExitUsage
	}
	f.WarnAPIKeyFlags(r.stderr)
	cfg, err := f.Config(mode, r.getenv)
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitUsage
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(r.stderr, nil))
	}
	d := r.deps
	d.Logger = logger
	ap, err := app.New(cfg, d)
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitUsage
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	opts := app.RunOptions(cfg, logger)
	opts.MinRemaining, opts.Progress = r.minRemaining, r.progress()
	rep := ap.Reconcile(ctx, mode, opts)

	if f.JSON {
		if err := writeJSON(r.stdout, rep); err != nil {
			fmt.Fprintf(r.stderr, "%s: write the report: %v\n", name, err)
			return ExitFail
		}
	} else {
		printReport(r.stdout, rep)
	}
	return exitCode(rep)
}

// exitCode follows the report's one rule of success.
func exitCode(rep *reconcile.Report) int {
	if rep.OK() {
		return ExitOK
	}
	return ExitFail
}

// client is a Certificate Manager client of cfg with key (the channel commands).
func (r *runner) client(cfg *config.Config, key string, logger *slog.Logger) (*cms.Client, error) {
	return cms.New(cms.Config{
		APIKey: key, IAMURL: cfg.IAMURL, Endpoints: cfg.Endpoints, Private: cfg.PrivateEndpoints, Logger: logger,
		MaxRetries: r.deps.MaxRetries, MinRetryInterval: r.deps.MinRetryInterval, MaxRetryInterval: r.deps.MaxRetryInterval,
	})
}

// progress prints a line on stderr every progressEveryN certificates or progressEvery,
// so that a long run shows it is alive. The reconcile calls it from one goroutine at a
// time.
func (r *runner) progress() func(done, total int) {
	last := time.Now()
	return func(done, total int) {
		if done%r.progressEveryN != 0 && time.Since(last) < r.progressEvery {
			return
		}
		last = time.Now()
		fmt.Fprintf(r.stderr, "progress: %d/%d certificates\n", done, total)
	}
}
