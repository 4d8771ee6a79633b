package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/crn"
)

// Platforms check-config knows.
const (
	PlatformOpenWhisk  = "openwhisk"
	PlatformCodeEngine = "codeengine"
)

// checkConfig validates every setting as the deployed action does, before anything is
// deployed (deploy.sh runs it), and calls nothing: config.Parse in reconcile mode, so
// that the reconcile's switches are checked too; the platform's own rules; the alarm's
// cron expression. It prints "configuration valid" on stdout and exits 0,
// or one line per problem on stderr, naming the parameter and the rule and never a
// value, and exits 2.
func (r *runner) checkConfig(name string, args []string) int {
	fs := r.flagSet(name)
	f := NewFlags(fs)
	f.addRun()
	f.addConcurrency()
	f.addWebhookSecret()
	platform := fs.String("platform", PlatformOpenWhisk, "where it is to be deployed: "+PlatformOpenWhisk+" or "+PlatformCodeEngine)
	cron := fs.String("cron", "", "a 5-field cron expression (minute hour day-of-month month day-of-week) to check")
	if code, done := parse(fs, args); done {
		return code
	}
	cronGiven := false
	fs.Visit(func(fl *flag.Flag) { cronGiven = cronGiven || fl.Name == "cron" })
	f.WarnAPIKeyFlags(r.stderr)

	var problems []string
	if *platform != PlatformOpenWhisk && *platform != PlatformCodeEngine {
		problems = append(problems, fmt.Sprintf("--platform: must be %s or %s", PlatformOpenWhisk, PlatformCodeEngine))
	}
	f.getenv = r.getenv // errors name the variable the operator set
	params := f.Params(config.ModeReconcile, r.getenv)
	if _, err := config.Parse(params); err != nil {
		problems = append(problems, f.problems(err)...)
	}
	if *platform == PlatformCodeEngine && sourceIsSecretsManager(params) && isEmpty(params["webhook_secret"]) {
		problems = append(problems, f.label("webhook_secret", true)+
			": is required on Code Engine when the source is a Secrets Manager instance (Event Notifications authenticates its webhook calls with it)")
	}
	if cronGiven {
		problems = append(problems, cronProblems(*cron)...)
	}

	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(r.stderr, "%s: %s\n", name, p)
		}
		return ExitUsage
	}
	fmt.Fprintln(r.stdout, "configuration valid")
	return ExitOK
}

// sourceIsSecretsManager reports whether the source parameter is a Secrets Manager
// instance CRN (service name secrets-manager).
func sourceIsSecretsManager(params map[string]any) bool {
	s, _ := params["source_instance_crn"].(string)
	id, err := crn.ParseAnyInstance(strings.TrimSpace(s))
	return err == nil && id.Service == crn.SecretsManagerServiceName
}

func isEmpty(v any) bool {
	s, ok := v.(string)
	return v == nil || (ok && strings.TrimSpace(s) == "")
}
