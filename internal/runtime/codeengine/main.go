package codeengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certbackup/certbackup/internal/app"
	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
)

// Exit codes of Main.
const (
	ExitOK     = 0 // stopped by SIGTERM or SIGINT after the requests in flight finished
	ExitFailed = 1 // could not listen or serve
	ExitUsage  = 2 // arguments, or a PORT that is not a port
)

const usage = `usage: exec serve

The Code Engine application: an HTTP server on :$PORT (default 8080).
  POST /events   Event Notifications webhook (Secrets Manager events)
  POST /notify   Certificate Manager Callback URL ({"data":"<JWT>"})
  GET  /healthz  200 when the configuration is valid, 503 when it is not
The configuration comes from the environment (APIKEY, SOURCE_INSTANCE_CRN,
BACKUP_INSTANCE_CRNS, WEBHOOK_SECRET, ...: see README.md). SIGTERM or SIGINT: stop
accepting, finish the requests in flight (at most 10 s), exit 0.
`

// Main runs `exec serve` with the arguments after "serve" and returns the exit code.
// Logs are JSON lines on stdout; stderr gets only the usage.
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once, as an operator at a terminal expects
	}()
	return run(ctx, args, getenv, stdout, stderr, nil)
}

// run is Main after the signals: ctx done means stop. ln, when set, is served instead
// of :$PORT (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ln net.Listener) int {
	if len(args) > 0 {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	addr, err := listenAddr(getenv("PORT"))
	if err != nil {
		logger.Error("cannot listen", slog.String("variable", "PORT"), slog.String("problem", err.Error()))
		return ExitUsage
	}
	logger.Info("starting", slog.String("addr", addr), slog.String("ce_app", clip(getenv("CE_APP"), 64)),
		slog.String("revision", clip(getenv("K_REVISION"), 128)))
	opts := Options{Addr: addr, Listener: ln, Logger: logger}
	cfg, err := config.Parse(config.FromEnv(config.ModeNotify, getenv))
	if err == nil {
		var a *app.App
		if a, err = app.New(cfg, deps(logger)); err == nil {
			opts.Handler = a
		}
	}
	if err != nil {
		logProblems(logger, err)
		opts.Misconfigured = true
	}
	if err := Serve(ctx, opts); err != nil {
		logger.Error("server failed", slog.String("error", err.Error()))
		return ExitFailed
	}
	return ExitOK
}

// listenAddr is ":$PORT", ":8080" when PORT is unset.
func listenAddr(port string) (string, error) {
	if port == "" {
		return DefaultAddr, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", errors.New("must be a port number from 1 to 65535")
	}
	return ":" + strconv.Itoa(n), nil
}

// deps are what the App borrows from the process: one HTTP client for every API call
// of every request, so that connections and IAM tokens are reused.
func deps(logger *slog.Logger) app.Deps {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = ibmapi.MaxIdleConnsPerHost
	return app.Deps{Logger: logger, HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

// logProblems logs one line per problem of an invalid configuration: the parameter,
// the environment variables that set it and the rule it broke. config's errors never
// quote a value, and nothing else is added here.
func logProblems(logger *slog.Logger, err error) {
	for _, e := range leaves(err) {
		if e == config.ErrInvalid {
			continue // the other half of a parameter's "%w: %w"
		}
		var pe *config.ParamError
		if !errors.As(e, &pe) {
			logger.Error("invalid configuration", slog.String("problem", e.Error()))
			continue
		}
		logger.Error("invalid configuration", slog.String("parameter", pe.Param),
			slog.String("variables", strings.Join(config.EnvNames(pe.Param), " or ")), slog.String("problem", pe.Problem))
	}
}

// leaves flattens errors.Join and "%w: %w" trees down to the errors that wrap one
// error or none.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			var pe *config.ParamError
			if errors.As(e, &pe) {
				out = append(out, pe)
				continue
			}
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
