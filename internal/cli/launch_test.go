package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDecide: what the binary does, from how it was started.
func TestDecide(t *testing.T) {
	// What the OpenWhisk Go runtime (and internal/devtools/owproxy) passes at start.
	openwhiskEnv := []string{"__OW_API_HOST=", "__OW_EXECUTION_ENV=openwhisk/action-golang-v1.21", "__OW_PROXY_VERSION=1.17.1", "__OW_WAIT_FOR_ACK=1"}
	terminalEnv := []string{"PATH=/usr/bin", "HOME=/root", "TERM=xterm"}
	tests := []struct {
		name          string
		args          []string
		environ       []string
		fd3, stdinTTY bool
		want          Launch
	}{
		{name: "the OpenWhisk runtime", environ: openwhiskEnv, fd3: true, want: Launch{Runtime: RuntimeOpenWhisk}},
		{name: "the runtime with an empty __OW_ variable only", environ: []string{"__OW_API_HOST="}, fd3: true, want: Launch{Runtime: RuntimeOpenWhisk}},
		{name: "the runtime without fd 3: the ActionLoop says what is wrong", environ: openwhiskEnv, want: Launch{Runtime: RuntimeOpenWhisk}},
		{name: "an operator at a terminal", environ: terminalEnv, stdinTTY: true, want: Launch{Runtime: RuntimeCommand}},
		{name: "an operator at a terminal with a stray fd 3", environ: terminalEnv, fd3: true, stdinTTY: true, want: Launch{Runtime: RuntimeCommand}},
		{name: "a script without fd 3", environ: terminalEnv, want: Launch{Runtime: RuntimeCommand}},
		{name: "by hand: exec 3>&1 <requests", environ: terminalEnv, fd3: true, want: Launch{Runtime: RuntimeOpenWhisk}},
		{name: "a subcommand", args: []string{"verify", "--json"}, environ: terminalEnv, stdinTTY: true, want: Launch{Runtime: RuntimeCommand, Args: []string{"verify", "--json"}}},
		{name: "a subcommand wins over __OW_ variables", args: []string{"check-config"}, environ: openwhiskEnv, fd3: true, want: Launch{Runtime: RuntimeCommand, Args: []string{"check-config"}}},
		{name: "a Code Engine job", environ: []string{"CE_JOB=certbackup-reconcile", "CE_JOBRUN=certbackup-reconcile-abc", "CE_TASK_INDEX=0"}, want: Launch{Runtime: RuntimeCommand, Args: []string{"reconcile"}}},
		{name: "a Code Engine job with arguments runs them", args: []string{"verify"}, environ: []string{"CE_JOB=x"}, want: Launch{Runtime: RuntimeCommand, Args: []string{"verify"}}},
		{name: "CE_JOB empty is not a job", environ: []string{"CE_JOB="}, want: Launch{Runtime: RuntimeCommand}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(Process{
				Args: tt.args, Environ: tt.environ,
				ResultPipe:    func() bool { return tt.fd3 },
				StdinTerminal: func() bool { return tt.stdinTTY },
			})
			assert.Equal(t, tt.want, got)
		})
	}
}
