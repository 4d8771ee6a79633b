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
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
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
	log      *slog.Logger
	now      func() time.Time
	engine   *replicate.Engine
	source   *cms.Client
	verifier *cmcallback.Verifier
}

// New builds the providers of cfg (one API client for the source, and one for the
// backups when a separate backup key is configured), the engine over them and the
// verifier of the source's notifications.
func New(cfg *config.Config, d Deps) (*App, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	newClient := func(apikey string) (*cms.Client, error) {
		return cms.New(cms.Config{
			APIKey: apikey, IAMURL: cfg.IAMURL, Endpoints: cfg.Endpoints, Private: cfg.PrivateEndpoints,
			HTTPClient: d.HTTPClient, Logger: d.Logger, MaxRetries: d.MaxRetries,
			MinRetryInterval: d.MinRetryInterval, MaxRetryInterval: d.MaxRetryInterval,
		})
	}
	src, err := newClient(cfg.APIKey)
	if err != nil {
		return nil, err
	}
	bk := src
	if cfg.BackupAPIKey != "" {
		if bk, err = newClient(cfg.BackupAPIKey); err != nil {
			return nil, err
		}
	}
	sourceCRN := cfg.SourceInstanceCRN
	v, err := cmcallback.NewVerifier(cmcallback.Config{
		SourceInstanceCRN:  sourceCRN,
		StaticPublicKeyPEM: cfg.SourcePublicKey,
		Now:                d.Now,
		Fetch:              func(ctx context.Context) (string, error) { return src.PublicKey(ctx, sourceCRN) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrInvalid, &config.ParamError{Param: "source_public_key", Problem: err.Error()})
	}
	targets := make([]engine.Target, len(cfg.BackupInstanceCRNs))
	for i, b := range cfg.BackupInstanceCRNs {
		targets[i] = cms.Instance{Client: bk, CRN: b}
	}
	return &App{
		cfg: cfg, log: d.Logger, now: d.Now, source: src, verifier: v,
		engine: &replicate.Engine{
			Source:  cms.Instance{Client: src, CRN: sourceCRN},
			Targets: targets,
			Logger:  d.Logger,
			Cache:   replicate.NewCopyCache(),
			Owner:   OwnerOf(cfg),
		},
	}, nil
}

// OwnerOf is the ownership prover of cfg: from ownership_key when it is set, else from
// the API key, so that deployments that predate ownership_key need nothing new.
func OwnerOf(cfg *config.Config) *match.Owner {
	if cfg.OwnershipKey != "" {
		return match.NewOwner(cfg.OwnershipKey)
	}
	return match.NewOwner(cfg.APIKey)
}

// Config is the configuration the App was built from.
func (a *App) Config() *config.Config { return a.cfg }

// Engine is the replication engine over the configured instances.
func (a *App) Engine() *replicate.Engine { return a.engine }

// SourceClient is the Certificate Manager client of the source instance (the terminal
// command's channel commands use it).
func (a *App) SourceClient() *cms.Client { return a.source }

// RunOptions are the reconcile options that cfg sets: the one translation of the
// configuration's switches into a run.
func RunOptions(cfg *config.Config, log *slog.Logger) reconcile.Options {
	return reconcile.Options{Prune: cfg.Prune, DryRun: cfg.DryRun, Concurrency: cfg.Concurrency, Logger: log}
}

// Reconcile runs the full sync in mode (config.ModeVerify: compare only; otherwise
// reconcile, or plan when opts.DryRun).
func (a *App) Reconcile(ctx context.Context, mode string, opts reconcile.Options) *reconcile.Report {
	if mode == config.ModeVerify {
		return reconcile.Verify(ctx, a.engine, opts)
	}
	return reconcile.Run(ctx, a.engine, opts)
}
