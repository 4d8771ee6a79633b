// Package owproxy is the invoker/proxy side of Apache OpenWhisk (IBM Cloud
// Functions) for a precompiled Go action, reproduced for end-to-end tests and
// the local demo: unpack the action zip and check exec.env (Unpack), start
// `exec` the way the Go runtime proxy does and drive it over the ActionLoop
// protocol (Start, Process.Run, Pool), and put the controller's web-action
// layer in front of it (NewWebAction).
//
// The behaviour follows docs/services/openwhisk.md (§2–§7 and §8.3–§8.5):
// status codes and messages are the platform's.
// Where the harness is deliberately stricter than the platform, the doc
// comment says so.
//
// The harness never prints a request body, a parameter or an action result:
// they carry credentials. The action's own stdout and stderr are captured
// (and copied to the writers the caller chose) so that tests can check that
// the action does not log secrets either.
//
// It runs on Linux (the platform's OS) and other Unix systems: it relies on
// inherited file descriptors and process groups.
package owproxy

import "time"

const (
	// DefaultExecutionEnv is OW_EXECUTION_ENV of the image behind IBM's
	// go:1.21 kind, which exec.env must match (docs/services/openwhisk.md §2.1,
	// §2.2).
	DefaultExecutionEnv = "openwhisk/action-golang-v1.21"

	// DefaultProxyVersion is what the runtime proxy puts in
	// __OW_PROXY_VERSION (a stale internal number, docs/services/openwhisk.md §5.1).
	DefaultProxyVersion = "1.17.1"

	// DefaultTimeout is OpenWhisk's default action time limit.
	DefaultTimeout = 60 * time.Second

	// DefaultAckTimeout bounds the wait for the start-up ack. The real
	// proxy waits forever (the platform's init timeout then destroys the
	// container); a test harness must not.
	DefaultAckTimeout = 10 * time.Second

	// DefaultMaxBody is Apache OpenWhisk's invocation payload limit, which
	// the controller applies to web-action request entities.
	DefaultMaxBody = 1 << 20

	// Sentinel is what the proxy writes to stdout and stderr after every
	// activation; the invoker cuts the container logs at it.
	Sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
)
