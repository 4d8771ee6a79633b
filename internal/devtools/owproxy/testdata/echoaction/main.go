// Command echoaction is the action the owproxy tests drive: it echoes its
// activation and misbehaves on demand.
//
// Start-up misbehaviour is chosen with the init env ECHO_MODE (an action can
// only learn it from its environment): noack, badack, garbageack, exit,
// spacedack (acks like the stock launcher, with spaces).
//
// Per-activation behaviour is chosen with parameters: stdout, stderr (text to
// log), sleep_ms, panic, exit (status), raw (a line written to fd 3 instead of
// a result, then exit), env (report os.Environ), respond (the result to
// return verbatim).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/certbackup/certbackup/internal/runtime/openwhisk/actionloop"
)

func main() {
	// Only the misbehaving modes wrap fd 3 themselves: a second *os.File for
	// the descriptor would close it when garbage collected, under
	// actionloop.Main's feet.
	mode := os.Getenv("ECHO_MODE")
	if mode == "" {
		actionloop.Main(handle)
		return
	}
	fd3 := os.NewFile(3, "pipe")
	switch mode {
	case "noack":
		_, _ = io.Copy(io.Discard, os.Stdin) // read forever, never ack
		return
	case "badack":
		fmt.Fprintln(fd3, `{"ok":false}`)
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	case "garbageack":
		fmt.Fprintln(fd3, `ready`)
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	case "exit":
		fmt.Fprintln(os.Stderr, "echoaction: exiting before the ack")
		os.Exit(2)
	case "spacedack":
		fmt.Fprintln(fd3, `{ "ok": true}`)
		noAck := func(k string) string {
			if k == "__OW_WAIT_FOR_ACK" {
				return ""
			}
			return os.Getenv(k)
		}
		if err := actionloop.Serve(context.Background(), os.Stdin, fd3, noAck, handle); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintln(os.Stderr, "echoaction: unknown ECHO_MODE")
	os.Exit(2)
}

func handle(ctx context.Context, act actionloop.Activation, params map[string]any) map[string]any {
	if s, ok := params["stdout"].(string); ok {
		fmt.Fprintln(os.Stdout, s)
	}
	if s, ok := params["stderr"].(string); ok {
		fmt.Fprintln(os.Stderr, s)
	}
	if ms, ok := params["sleep_ms"].(float64); ok {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if params["panic"] == true {
		panic("echoaction: panic on demand")
	}
	if code, ok := params["exit"].(float64); ok {
		os.Exit(int(code))
	}
	if raw, ok := params["raw"].(string); ok {
		fmt.Fprintln(os.NewFile(3, "pipe"), raw)
		os.Exit(0)
	}
	if r, ok := params["respond"].(map[string]any); ok {
		return r
	}
	result := map[string]any{
		"params": params,
		"activation": map[string]any{
			"id": act.ID, "action_name": act.ActionName, "action_version": act.ActionVersion,
			"namespace": act.Namespace, "transaction_id": act.TransactionID,
			"deadline_ms": act.Deadline.UnixMilli(),
		},
		"pid": os.Getpid(),
	}
	if dl, ok := ctx.Deadline(); ok {
		result["ctx_deadline_ms"] = dl.UnixMilli()
	}
	if params["env"] == true {
		result["env"] = os.Environ()
	}
	return result
}
