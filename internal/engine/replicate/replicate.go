// Package replicate makes one source certificate exist, byte for byte, in every backup
// instance. It is pure logic over the engine's contracts (engine.Source,
// engine.Target); it knows no provider and no runtime, and the notification triggers,
// the reconcile and the local demo all call it.
//
// A notification is only a hint: the engine always reads the current state of the
// source, so a replayed, duplicated or out-of-order notification re-confirms the
// current state instead of writing an old one.
//
// It never logs or returns certificate material: results carry IDs, outcomes and
// fingerprints (one-way hashes) only.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// Outcome of one (certificate, backup) pair.
type Outcome string

const (
	Imported   Outcome = "imported"   // no copy existed; one was imported and verified
	Reimported Outcome = "reimported" // the copy held another certificate; reimported in place and verified
	Updated    Outcome = "updated"    // same certificate; name or description updated
	Unchanged  Outcome = "unchanged"  // the copy already held the same certificate; nothing written
	Conflict   Outcome = "conflict"   // our copy is in place, but a certificate with the same name that is not ours is in the backup; it was left untouched
	Failed     Outcome = "failed"     // see ErrorClass and Message
	Skipped    Outcome = "skipped"    // see Reason
)

// PairResult is the outcome for one source certificate in one backup instance.
type PairResult struct {
	SourceCRN         string   `json:"source_crn"`
	Name              string   `json:"name,omitempty"`
	Backup            string   `json:"backup_instance_crn"`
	CopyCRN           string   `json:"copy_crn,omitempty"`
	Outcome           Outcome  `json:"outcome"`
	Verified          bool     `json:"verified"`
	Fingerprint       string   `json:"fingerprint,omitempty"` // SHA-256 of the leaf's DER
	Conflicts         []string `json:"conflicts,omitempty"`
	RemovedDuplicates []string `json:"removed_duplicates,omitempty"`
	ErrorClass        string   `json:"error_class,omitempty"` // engine.Class*
	Message           string   `json:"message,omitempty"`
	Reason            string   `json:"reason,omitempty"`
}

// Engine replicates certificates from Source to every Target.
type Engine struct {
	Source  engine.Source
	Targets []engine.Target
	Logger  *slog.Logger
	// Cache remembers where each copy is, for the life of a warm process, so that a
	// replay costs one call per backup instead of a listing.
	Cache *CopyCache
	// Owner proves the markers certbackup writes and checks the ones it reads.
	// Required.
	Owner *match.Owner
	// Batch, when set, shares one listing of each backup among the certificates
	// copied with this engine (set it on a copy of the engine for one notification).
	Batch *Batch
}

// subject reads a source certificate with the ownership rule.
func (e *Engine) subject(c engine.Certificate) match.Subject {
	return e.Owner.Subject(e.Source.Instance(), c)
}

func (e *Engine) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// ReplicateCertificate copies one source certificate to every backup, concurrently:
// one failing backup does not stop the others. The result has one entry per backup,
// in the order of e.Targets.
func (e *Engine) ReplicateCertificate(ctx context.Context, id string) []PairResult {
	// Read every copy the cache knows while the source is being downloaded: the two
	// are independent, and on a warm replay they are all the calls there are.
	prefetched := make([]<-chan prefetch, len(e.Targets))
	for i, t := range e.Targets {
		prefetched[i] = e.prefetch(ctx, t, id)
	}
	src, bundle, failure := e.downloadSource(ctx, id)
	results := make([]PairResult, len(e.Targets))
	if failure != nil {
		for i, t := range e.Targets {
			results[i] = *failure
			results[i].Backup = t.Instance()
		}
		e.logPairs(ctx, results)
		return results
	}
	var wg sync.WaitGroup
	for i, t := range e.Targets {
		wg.Go(func() {
			results[i] = e.CopyTo(ctx, t, src, bundle, nil, CopyOptions{prefetched: prefetched[i]})
		})
	}
	wg.Wait()
	e.logPairs(ctx, results)
	return results
}

// downloadSource reads and checks the source certificate. When it cannot be copied,
// failure is the result every backup gets (without its Backup).
func (e *Engine) downloadSource(ctx context.Context, id string) (*engine.Downloaded, *pemutil.Bundle, *PairResult) {
	r := PairResult{SourceCRN: id}
	src, err := e.Source.Download(ctx, id)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		r.Outcome, r.Reason = Skipped, "the certificate no longer exists in the source instance"
		return nil, nil, &r
	case errors.Is(err, engine.ErrInactive):
		r.Outcome, r.Reason = Skipped, err.Error()
		return nil, nil, &r
	case err != nil:
		failWith(&r, fmt.Errorf("download from the source: %w", err))
		return nil, nil, &r
	case src.ID != id:
		r.Outcome, r.ErrorClass, r.Message = Failed, engine.ClassInvalidSource, "the source returned a different certificate than the one asked for"
		return nil, nil, &r
	}
	bundle, err := pemutil.ParseBundle(src.Material.Certificate, src.Material.PrivateKey, src.Material.Intermediate)
	if err != nil {
		r.Name = src.Name
		r.Outcome, r.ErrorClass, r.Message = Failed, engine.ClassInvalidSource, err.Error()
		return nil, nil, &r
	}
	return src, bundle, nil
}

func (e *Engine) logPairs(ctx context.Context, rs []PairResult) {
	for _, r := range rs {
		level := slog.LevelInfo
		if r.Outcome == Failed {
			level = slog.LevelWarn
		}
		e.log().LogAttrs(ctx, level, "replicated",
			slog.String("source_crn", r.SourceCRN), slog.String("backup_instance_crn", r.Backup),
			slog.String("copy_crn", r.CopyCRN), slog.String("outcome", string(r.Outcome)),
			slog.Bool("verified", r.Verified), slog.String("error_class", r.ErrorClass), slog.String("message", r.Message))
	}
}

// failWith records err on r with its class. err's text is safe: provider errors never
// carry secrets, and pemutil errors never quote their input.
func failWith(r *PairResult, err error) {
	r.Outcome = Failed
	r.Message = err.Error()
	r.ErrorClass = engine.ClassOf(err)
	if r.ErrorClass == engine.ClassLocked {
		r.Reason = engine.ClassLocked // the public contract's word for a locked copy
	}
}
