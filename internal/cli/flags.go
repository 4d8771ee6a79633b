package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Flags are the settings every subcommand shares. Each can come from a flag or from
// the environment variable deploy.sh uses; a flag that is given wins. They become the
// action's parameter map and go through config.Parse, so the terminal command and the
// action validate alike.
type Flags struct {
	APIKey           string
	BackupAPIKey     string
	Source           string
	Backups          string
	IAMURL           string
	Endpoints        string
	PrivateEndpoints bool
	Prune            bool
	DryRun           bool
	Concurrency      int
	JSON             bool

	fs *flag.FlagSet
}

// setting ties a parameter to its flag and its environment variable ("" when it has
// none).
type setting struct {
	param, flag, env string
}

var settings = []setting{
	{"apikey", "apikey", "CM_APIKEY"},
	{"backup_apikey", "backup-apikey", "BACKUP_APIKEY"},
	{"source_instance_crn", "source", "SOURCE_INSTANCE_CRN"},
	{"backup_instance_crns", "backups", "BACKUP_INSTANCE_CRNS"},
	{"iam_url", "iam-url", "IAM_URL"},
	{"endpoints", "endpoints", "CM_ENDPOINTS"},
	{"private_endpoints", "private-endpoints", "PRIVATE_ENDPOINTS"},
	{"prune", "prune", ""},
	{"dry_run", "dry-run", ""},
	{"concurrency", "concurrency", ""},
}

// NewFlags defines the shared flags on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.StringVar(&f.APIKey, "apikey", "", "IBM Cloud API key (discouraged: it lands in the shell history and the process list; set CM_APIKEY)")
	fs.StringVar(&f.BackupAPIKey, "backup-apikey", "", "API key for the backup instances when not the same (discouraged: set BACKUP_APIKEY)")
	fs.StringVar(&f.Source, "source", "", "CRN of the source instance (env SOURCE_INSTANCE_CRN)")
	fs.StringVar(&f.Backups, "backups", "", "CRNs of the backup instances, comma-separated or a JSON array (env BACKUP_INSTANCE_CRNS)")
	fs.StringVar(&f.IAMURL, "iam-url", "", "IAM endpoint (env IAM_URL; default "+cms.DefaultIAMURL+")")
	fs.StringVar(&f.Endpoints, "endpoints", "", `JSON object region -> Certificate Manager URL (env CM_ENDPOINTS)`)
	fs.BoolVar(&f.PrivateEndpoints, "private-endpoints", false, "use the private endpoints (env PRIVATE_ENDPOINTS)")
	fs.BoolVar(&f.Prune, "prune", false, "delete the copies whose source certificate no longer exists (only copies of this source)")
	fs.BoolVar(&f.DryRun, "dry-run", false, "plan and report; write and download nothing")
	fs.IntVar(&f.Concurrency, "concurrency", config.DefaultConcurrency, "certificates worked on at once")
	fs.BoolVar(&f.JSON, "json", false, "print the full report as JSON instead of the table")
	return f
}

// Params builds the action's parameter map for mode from the flags that were given
// and, for the others, the environment.
func (f *Flags) Params(mode string, getenv func(string) string) map[string]any {
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	params := map[string]any{"mode": mode}
	for _, s := range settings {
		if given[s.flag] {
			params[s.param] = f.fs.Lookup(s.flag).Value.String()
			continue
		}
		if s.env != "" {
			if v := getenv(s.env); v != "" {
				params[s.param] = v
			}
		}
	}
	return params
}

// Config is config.Parse of Params. Its error names flags and variables, never a
// value of a secret.
func (f *Flags) Config(mode string, getenv func(string) string) (*config.Config, error) {
	cfg, err := config.Parse(f.Params(mode, getenv))
	if err != nil {
		return nil, cliError(err)
	}
	return cfg, nil
}

// WarnAPIKeyFlags tells the operator, without the value, that a key was given on the
// command line.
func (f *Flags) WarnAPIKeyFlags(stderr io.Writer) {
	f.fs.Visit(func(fl *flag.Flag) {
		for _, s := range settings[:2] {
			if fl.Name == s.flag {
				fmt.Fprintf(stderr, "warning: --%s puts the key in the shell history and the process list; set %s instead\n", s.flag, s.env)
			}
		}
	})
}

// cliError rewrites each parameter error of config.Parse in the terms of the command
// line: "--source / SOURCE_INSTANCE_CRN: is required".
func cliError(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var lines []string
	for _, e := range errs {
		var pe *config.ParamError
		if !errors.As(e, &pe) {
			lines = append(lines, e.Error())
			continue
		}
		name := pe.Param
		for _, s := range settings {
			if s.param == pe.Param {
				name = "--" + s.flag
				if s.env != "" {
					name += " / " + s.env
				}
			}
		}
		lines = append(lines, name+": "+pe.Problem)
	}
	return fmt.Errorf("%w:\n  %s", config.ErrInvalid, strings.Join(lines, "\n  "))
}

// shortID is the certificate id at the end of a certificate CRN, cut to 12 characters:
// enough to tell certificates apart in a table.
func shortID(certCRN string) string {
	if certCRN == "" {
		return "-"
	}
	id := certCRN[strings.LastIndexByte(certCRN, ':')+1:]
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
