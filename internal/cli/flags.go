package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Flags are the settings of a subcommand. Each comes from its flag when the flag is
// given, otherwise from the environment through config.Environment, the one table of
// variables (the Code Engine runtime reads the same). They become the action's
// parameter map and go through config.Parse, so that the terminal command and the
// action validate alike.
type Flags struct {
	APIKey           string
	BackupAPIKey     string
	Source           string
	Backups          string
	IAMURL           string
	Endpoints        string
	PrivateEndpoints bool
	SecretGroup      string
	OwnershipKey     string
	WebhookSecret    string // check-config only
	Prune            bool   // reconcile and check-config
	DryRun           bool   // reconcile and check-config
	Concurrency      int    // reconcile, verify and check-config
	MaxConcurrency   int    // reconcile, verify and check-config
	JSON             bool   // reconcile and verify

	fs     *flag.FlagSet
	params map[string]string // flag name -> parameter, for the parameter flags defined on fs
	ignore []string          // parameters the command leaves out, even when set in the environment
	getenv func(string) string
}

// paramFlags names the flag of each parameter that has one; the others
// (source_public_key, max_requests_per_second) come from the environment only.
var paramFlags = map[string]string{
	"apikey":               "apikey",
	"backup_apikey":        "backup-apikey",
	"source_instance_crn":  "source",
	"backup_instance_crns": "backups",
	"iam_url":              "iam-url",
	"endpoints":            "endpoints",
	"private_endpoints":    "private-endpoints",
	"secret_group":         "secret-group",
	"webhook_secret":       "webhook-secret",
	"ownership_key":        "ownership-key",
	"prune":                "prune",
	"dry_run":              "dry-run",
	"concurrency":          "concurrency",
	"max_concurrency":      "max-concurrency",
}

// secretParams are discouraged on the command line: a flag's value lands in the shell
// history and in the process list.
var secretParams = []string{"apikey", "backup_apikey", "webhook_secret", "ownership_key"}

// NewFlags defines on fs the flags that reach the instances, which every subcommand
// shares.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, params: map[string]string{}}
	f.str(&f.APIKey, "apikey", "IBM Cloud API key with Writer on the source and Manager on the backups")
	f.str(&f.BackupAPIKey, "backup-apikey", "API key for the backup instances when not the same")
	f.str(&f.Source, "source", "CRN of the source instance")
	f.str(&f.Backups, "backups", "CRNs of the backup instances, comma-separated or a JSON array")
	f.str(&f.IAMURL, "iam-url", "IAM endpoint (default "+cms.DefaultIAMURL+")")
	f.str(&f.Endpoints, "endpoints", "JSON object from a region or an instance CRN to a base URL")
	f.boolean(&f.PrivateEndpoints, "private-endpoints", "use the private endpoints")
	f.str(&f.SecretGroup, "secret-group", "Secrets Manager backups: the secret group of the copies (default \"default\")")
	f.str(&f.OwnershipKey, "ownership-key", "key of the copies' ownership proofs (default: derived from the API key)")
	return f
}

// addRun defines the switches that change what a reconcile writes.
func (f *Flags) addRun() {
	f.boolean(&f.Prune, "prune", "delete the copies whose source certificate no longer exists (only copies of this source)")
	f.boolean(&f.DryRun, "dry-run", "plan and report; write and download nothing")
}

// addConcurrency defines how many certificates are worked on at once.
func (f *Flags) addConcurrency() {
	f.integer(&f.Concurrency, "concurrency", config.DefaultConcurrency, "certificates worked on at once, from 1 to --max-concurrency")
	f.integer(&f.MaxConcurrency, "max-concurrency", config.DefaultMaxConcurrency, fmt.Sprintf("the cap on --concurrency, at most %d", config.HardMaxConcurrency))
}

// addWebhookSecret defines the Event Notifications webhook's secret, which only the
// deployed application uses (check-config validates it).
func (f *Flags) addWebhookSecret() {
	f.str(&f.WebhookSecret, "webhook-secret", fmt.Sprintf("bearer secret of the Event Notifications webhook, at least %d characters", config.MinSecretLength))
}

func (f *Flags) str(p *string, name, usage string) {
	f.fs.StringVar(p, name, "", f.usage(name, usage))
}

func (f *Flags) boolean(p *bool, name, usage string) {
	f.fs.BoolVar(p, name, false, f.usage(name, usage))
}

func (f *Flags) integer(p *int, name string, def int, usage string) {
	f.fs.IntVar(p, name, def, f.usage(name, usage))
}

// usage records the flag's parameter and adds its variables to its usage.
func (f *Flags) usage(name, usage string) string {
	param := paramOf(name)
	f.params[name] = param
	env := config.EnvNames(param)
	if len(env) == 0 {
		return usage
	}
	if slices.Contains(secretParams, param) {
		return fmt.Sprintf("%s (set %s instead: a flag lands in the shell history and the process list)", usage, env[0])
	}
	return fmt.Sprintf("%s (env %s)", usage, env[0])
}

func paramOf(flagName string) string {
	for p, n := range paramFlags {
		if n == flagName {
			return p
		}
	}
	panic("cli: no parameter has the flag " + flagName)
}

// Params builds the action's parameter map for mode from the environment and, over
// it, the flags that were given.
func (f *Flags) Params(mode string, getenv func(string) string) map[string]any {
	params := config.FromEnv(mode, getenv)
	f.fs.Visit(func(fl *flag.Flag) {
		if p, ok := f.params[fl.Name]; ok {
			params[p] = fl.Value.String()
		}
	})
	for _, p := range f.ignore {
		delete(params, p)
	}
	return params
}

// Config is config.Parse of Params. Its error names flags and variables, never a
// value.
func (f *Flags) Config(mode string, getenv func(string) string) (*config.Config, error) {
	f.getenv = getenv
	cfg, err := config.Parse(f.Params(mode, getenv))
	if err != nil {
		return nil, fmt.Errorf("%w:\n  %s", config.ErrInvalid, strings.Join(f.problems(err), "\n  "))
	}
	return cfg, nil
}

// WarnAPIKeyFlags tells the operator, without the value, that a key or secret was
// given on the command line.
func (f *Flags) WarnAPIKeyFlags(stderr io.Writer) {
	f.fs.Visit(func(fl *flag.Flag) {
		if p := f.params[fl.Name]; slices.Contains(secretParams, p) {
			fmt.Fprintf(stderr, "warning: --%s puts a secret in the shell history and the process list; set %s instead\n", fl.Name, config.EnvNames(p)[0])
		}
	})
}

// problems is one line per problem of a config.Parse error, in the terms of the
// command line: "--source / SOURCE_INSTANCE_CRN: is required".
func (f *Flags) problems(err error) []string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var lines []string
	for _, e := range errs {
		if e == config.ErrInvalid {
			continue // the other half of one parameter's error ("%w: %w")
		}
		var pe *config.ParamError
		if !errors.As(e, &pe) {
			lines = append(lines, clean(e.Error()))
			continue
		}
		lines = append(lines, f.label(pe.Param, true)+": "+clean(f.rename(pe.Problem)))
	}
	return lines
}

// label names param as the operator sets it: its flag when this command has one, and
// its variable.
func (f *Flags) label(param string, withEnv bool) string {
	var parts []string
	if name, ok := paramFlags[param]; ok && f.fs.Lookup(name) != nil {
		parts = append(parts, "--"+name)
	}
	if env := config.EnvNames(param); len(env) > 0 && (withEnv || len(parts) == 0) {
		parts = append(parts, f.envName(env))
	}
	if len(parts) == 0 {
		return param
	}
	return strings.Join(parts, " / ")
}

// envName is the variable of names that is set (an operator who set CM_ENDPOINTS must
// read CM_ENDPOINTS), else the contract's name.
func (f *Flags) envName(names []string) string {
	for _, n := range names {
		if f.getenv != nil && f.getenv(n) != "" {
			return n
		}
	}
	return names[0]
}

// paramWord matches the names of parameters inside a problem (those with an
// underscore: the others are ordinary words too).
var paramWord = regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)+\b`)

// rename rewrites the parameters a problem mentions ("at most max_concurrency") in
// the terms of the command line.
func (f *Flags) rename(problem string) string {
	return paramWord.ReplaceAllStringFunc(problem, func(w string) string {
		if config.EnvNames(w) == nil {
			return w
		}
		return f.label(w, false)
	})
}

// shortID is the last field of a certificate or secret CRN, cut to 12 characters:
// enough to tell certificates apart in a table.
func shortID(certCRN string) string {
	if certCRN == "" {
		return "-"
	}
	id := certCRN[strings.LastIndexByte(certCRN, ':')+1:]
	if len(id) > 12 {
		id = id[:12]
	}
	return clean(id)
}

// plural is "1 certificate", "2 certificates"; words ending in a consonant and y
// ("copy") take "ies".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if l := len(word); l > 1 && word[l-1] == 'y' && !strings.ContainsRune("aeiou", rune(word[l-2])) {
		word = word[:l-1] + "ie"
	}
	return strconv.Itoa(n) + " " + word + "s"
}
