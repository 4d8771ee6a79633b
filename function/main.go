// Command exec is the action binary. OpenWhisk (IBM Cloud Functions) starts it with no
// arguments: it then speaks the ActionLoop protocol on stdin and fd 3 for as long as the
// container lives, and reads nothing from its environment but the __OW_* variables and
// each activation's parameters (the runtime gives it no PATH and no HOME).
//
// Run from a terminal with a subcommand it is the operator's tool: `exec reconcile`,
// `exec verify`, `exec check-config`, `exec register-channel`, `exec test-channel` (see
// README.md); with none it prints the usage. A Code Engine job (CE_JOB set) runs
// `exec reconcile`. cli.Decide says which, from the arguments and the environment.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/certbackup/certbackup/internal/cli"
	"github.com/certbackup/certbackup/internal/runtime/codeengine"
	"github.com/certbackup/certbackup/internal/runtime/openwhisk"
	"github.com/certbackup/certbackup/internal/runtime/openwhisk/actionloop"
)

func main() {
	launch := cli.Decide(cli.OSProcess())
	if launch.Runtime == cli.RuntimeCommand && len(launch.Args) > 0 && launch.Args[0] == "serve" {
		// The Code Engine application (internal/runtime/codeengine).
		os.Exit(codeengine.Main(launch.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	if launch.Runtime != cli.RuntimeOpenWhisk {
		os.Exit(cli.Main(launch.Args, os.Stdout, os.Stderr, os.Getenv))
	}
	// One JSON line per notable step, on stdout, which the platform keeps as the
	// activation's logs. The Action lives as long as the container: a warm container
	// reuses its IAM token, public key, connections and copy locations.
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	a := openwhisk.New(openwhisk.Options{Logger: logger})
	actionloop.Main(func(ctx context.Context, act actionloop.Activation, params map[string]any) map[string]any {
		return a.Handle(ctx, openwhisk.Meta{ActivationID: act.ID, Deadline: act.Deadline}, params)
	})
}
