// Package config turns the action's parameters into a validated configuration. The
// parameter names are the public contract (README "Parameters"): apikey, backup_apikey,
// source_instance_crn, backup_instance_crns, source_public_key, iam_url, endpoints,
// private_endpoints, secret_group, webhook_secret, ownership_key,
// max_requests_per_second, mode, and the reconcile's prune, dry_run, concurrency,
// max_concurrency.
//
// An invalid configuration is refused before any API call, with an error that names
// the parameter and the rule it broke and never quotes a value: a misplaced API key
// must not come back in an answer or a log line.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
	"github.com/certbackup/certbackup/internal/trigger/cmcallback"
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
	SecretGroup        string // Secrets Manager backups: the group copies go in ("default")
	WebhookSecret      string // Event Notifications: the bearer secret of the webhook; empty: none
	OwnershipKey       string // the key of copies' ownership proofs; empty: derived from APIKey
	MaxRequestsPerSec  int    // Secrets Manager: requests a second per instance
	Mode               string
	Prune              bool
	DryRun             bool
	Concurrency        int
}

// OwnershipKeys are the keys of ownership_key: the one that proves first, then the
// ones before a rotation, whose proofs are still accepted. Empty when it is not set.
func (c *Config) OwnershipKeys() []string {
	if c.OwnershipKey == "" {
		return nil
	}
	return strings.Split(c.OwnershipKey, ",")
}

// String never prints the API keys.
func (c *Config) String() string {
	return fmt.Sprintf("config{mode=%s source=%s backups=%v iam=%s private=%t group=%s}", c.Mode, c.SourceInstanceCRN, c.BackupInstanceCRNs, c.IAMURL, c.PrivateEndpoints, c.SecretGroup)
}

// GoString keeps %#v from printing the API keys too.
func (c *Config) GoString() string { return c.String() }

// Key identifies everything that decides which clients and trust root a warm container
// may reuse. It is a hash, so that it can be compared and kept without holding keys.
func (c *Config) Key() string {
	h := sha256.New()
	for _, s := range []string{c.APIKey, c.BackupAPIKey, c.SourceInstanceCRN, strings.Join(c.BackupInstanceCRNs, ","), c.SourcePublicKey, c.IAMURL,
		strconv.FormatBool(c.PrivateEndpoints), c.SecretGroup, c.WebhookSecret, c.OwnershipKey, strconv.Itoa(c.MaxRequestsPerSec)} {
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
	} else if _, perr := crn.ParseAnyInstance(c.SourceInstanceCRN); perr != nil {
		errs = append(errs, bad("source_instance_crn", "%v", perr))
	}

	if c.BackupInstanceCRNs, err = crnList(params, "backup_instance_crns"); err != nil {
		errs = append(errs, err)
	} else if len(c.BackupInstanceCRNs) == 0 {
		errs = append(errs, bad("backup_instance_crns", "is required: one or more instance CRNs, as a JSON array or comma-separated"))
	} else {
		seen := map[crn.Instance]int{}
		for i, b := range c.BackupInstanceCRNs {
			id, perr := crn.ParseAnyInstance(b)
			if perr != nil {
				errs = append(errs, bad("backup_instance_crns", "item %d: %v", i+1, perr))
				continue
			}
			if crn.SameInstanceCRN(b, c.SourceInstanceCRN) {
				errs = append(errs, bad("backup_instance_crns", "item %d is the source instance, which cannot be its own backup", i+1))
			}
			if first, dup := seen[id]; dup {
				errs = append(errs, bad("backup_instance_crns", "item %d is the same instance as item %d", i+1, first))
			}
			seen[id] = i + 1
		}
	}

	if c.SourcePublicKey, err = str(params, "source_public_key"); err != nil {
		errs = append(errs, err)
	} else if c.SourcePublicKey != "" {
		// Parsed here, not only when the verifier is built, so that check-config and
		// deploy.sh refuse a key that would fail every notification.
		if _, perr := cmcallback.ParsePublicKeyPEM(c.SourcePublicKey); perr != nil {
			errs = append(errs, bad("source_public_key", "must be one PEM RSA public key (-----BEGIN PUBLIC KEY-----): %v", perr))
		}
	}

	if c.IAMURL, err = str(params, "iam_url"); err != nil {
		errs = append(errs, err)
	}
	if c.IAMURL == "" {
		c.IAMURL = cms.DefaultIAMURL
	}
	if verr := ibmapi.ValidateEndpoint(c.IAMURL); verr != nil {
		errs = append(errs, bad("iam_url", "%v", verr))
	}

	if c.Endpoints, err = endpoints(params, "endpoints"); err != nil {
		errs = append(errs, err)
	}
	if c.PrivateEndpoints, err = boolean(params, "private_endpoints"); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, parseSuccessor(params, c)...)
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

// Secrets Manager group names: 2 to 64 characters (its documented limit), no controls.
const maxGroupName = 64

// MinSecretLength is the least length of webhook_secret and ownership_key.
const MinSecretLength = 32

// DefaultRequestsPerSecond is the request rate per Secrets Manager instance that the
// service asks clients to stay under.
const DefaultRequestsPerSecond = 20

func parseSuccessor(params map[string]any, c *Config) []error {
	var errs []error
	var err error
	if c.SecretGroup, err = str(params, "secret_group"); err != nil {
		errs = append(errs, err)
	}
	switch n := len([]rune(c.SecretGroup)); {
	case c.SecretGroup == "":
		c.SecretGroup = "default"
	case n < 2 || n > maxGroupName || strings.ContainsFunc(c.SecretGroup, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		errs = append(errs, bad("secret_group", "must be a secret group name of 2 to %d printable characters", maxGroupName))
	}
	for _, k := range []struct {
		name string
		dst  *string
	}{{"webhook_secret", &c.WebhookSecret}, {"ownership_key", &c.OwnershipKey}} {
		v, err := secret(params, k.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parts := []string{v}
		if k.name == "ownership_key" {
			parts = strings.Split(v, ",") // the current key first, then keys before a rotation
		}
		short := false
		for _, p := range parts {
			short = short || v != "" && len(p) < MinSecretLength
		}
		if short {
			errs = append(errs, bad(k.name, "must be at least %d characters (each key, for ownership_key)", MinSecretLength))
			continue
		}
		*k.dst = v
	}
	if c.MaxRequestsPerSec, err = integer(params, "max_requests_per_second", DefaultRequestsPerSecond, 1, 1000); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// parseReconcile reads the reconcile's switches. concurrency has one rule, checked here
// for every entry point (the action and the command): a whole number from 1 to
// max_concurrency, which is itself at most HardMaxConcurrency. An invalid
// max_concurrency is reported alone; concurrency is then held to the hard bound, so that
// one mistake gives one error.
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
		maxC = HardMaxConcurrency
	}
	// Not given: the default, within a max_concurrency set below it.
	n, err := integer(params, "concurrency", min(DefaultConcurrency, maxC), math.MinInt, math.MaxInt)
	switch {
	case err != nil:
		errs = append(errs, err)
	case n < 1 || n > maxC:
		errs = append(errs, bad("concurrency", "must be between 1 and max_concurrency (%d; max_concurrency itself is at most %d)", maxC, HardMaxConcurrency))
	default:
		c.Concurrency = n
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

// endpoints parses the base URL overrides: each key is a region (the Certificate
// Manager instances of that region) or an instance CRN (that instance, any provider).
func endpoints(params map[string]any, name string) (map[string]string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return nil, nil
	}
	const shape = "must be a JSON object from a region name or an instance CRN to a base URL"
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
			return nil, bad(name, "%s", shape)
		}
	default:
		return nil, bad(name, "%s, got %s", shape, typeName(v))
	}
	out := make(map[string]string, len(raw))
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		s, ok := raw[key].(string)
		if !ok {
			return nil, bad(name, "every URL must be a string")
		}
		if !crn.IsRegion(key) {
			if _, err := crn.ParseAnyInstance(key); err != nil {
				return nil, bad(name, "a key is neither a region name nor an instance CRN")
			}
		}
		if err := ibmapi.ValidateEndpoint(s); err != nil {
			return nil, bad(name, "a URL is not allowed: %v", err)
		}
		out[key] = s
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
