// Package app is certbackup's runtime-neutral core. New turns a validated
// configuration into the engine over its providers (the one place where that wiring is
// written); Handle answers one HTTP-like request from a trigger (a Certificate Manager
// callback today) in typed values; Reconcile runs the full sync. The OpenWhisk action,
// the terminal command and any other runtime translate their own world into these
// calls and nothing more.
//
// Nothing it logs or returns holds a private key, an API key, a bearer token or a
// notification token: logs and answers carry CRNs, event types and outcomes.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
	"github.com/certbackup/certbackup/internal/trigger/cmcallback"
)

// Deps are what a runtime lends the core; the zero value is usable.
type Deps struct {
	Logger *slog.Logger
	// HTTPClient is shared by every API call (connection reuse across requests).
	HTTPClient *http.Client
	// MinRetryInterval and MaxRetryInterval bound the API clients' retries (tests
	// use small ones); MaxRetries zero means the client's default.
	MinRetryInterval, MaxRetryInterval time.Duration
	MaxRetries                         int
	Now                                func() time.Time
}

// App is certbackup for one configuration. Safe for concurrent use; a warm process
// keeps one and reuses its IAM tokens, the source's public key, its connections and
// its cache of copy locations.
type App struct {
	cfg      *config.Config
	checkMu  sync.Mutex
	passed   map[int]bool // backups whose check passed
	log      *slog.Logger
	now      func() time.Time
	engine   *replicate.Engine
	source   *cms.Client
	verifier *cmcallback.Verifier
}

// New builds the providers of cfg (one API client per provider and key: the backups
// get their own when a separate backup key is configured), the engine over them and,
// for a Certificate Manager source, the verifier of its notifications.
func New(cfg *config.Config, d Deps) (*App, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	p := &providers{cfg: cfg, d: d}
	source, err := p.instance(cfg.SourceInstanceCRN, cfg.APIKey)
	if err != nil {
		return nil, err
	}
	backupKey := cmp.Or(cfg.BackupAPIKey, cfg.APIKey)
	targets := make([]engine.Target, len(cfg.BackupInstanceCRNs))
	for i, b := range cfg.BackupInstanceCRNs {
		if targets[i], err = p.instance(b, backupKey); err != nil {
			return nil, err
		}
	}
	a := &App{
		cfg: cfg, log: d.Logger, now: d.Now,
		engine: &replicate.Engine{
			Source:  source,
			Targets: targets,
			Logger:  d.Logger,
			Cache:   replicate.NewCopyCache(),
			Owner:   OwnerOf(cfg),
		},
	}
	if cm, ok := source.(cms.Instance); ok {
		a.source = cm.Client
		sourceCRN := cfg.SourceInstanceCRN
		a.verifier, err = cmcallback.NewVerifier(cmcallback.Config{
			SourceInstanceCRN:  sourceCRN,
			StaticPublicKeyPEM: cfg.SourcePublicKey,
			Now:                d.Now,
			Fetch:              func(ctx context.Context) (string, error) { return cm.Client.PublicKey(ctx, sourceCRN) },
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", config.ErrInvalid, &config.ParamError{Param: "source_public_key", Problem: err.Error()})
		}
	}
	return a, nil
}

// providers makes one client per provider and API key, and the instances over them.
type providers struct {
	cfg *config.Config
	d   Deps
	cms map[string]*cms.Client
	sm  map[string]*secretsmanager.Client
}

// instance is the engine's view of the instance named by instanceCRN, reached with key.
func (p *providers) instance(instanceCRN, key string) (engine.Target, error) {
	id, err := crn.ParseAnyInstance(instanceCRN)
	if err != nil {
		return nil, err
	}
	switch id.Service {
	case crn.ServiceName:
		c, err := p.cmsClient(key)
		if err != nil {
			return nil, err
		}
		return cms.Instance{Client: c, CRN: instanceCRN}, nil
	case crn.SecretsManagerServiceName:
		c, err := p.smClient(key)
		if err != nil {
			return nil, err
		}
		return secretsmanager.Instance{Client: c, CRN: instanceCRN}, nil
	default:
		return nil, fmt.Errorf("%w: %s instances are not supported", config.ErrInvalid, id.Service)
	}
}

func (p *providers) smClient(key string) (*secretsmanager.Client, error) {
	if c, ok := p.sm[key]; ok {
		return c, nil
	}
	c, err := secretsmanager.New(secretsmanager.Config{
		APIKey: key, IAMURL: p.cfg.IAMURL, Endpoints: instanceEndpoints(p.cfg.Endpoints), Private: p.cfg.PrivateEndpoints,
		HTTPClient: p.d.HTTPClient, Logger: p.d.Logger, MaxRetries: p.d.MaxRetries,
		MinRetryInterval: p.d.MinRetryInterval, MaxRetryInterval: p.d.MaxRetryInterval,
		RequestsPerSecond: p.cfg.MaxRequestsPerSec, SecretGroup: p.cfg.SecretGroup,
	})
	if err != nil {
		return nil, err
	}
	if p.sm == nil {
		p.sm = map[string]*secretsmanager.Client{}
	}
	p.sm[key] = c
	return c, nil
}

// instanceEndpoints keeps the overrides keyed by instance CRN: a region key names
// the Certificate Manager instances of that region only (the public contract).
func instanceEndpoints(all map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range all {
		if !crn.IsRegion(k) {
			out[k] = v
		}
	}
	return out
}

func (p *providers) cmsClient(key string) (*cms.Client, error) {
	if c, ok := p.cms[key]; ok {
		return c, nil
	}
	c, err := cms.New(cms.Config{
		APIKey: key, IAMURL: p.cfg.IAMURL, Endpoints: p.cfg.Endpoints, Private: p.cfg.PrivateEndpoints,
		HTTPClient: p.d.HTTPClient, Logger: p.d.Logger, MaxRetries: p.d.MaxRetries,
		MinRetryInterval: p.d.MinRetryInterval, MaxRetryInterval: p.d.MaxRetryInterval,
	})
	if err != nil {
		return nil, err
	}
	if p.cms == nil {
		p.cms = map[string]*cms.Client{}
	}
	p.cms[key] = c
	return c, nil
}

// OwnerOf is the ownership prover of cfg: it proves with the first key of
// ownership_key when it is set, else with the API key, so that deployments that
// predate ownership_key need nothing new. Proofs made with the other keys of
// ownership_key (the keys before a rotation) and with the API keys are accepted too,
// and are replaced by current ones as copies are next written: setting
// ownership_key, or rotating an API key listed in it, turns no copy into a stranger.
func OwnerOf(cfg *config.Config) *match.Owner {
	keys := append(slices.Clone(cfg.OwnershipKeys()), cfg.APIKey, cfg.BackupAPIKey)
	return match.NewOwner(keys[0], keys[1:]...)
}

// Config is the configuration the App was built from.
func (a *App) Config() *config.Config { return a.cfg }

// Engine is the replication engine over the configured instances.
func (a *App) Engine() *replicate.Engine { return a.engine }

// SourceClient is the Certificate Manager client of the source instance, nil when the
// source is not a Certificate Manager instance.
func (a *App) SourceClient() *cms.Client { return a.source }

// RunOptions are the reconcile options that cfg sets: the one translation of the
// configuration's switches into a run.
func RunOptions(cfg *config.Config, log *slog.Logger) reconcile.Options {
	return reconcile.Options{Prune: cfg.Prune, DryRun: cfg.DryRun, Concurrency: cfg.Concurrency, Logger: log}
}

// Checker is an instance that can tell, without writing anything, whether the
// configuration works for it (a Secrets Manager group exists, the key has a role).
type Checker interface {
	Check(ctx context.Context) error
}

// checkedEngine is the engine with every backup checked before anything is written
// to it (a Secrets Manager group exists, the key can list it). A backup whose check
// fails is replaced by one that fails every call with that error, so that its pairs
// report it (naming the instance, the group or the role) while the other backups are
// copied. A passed check is not repeated for the life of the App; a failed one is
// (it may have been the network).
func (a *App) checkedEngine(ctx context.Context) *replicate.Engine {
	eng := *a.engine
	eng.Targets = slices.Clone(a.engine.Targets)
	a.checkMu.Lock()
	defer a.checkMu.Unlock()
	if a.passed == nil {
		a.passed = map[int]bool{}
	}
	for i, t := range eng.Targets {
		c, ok := t.(Checker)
		if !ok || a.passed[i] {
			continue
		}
		if err := c.Check(ctx); err != nil {
			eng.Targets[i] = unusable{Target: t, err: err}
			continue
		}
		a.passed[i] = true
	}
	return &eng
}

// unusable is a backup whose check failed: every call fails with that error and
// nothing is written.
type unusable struct {
	engine.Target
	err error
}

func (u unusable) List(context.Context) ([]engine.Certificate, error) { return nil, u.err }
func (u unusable) Metadata(context.Context, string) (*engine.Certificate, error) {
	return nil, u.err
}
func (u unusable) Download(context.Context, string) (*engine.Downloaded, error) {
	return nil, u.err
}
func (u unusable) Import(context.Context, engine.Labels, engine.Material) (*engine.Certificate, error) {
	return nil, u.err
}
func (u unusable) Reimport(context.Context, string, engine.Material) error   { return u.err }
func (u unusable) UpdateLabels(context.Context, string, engine.Labels) error { return u.err }
func (u unusable) Delete(context.Context, string) error                      { return u.err }

// Reconcile runs the full sync in mode (config.ModeVerify: compare only; otherwise
// reconcile, or plan when opts.DryRun).
func (a *App) Reconcile(ctx context.Context, mode string, opts reconcile.Options) *reconcile.Report {
	eng := a.checkedEngine(ctx)
	if mode == config.ModeVerify {
		return reconcile.Verify(ctx, eng, opts)
	}
	return reconcile.Run(ctx, eng, opts)
}

// UniqueNames passes the target's answer through (engine.UniqueNames).
func (u unusable) UniqueNames() bool { return engine.NamesAreUnique(u.Target) }
