// Package config turns the action's parameters into a validated configuration. The
// parameter names are the public contract (README "Parameters"): apikey, backup_apikey,
// source_instance_crn, backup_instance_crns, source_public_key, iam_url, endpoints,
// private_endpoints, mode, and the reconcile's prune, dry_run, concurrency,
// max_concurrency.
//
// An invalid configuration is refused before any API call, with an error that names
// the parameter and never quotes a secret.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Modes.
const (
	ModeNotify    = "notify"
	ModeReconcile = "reconcile"
	ModeVerify    = "verify"
)

// Defaults and bounds of the reconcile's concurrency.
const (
	DefaultConcurrency    = reconcile.DefaultConcurrency
	DefaultMaxConcurrency = 16
	HardMaxConcurrency    = reconcile.MaxConcurrency
)

// Config is a validated configuration.
type Config struct {
	APIKey             string
	BackupAPIKey       string // empty: APIKey is used for the backups too
	SourceInstanceCRN  string
	BackupInstanceCRNs []string
	SourcePublicKey    string // PEM; empty: fetched from the source instance
	IAMURL             string
	Endpoints          map[string]string
	PrivateEndpoints   bool
	Mode               string
	Prune              bool
	DryRun             bool
	Concurrency        int
}

// String never prints the API keys.
func (c *Config) String() string {
	return fmt.Sprintf("config{mode=%s source=%s backups=%v iam=%s private=%t}", c.Mode, c.SourceInstanceCRN, c.BackupInstanceCRNs, c.IAMURL, c.PrivateEndpoints)
}

// GoString keeps %#v from printing the API keys too.
func (c *Config) GoString() string { return c.String() }

// Key identifies everything that decides which clients and trust root a warm container
// may reuse. It is a hash, so that it can be compared and kept without holding keys.
func (c *Config) Key() string {
	h := sha256.New()
	for _, s := range []string{c.APIKey, c.BackupAPIKey, c.SourceInstanceCRN, strings.Join(c.BackupInstanceCRNs, ","), c.SourcePublicKey, c.IAMURL, strconv.FormatBool(c.PrivateEndpoints)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Endpoints)) {
		fmt.Fprintf(h, "%s=%s;", k, c.Endpoints[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ParamError is an invalid or missing parameter.
type ParamError struct {
	Param   string
	Problem string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Param, e.Problem) }

// ErrInvalid is wrapped by all the errors that Parse returns.
var ErrInvalid = errors.New("invalid configuration")

func bad(param, format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &ParamError{Param: param, Problem: fmt.Sprintf(format, args...)})
}

// Parse validates params. Optional parameters given as "" count as absent: wskdeploy
// turns an unset $VARIABLE into "".
func Parse(params map[string]any) (*Config, error) {
	var errs []error
	c := &Config{}
	var err error

	if c.Mode, err = str(params, "mode"); err != nil {
		errs = append(errs, err)
	}
	if c.Mode == "" {
		c.Mode = ModeNotify
	}
	if c.Mode != ModeNotify && c.Mode != ModeReconcile && c.Mode != ModeVerify {
		errs = append(errs, bad("mode", "must be %q, %q or %q", ModeNotify, ModeReconcile, ModeVerify))
	}

	if c.APIKey, err = secret(params, "apikey"); err != nil {
		errs = append(errs, err)
	} else if c.APIKey == "" {
		errs = append(errs, bad("apikey", "is required (an IBM Cloud API key with Writer on the source and Manager on the backups)"))
	}
	if c.BackupAPIKey, err = secret(params, "backup_apikey"); err != nil {
		errs = append(errs, err)
	}

	if c.SourceInstanceCRN, err = str(params, "source_instance_crn"); err != nil {
		errs = append(errs, err)
	} else if c.SourceInstanceCRN == "" {
		errs = append(errs, bad("source_instance_crn", "is required"))
	} else if _, perr := crn.ParseInstance(c.SourceInstanceCRN); perr != nil {
		errs = append(errs, bad("source_instance_crn", "%v", perr))
	}

	if c.BackupInstanceCRNs, err = crnList(params, "backup_instance_crns"); err != nil {
		errs = append(errs, err)
	} else if len(c.BackupInstanceCRNs) == 0 {
		errs = append(errs, bad("backup_instance_crns", "is required: one or more instance CRNs, as a JSON array or comma-separated"))
	} else {
		seen := map[string]bool{}
		for _, b := range c.BackupInstanceCRNs {
			if _, perr := crn.ParseInstance(b); perr != nil {
				errs = append(errs, bad("backup_instance_crns", "%v", perr))
				continue
			}
			if b == c.SourceInstanceCRN {
				errs = append(errs, bad("backup_instance_crns", "the source instance cannot be its own backup"))
			}
			if seen[b] {
				errs = append(errs, bad("backup_instance_crns", "%s is listed twice", b))
			}
			seen[b] = true
		}
	}

	if c.SourcePublicKey, err = str(params, "source_public_key"); err != nil {
		errs = append(errs, err)
	} else if c.SourcePublicKey != "" && !strings.Contains(c.SourcePublicKey, "-----BEGIN") {
		errs = append(errs, bad("source_public_key", "must be a PEM public key (-----BEGIN PUBLIC KEY-----)"))
	}

	if c.IAMURL, err = str(params, "iam_url"); err != nil {
		errs = append(errs, err)
	}
	if c.IAMURL == "" {
		c.IAMURL = cms.DefaultIAMURL
	}
	if verr := cms.ValidateEndpoint(c.IAMURL); verr != nil {
		errs = append(errs, bad("iam_url", "%v", verr))
	}

	if c.Endpoints, err = endpoints(params, "endpoints"); err != nil {
		errs = append(errs, err)
	}
	if c.PrivateEndpoints, err = boolean(params, "private_endpoints"); err != nil {
		errs = append(errs, err)
	}
	c.Concurrency = DefaultConcurrency
	// The reconcile's switches are read only outside notify mode. The web action does
	// not bind them, so `final` lets any caller send them; a caller's junk must not
	// turn into an operator-facing configuration error before the token is checked.
	if c.Mode != ModeNotify {
		errs = append(errs, parseReconcile(params, c)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func parseReconcile(params map[string]any, c *Config) []error {
	var errs []error
	var err error
	if c.Prune, err = boolean(params, "prune"); err != nil {
		errs = append(errs, err)
	}
	if c.DryRun, err = boolean(params, "dry_run"); err != nil {
		errs = append(errs, err)
	}
	maxC, err := integer(params, "max_concurrency", DefaultMaxConcurrency, 1, HardMaxConcurrency)
	if err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency, err = integer(params, "concurrency", DefaultConcurrency, 1, HardMaxConcurrency); err != nil {
		errs = append(errs, err)
	} else if c.Concurrency > maxC {
		errs = append(errs, bad("concurrency", "%d is above max_concurrency %d", c.Concurrency, maxC))
	}
	return errs
}

func str(params map[string]any, name string) (string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", bad(name, "must be a string, got %s", typeName(v))
	}
	return strings.TrimSpace(s), nil
}

// secret is str whose errors never include the value.
func secret(params map[string]any, name string) (string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", bad(name, "must be a string")
	}
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\"{} \n") {
		return "", bad(name, "contains characters that an API key never has (quotes, braces or spaces)")
	}
	return s, nil
}

func crnList(params map[string]any, name string) ([]string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return nil, nil
	}
	var list []string
	switch t := v.(type) {
	case []any:
		for _, item := range t {
			s, ok := item.(string)
			if !ok {
				return nil, bad(name, "array items must be strings, got %s", typeName(item))
			}
			list = append(list, s)
		}
	case []string:
		list = t
	case string:
		s := strings.TrimSpace(t)
		if strings.HasPrefix(s, "[") {
			if err := json.Unmarshal([]byte(s), &list); err != nil {
				return nil, bad(name, "looks like a JSON array but does not parse as an array of strings")
			}
		} else if s != "" {
			list = strings.Split(s, ",")
		}
	default:
		return nil, bad(name, "must be a JSON array of strings or a comma-separated string, got %s", typeName(v))
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func endpoints(params map[string]any, name string) (map[string]string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return nil, nil
	}
	raw := map[string]any{}
	switch t := v.(type) {
	case map[string]any:
		raw = t
	case string:
		s := strings.TrimSpace(t)
		if s == "" {
			return nil, nil
		}
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, bad(name, "must be a JSON object from region to base URL")
		}
	default:
		return nil, bad(name, "must be a JSON object from region to base URL, got %s", typeName(v))
	}
	out := make(map[string]string, len(raw))
	for region, u := range raw {
		s, ok := u.(string)
		if !ok {
			return nil, bad(name, "the URL for region %q must be a string", region)
		}
		if _, err := crn.Parse("crn:v1:bluemix:public:cloudcerts:" + region + ":a/x:y::"); err != nil {
			return nil, bad(name, "%q is not a region name", region)
		}
		if err := cms.ValidateEndpoint(s); err != nil {
			return nil, bad(name, "region %s: %v", region, err)
		}
		out[region] = s
	}
	return out, nil
}

func boolean(params map[string]any, name string) (bool, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return false, nil
	}
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "", "false", "no", "0":
			return false, nil
		case "true", "yes", "1":
			return true, nil
		}
		return false, bad(name, "must be true or false")
	default:
		return false, bad(name, "must be a boolean, got %s", typeName(v))
	}
}

func integer(params map[string]any, name string, def, lo, hi int) (int, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return def, nil
	}
	var n int
	switch t := v.(type) {
	case float64:
		if t != float64(int(t)) {
			return 0, bad(name, "must be a whole number")
		}
		n = int(t)
	case int:
		n = t
	case json.Number:
		i, err := t.Int64()
		if err != nil {
			return 0, bad(name, "must be a whole number")
		}
		n = int(i)
	case string:
		s := strings.TrimSpace(t)
		if s == "" {
			return def, nil
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return 0, bad(name, "must be a whole number")
		}
		n = i
	default:
		return 0, bad(name, "must be a number, got %s", typeName(v))
	}
	if n < lo || n > hi {
		return 0, bad(name, "must be between %d and %d", lo, hi)
	}
	return n, nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}
