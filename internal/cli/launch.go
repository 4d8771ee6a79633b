package cli

import (
	"io"
	"os"
	"strings"
)

// Runtime is what the binary serves once started.
type Runtime int

const (
	// RuntimeCommand: the terminal command; run Main with Launch.Args.
	RuntimeCommand Runtime = iota
	// RuntimeOpenWhisk: the OpenWhisk runtime started the binary; serve the
	// ActionLoop on stdin and fd 3.
	RuntimeOpenWhisk
)

// Launch is what the binary does.
type Launch struct {
	Runtime Runtime
	Args    []string // RuntimeCommand: the arguments to give Main
}

// Process is what Decide looks at: the running process, or a test's stand-in.
type Process struct {
	Args    []string // without the program name
	Environ []string // "NAME=value", as os.Environ
	// ResultPipe reports whether fd 3 is open for writing, as the ActionLoop proxy
	// leaves it.
	ResultPipe func() bool
	// StdinTerminal reports whether stdin is a terminal.
	StdinTerminal func() bool
}

// OSProcess is the running process.
func OSProcess() Process {
	return Process{
		Args:          os.Args[1:],
		Environ:       os.Environ(),
		ResultPipe:    func() bool { return fdWritable(3) },
		StdinTerminal: func() bool { return isTerminalFile(os.Stdin) },
	}
}

// Decide says what the binary started as p does, in this order:
//
//  1. with arguments: the command they name;
//  2. with any __OW_* variable in the environment: the ActionLoop. The OpenWhisk Go
//     runtime starts exec with no arguments, an environment of its own making that
//     always holds __OW_PROXY_VERSION, __OW_EXECUTION_ENV and __OW_WAIT_FOR_ACK
//     (docs/services/openwhisk.md §5.1; internal/devtools/owproxy passes the same), and
//     fd 3 as the result pipe (§4.1);
//  3. with CE_JOB set (a Code Engine job run): `reconcile`;
//  4. with fd 3 open for writing and stdin not a terminal (a harness, or
//     `exec 3>&1 <requests` by hand): the ActionLoop;
//  5. otherwise (an operator typed `exec`): the command with no arguments, which prints
//     the usage and exits 2, instead of the ActionLoop's complaint about fd 3.
//
// The Code Engine application's server joins here when its runtime is added.
func Decide(p Process) Launch {
	if len(p.Args) > 0 {
		return Launch{Runtime: RuntimeCommand, Args: p.Args}
	}
	env := map[string]string{}
	for _, kv := range p.Environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "__OW_") {
			return Launch{Runtime: RuntimeOpenWhisk}
		}
		env[k] = v
	}
	if env["CE_JOB"] != "" {
		return Launch{Runtime: RuntimeCommand, Args: []string{"reconcile"}}
	}
	if p.ResultPipe != nil && p.ResultPipe() && (p.StdinTerminal == nil || !p.StdinTerminal()) {
		return Launch{Runtime: RuntimeOpenWhisk}
	}
	return Launch{Runtime: RuntimeCommand}
}

// isTerminalWriter reports whether w is a file that is a terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminalFile(f)
}
