package action

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
)

// reconcile runs the full sync (or the verify-only comparison) and returns its report.
// A run that fails or leaves work for the next run is an application error, so that
// the activation record shows it.
func (a *Action) reconcile(ctx context.Context, log *slog.Logger, cfg *config.Config) map[string]any {
	st, err := a.stateFor(cfg)
	if err != nil {
		log.Error("invalid configuration", slog.String("error", err.Error()))
		return map[string]any{"error": map[string]any{"error": "configuration", "message": err.Error()}}
	}
	opts := reconcile.Options{Prune: cfg.Prune, DryRun: cfg.DryRun, Concurrency: cfg.Concurrency, Logger: log}
	var rep *reconcile.Report
	if cfg.Mode == config.ModeVerify {
		rep = reconcile.Verify(ctx, st.engine, opts)
	} else {
		rep = reconcile.Run(ctx, st.engine, opts)
	}
	out, err := toMap(rep)
	if err != nil {
		return map[string]any{"error": map[string]any{"error": "internal", "message": "the report could not be encoded"}}
	}
	if !reportOK(rep) {
		return map[string]any{"error": out}
	}
	return out
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// reportOK: verify succeeds when the backups match; a run when it could plan, nothing
// failed and nothing was left for the next run.
func reportOK(rep *reconcile.Report) bool {
	switch {
	case rep.Error != "":
		return false
	case rep.Mode == reconcile.ModeVerify:
		return rep.Match
	case rep.Mode == reconcile.ModeDryRun:
		return true
	default:
		return len(rep.Failures) == 0 && len(rep.Deferred) == 0
	}
}
