// Command standin stands in, in test/deploy, for every program deploy.sh runs: ibmcloud
// (fn, target, ce, event-notifications, secrets-manager), wskdeploy, wsk, curl, go and the
// certbackup terminal command. The harness installs it under those names; what it does
// follows the name it was started as.
//
// It records, so that tests can assert what deploy.sh asked for:
//   - every invocation, as "<name> <args...>" on one line of $STUB_LOG;
//   - for each invocation, the variables deploy.sh passes through the environment, on
//     $STUB_ENV_LOG ("<name> VAR=value", or "<name> VAR<unset>").
//
// An invocation whose line contains $STUB_FAIL fails with exit status 1.
//
// Code Engine, Event Notifications and Secrets Manager keep their state in
// $STUB_STATE/state.json (package fakecloud). Like the real CLIs, the stand-in accepts only
// the commands and flags IBM documents (docs/services/code-engine.md lists them, with
// sources), answers `--output json` with JSON, and fails with "not found" for a resource
// that does not exist, so that a wrong flag or a missing look-up in deploy.sh fails here.
//
// Knobs, all environment variables:
//
//	STUB_URL            what `fn action get X --url` prints (unset: a plausible URL)
//	STUB_CONFIG_ERRORS  `go run ... check-config` prints this on stderr and fails as go run
//	                    does when the program exits 2 ("exit status 2", exit 1)
//	                    (unset or empty: "configuration valid", exit 0)
//	STUB_TEST_CHANNEL   test-channel: "unconfirmed" (default, exit 3), "confirmed" (exit 0),
//	                    "fail" (exit 1)
//	STUB_HEALTHZ        "fail": the app's /healthz answers 503
//	REAL_GO             the go command to run for every other `go` invocation
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// envLogged are the variables whose value (or absence) each invocation records.
var envLogged = []string{
	"APIKEY", "CM_APIKEY", "BACKUP_APIKEY", "SOURCE_INSTANCE_CRN", "BACKUP_INSTANCE_CRNS",
	"SOURCE_PUBLIC_KEY", "IAM_URL", "ENDPOINTS", "CM_ENDPOINTS", "PRIVATE_ENDPOINTS",
	"SECRET_GROUP", "WEBHOOK_SECRET", "RECONCILE_CRON", "PACKAGE_NAME", "CGO_ENABLED", "GOOS",
	"GOARCH", "IBMCLOUD_EN_ENDPOINT",
}

// exitError ends the program with a status after printing a message on stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	line := name
	if len(args) > 0 {
		line += " " + strings.Join(args, " ")
	}
	if err := record(name, line); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(70)
	}
	if f := os.Getenv("STUB_FAIL"); f != "" && strings.Contains(line, f) {
		fmt.Fprintf(os.Stderr, "%s: simulated failure\n", name)
		os.Exit(1)
	}

	var err error
	switch name {
	case "go":
		err = goCommand(args)
	case "curl":
		err = curl(args)
	case "certbackup-cli":
		err = certbackupCLI(args)
	case "wsk", "wskdeploy":
		err = openWhisk(name, line, args)
	case "ibmcloud":
		err = ibmcloud(line, args)
	default:
		err = fail(70, "standin: installed under an unknown name %q", name)
	}
	if err != nil {
		if e, ok := err.(*exitError); ok {
			if e.msg != "" {
				fmt.Fprintln(os.Stderr, e.msg)
			}
			os.Exit(e.code)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// record appends the invocation and its environment to the logs.
func record(name, line string) error {
	logPath := os.Getenv("STUB_LOG")
	if logPath == "" {
		return fmt.Errorf("STUB_LOG is not set")
	}
	if err := appendFile(logPath, line+"\n"); err != nil {
		return err
	}
	envPath := os.Getenv("STUB_ENV_LOG")
	if envPath == "" {
		return nil
	}
	var b strings.Builder
	for _, v := range envLogged {
		if value, ok := os.LookupEnv(v); ok {
			fmt.Fprintf(&b, "%s %s=%s\n", name, v, strings.ReplaceAll(value, "\n", `\n`))
		} else {
			fmt.Fprintf(&b, "%s %s<unset>\n", name, v)
		}
	}
	return appendFile(envPath, b.String())
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// goCommand answers `go run ... check-config` and `go run ... localdemo` itself and
// hands everything else to the real go.
func goCommand(args []string) error {
	if len(args) > 0 && args[0] == "run" {
		for i, a := range args {
			switch {
			case a == "check-config":
				return checkConfig(args[i+1:])
			case strings.HasSuffix(a, "/localdemo"):
				return localDemo(args[i+1:])
			}
		}
	}
	real := os.Getenv("REAL_GO")
	if real == "" {
		return fail(70, "standin: REAL_GO is not set")
	}
	return syscall.Exec(real, append([]string{"go"}, args...), os.Environ())
}

// localDemo plays `go run ./internal/devtools/cmd/localdemo`: its flags (given as
// --name value), then the demo's name (none: OpenWhisk; sm, codeengine), then more
// flags. It says
// which demo it would run and with what, and refuses what the real command refuses as
// go run reports a program's exit 2 ("exit status 2", exit 1).
func localDemo(args []string) error {
	valued := map[string]bool{"--zip": true, "--exec": true, "--manifest": true, "--pool": true}
	switches := map[string]bool{"--serve": true, "--verbose": true}
	demo, got := "", []string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case valued[a] && i+1 < len(args):
			got = append(got, a+"="+args[i+1])
			i++
		case switches[a]:
			got = append(got, a)
		case !strings.HasPrefix(a, "-") && demo == "" && (a == "sm" || a == "codeengine"):
			demo = a
		default:
			return fail(1, "localdemo: unexpected argument %q\nexit status 2", a)
		}
	}
	if demo != "" && slices.Contains(got, "--serve") {
		return fail(1, "localdemo: --serve is for the OpenWhisk demo, not %s\nexit status 2", demo)
	}
	if demo == "" {
		demo = "openwhisk"
	}
	fmt.Printf("local demo stand-in: %s %s\n", demo, strings.Join(got, " "))
	return nil
}

// checkConfig plays the binary's check-config subcommand: valid unless
// STUB_CONFIG_ERRORS says otherwise; its own flags must be well formed.
func checkConfig(args []string) error {
	f, err := parseFlags(args, spec{"platform": str, "cron": str})
	if err != nil {
		return fail(2, "check-config: %v", err)
	}
	switch f.get("platform") {
	case "openwhisk", "codeengine":
	default:
		return fail(2, "check-config: --platform must be openwhisk or codeengine")
	}
	if errs := os.Getenv("STUB_CONFIG_ERRORS"); errs != "" {
		// As with the real `go run`: the program's lines, then go's "exit status 2", and
		// go run's own exit status 1.
		return fail(1, "%s\nexit status 2", errs)
	}
	fmt.Println("configuration valid")
	return nil
}

// certbackupCLI plays `exec register-channel|test-channel --url URL`.
func certbackupCLI(args []string) error {
	if len(args) == 0 {
		return fail(2, "usage: exec <command>")
	}
	f, err := parseFlags(args[1:], spec{"url": str})
	if err != nil {
		return fail(2, "%s: %v", args[0], err)
	}
	url := f.get("url")
	switch args[0] {
	case "register-channel":
		fmt.Printf("Registered Callback URL channel ch-1 on %s: %s (payload version 4).\n", os.Getenv("SOURCE_INSTANCE_CRN"), url)
		return nil
	case "test-channel":
		switch os.Getenv("STUB_TEST_CHANNEL") {
		case "confirmed":
			fmt.Printf("Certificate Manager confirmed that %s received test_notification_channel.\n", url)
			return nil
		case "fail":
			return fail(1, "test-channel: channels.test: 500 internal error")
		default:
			fmt.Printf("Certificate Manager accepted the request to send test_notification_channel to channel ch-1 (%s); its answer does not say whether the endpoint received it.\n", url)
			return &exitError{code: 3}
		}
	}
	return fail(2, "unknown command %q", args[0])
}

// openWhisk plays wskdeploy and `wsk action get X --url`.
func openWhisk(name, line string, args []string) error {
	if name == "wsk" {
		return actionURL(args)
	}
	if strings.Contains(line, "undeploy") {
		fmt.Println("Success: Undeployment completed successfully.")
	} else {
		fmt.Println("Success: Deployment completed successfully.")
	}
	return nil
}

// actionURL prints what `ibmcloud fn action get PKG/notify --url` prints.
func actionURL(args []string) error {
	var target string
	for _, a := range args {
		if strings.Contains(a, "/") {
			target = a
		}
	}
	fmt.Printf("ok: got action %s\n", target[strings.LastIndex(target, "/")+1:])
	if u, ok := os.LookupEnv("STUB_URL"); ok {
		if u != "" {
			fmt.Println(u)
		}
		return nil
	}
	fmt.Println("https://us-south.functions.appdomain.cloud/api/v1/web/ns-guid/" + target)
	return nil
}

// ibmcloud dispatches on the plug-in.
func ibmcloud(line string, args []string) error {
	if len(args) == 0 {
		return fail(2, "usage: ibmcloud <command>")
	}
	switch args[0] {
	case "fn":
		switch {
		case strings.HasPrefix(line, "ibmcloud fn action get ") && strings.HasSuffix(line, " --url"):
			return actionURL(args)
		case strings.HasPrefix(line, "ibmcloud fn undeploy"):
			fmt.Println("Success: Undeployment completed successfully.")
			return nil
		case strings.HasPrefix(line, "ibmcloud fn deploy"):
			fmt.Println("Success: Deployment completed successfully.")
			return nil
		}
		return fail(2, "standin: unknown fn command: %s", line)
	case "target":
		return withState(func(s *cloud) error { return s.target(args[1:]) })
	case "ce", "code-engine":
		return withState(func(s *cloud) error { return s.codeEngine(args[1:]) })
	case "event-notifications", "en":
		return withState(func(s *cloud) error { return s.eventNotifications(args[1:]) })
	case "secrets-manager", "sm":
		return withState(func(s *cloud) error { return s.secretsManager(args[1:]) })
	}
	return fail(2, "standin: unknown ibmcloud command %q", args[0])
}

// curl answers a GET of an application's /healthz (the only URL deploy.sh fetches).
func curl(args []string) error {
	f, err := parseFlags(args, spec{
		"fail": boolean, "silent": boolean, "show-error": boolean,
		"max-time": str, "retry": str, "retry-delay": str, "retry-connrefused": boolean,
		"output": str, "write-out": str, "": multi,
	})
	if err != nil {
		return fail(2, "curl: %v", err)
	}
	urls := f.positional()
	if len(urls) != 1 {
		return fail(2, "curl: want exactly one URL, got %q", urls)
	}
	u := urls[0]
	var found bool
	err = withState(func(s *cloud) error {
		for _, p := range s.Projects {
			for _, app := range p.Apps {
				if u == app.URL+"/healthz" {
					found = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fail(6, "curl: (6) Could not resolve host: %s", u)
	}
	code := "200"
	if os.Getenv("STUB_HEALTHZ") == "fail" {
		code = "503"
	}
	if f.get("write-out") != "" {
		fmt.Print(strings.ReplaceAll(f.get("write-out"), "%{http_code}", code))
	}
	if code != "200" {
		return fail(22, "curl: (22) The requested URL returned error: %s", code)
	}
	return nil
}
