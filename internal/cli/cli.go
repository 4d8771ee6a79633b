// Package cli is the logic of the terminal command: `reconcile`, `verify`,
// `check-config` and the channel commands. It turns flags and environment variables
// (config.Environment, the one table of them) into the same config.Config as the
// action's parameters, runs the reconcile and prints a summary (and with --details a
// table), or the full report as JSON. The binary's main wires it in through Decide and
// Main; this package has no main and reads the environment only through what it is
// given.
//
// It must never print an API key, a token or key material: what it prints comes from
// the report (CRNs, names, outcomes, error messages that the API clients have already
// filtered) and from config errors, which name parameters and never quote values.
// Everything that came from a service is passed through clean before it reaches the
// terminal.
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
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Exit codes.
const (
	ExitOK    = 0 // verify: the backups match; reconcile: completed without failure or deferral; check-config: valid
	ExitFail  = 1 // they do not match, something failed, or work was left for the next run
	ExitUsage = 2 // usage or configuration error: nothing was called
)

// Main runs the command in args (without the program name) and returns its exit code.
func Main(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	r := &runner{
		stdout: stdout, stderr: stderr, getenv: getenv,
		isTerminal: isTerminalWriter, progressEvery: 200 * time.Millisecond,
	}
	return r.main(args)
}

// runner holds a command's I/O and the knobs tests turn.
type runner struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	deps          app.Deps             // tests: shorter retries
	isTerminal    func(io.Writer) bool // whether a writer is a terminal (tests pretend)
	progressEvery time.Duration        // the live progress line is redrawn at most this often
	minRemaining  time.Duration        // reconcile.Options.MinRemaining; 0: its default
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
		{"check-config", "validate the settings (and --cron) as the action would; call nothing", (*runner).checkConfig},
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
	fmt.Fprintf(r.stderr, "unknown command %q\n", clean(args[0]))
	r.usage()
	return ExitUsage
}

func (r *runner) usage() {
	w := r.stderr
	fmt.Fprintln(w, "usage: exec <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-17s %s\n", "help", "this text")
	var names, older []string
	for _, e := range config.Environment {
		names = append(names, e.Names[0])
		older = append(older, e.Names[1:]...)
	}
	fmt.Fprintln(w, "\nSettings come from flags or from the environment; a flag that is given wins:")
	fmt.Fprintln(w, wrap(strings.Join(names, ", ")+".", "  ", 80))
	if len(older) > 0 {
		fmt.Fprintln(w, wrap("The older names "+strings.Join(older, " and ")+" are still accepted.", "", 80))
	}
	fmt.Fprintln(w, "To restore, swap them: the backup as --source, a new instance as --backups.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 failed, differs or left work for the next run,")
	fmt.Fprintln(w, "2 usage or configuration error (nothing was called).")
	fmt.Fprintln(w, "Run 'exec <command> -h' for its flags.")
}

// wrap breaks text into lines of at most width, each starting with indent.
func wrap(text, indent string, width int) string {
	var lines []string
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}

// flagSet is a subcommand's flag set, whose -h starts with what the command does.
func (r *runner) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(r.stderr)
	fs.Usage = func() {
		for _, c := range commands() {
			if c.name == name {
				fmt.Fprintf(r.stderr, "usage: exec %s [flags]\n\n%s\n\nflags:\n", name, c.summary)
			}
		}
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; done is true when the command is over (help, or a usage error)
// with code.
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, true
		}
		return ExitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), clean(fs.Arg(0)))
		return ExitUsage, true
	}
	return 0, false
}

// report runs reconcile or verify.
func (r *runner) report(name, mode string, args []string) int {
	fs := r.flagSet(name)
	f := NewFlags(fs)
	if mode == config.ModeReconcile {
		f.addRun()
	} else {
		// verify compares; prune and dry_run change what a reconcile writes, and a
		// PRUNE left in the environment must not change verify's answer.
		f.ignore = []string{"prune", "dry_run"}
	}
	f.addConcurrency()
	fs.BoolVar(&f.JSON, "json", false, "print the full report as JSON instead of the summary")
	details := fs.Bool("details", false, "print one line per certificate and backup before the summary")
	timeout := fs.Duration("timeout", 30*time.Minute, "start no new work after this; what is left is reported as deferred")
	verbose := fs.Bool("verbose", false, "log each certificate written to stderr")
	if code, done := parse(fs, args); done {
		return code
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
		fmt.Fprintf(r.stderr, "%s: %s\n", name, strings.Join(f.problems(err), "; "))
		return ExitUsage
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	opts := app.RunOptions(cfg, logger)
	opts.MinRemaining = r.minRemaining
	var live *liveProgress
	if r.showProgress() && !*verbose {
		live = &liveProgress{w: r.stderr, label: name, every: r.progressEvery}
		opts.Progress = live.update
	}
	rep := ap.Reconcile(ctx, mode, opts)
	live.clear()

	if f.JSON {
		if err := writeJSON(r.stdout, rep); err != nil {
			fmt.Fprintf(r.stderr, "%s: write the report: %v\n", name, err)
			return ExitFail
		}
	} else {
		printReport(r.stdout, rep, *details)
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
