// Package reconcile makes every backup instance equal to the source, whatever happened
// before: notifications that never came (Certificate Manager sends none for a first
// import or a deletion), a backup region that was down, a copy edited by hand.
//
// A run lists the source and every backup, pairs certificates with the matching rule of
// the notification path (internal/engine/match), plans, then carries the plan out through the
// replication engine (replicate.Engine.CopyTo), which reads every written copy back.
// The plan is decided from listing metadata alone; only a certificate whose copy is
// missing or holds another certificate is downloaded, so an unchanged instance costs
// its list calls and nothing else.
//
// It must never propagate a deletion unless asked (Options.Prune), never write or
// delete a certificate that carries no marker of this source instance, and never log
// or report certificate material: results carry CRNs, names, outcomes and fingerprints.
package reconcile

import (
	"context"
	"log/slog"
	"time"

	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
)

// Bounds of a run's concurrency: certificates worked on at once.
const (
	DefaultConcurrency = 4
	MaxConcurrency     = 64
)

// DefaultMinRemaining is how much time must be left before the context's deadline for
// a run to start work on one more certificate: one certificate costs a download, an
// import, a listing and a read-back, each of which may be retried once.
const DefaultMinRemaining = 5 * time.Second

// Options of a run.
type Options struct {
	// Prune deletes the copies whose source certificate no longer exists. Off, they are
	// reported as orphans and kept.
	Prune bool
	// DryRun plans and reports without any write or download.
	DryRun bool
	// Concurrency is how many certificates are worked on at once (default
	// DefaultConcurrency, at most MaxConcurrency).
	Concurrency int
	// MinRemaining: no new work starts when less than this is left before the context's
	// deadline (default DefaultMinRemaining). What is not started is reported as
	// deferred. The caller's deadline is the action's own minus a safety margin.
	MinRemaining time.Duration
	// Logger receives one line per certificate written, deferred or failed, and a
	// summary. Nil: nothing is logged.
	Logger *slog.Logger
	// Progress, when set, is called after each unit of work (one source certificate in
	// every backup, or one orphan) with every backup that has work, in the order of the
	// engine's targets, from one goroutine at a time.
	Progress func([]Progress)
}

// Progress is how far a run has come in one backup: the certificates (and orphans)
// whose writes are done there, out of those it has to write.
type Progress struct {
	Backup      string // instance CRN
	Done, Total int
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Concurrency = min(o.Concurrency, MaxConcurrency)
	if o.MinRemaining <= 0 {
		o.MinRemaining = DefaultMinRemaining
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Modes of a report.
const (
	ModeReconcile = "reconcile" // plan and carry out
	ModeDryRun    = "dry_run"   // plan only
	ModeVerify    = "verify"    // plan only, to say whether the backups match
)

// Action is what the plan does for one (source certificate, backup) pair or orphan.
type Action string

const (
	ActionNone             Action = "none"              // the copy is in place with the right labels
	ActionImport           Action = "import"            // no copy: download the source, import, read back
	ActionReimport         Action = "reimport"          // the copy holds another certificate: download, reimport in place, read back
	ActionUpdate           Action = "update"            // same certificate, other name or description: update, read back
	ActionRemoveDuplicates Action = "remove_duplicates" // the copy is right; further copies of the same source are deleted
	ActionDeleteOrphan     Action = "delete_orphan"     // prune: the source certificate is gone, its copies are deleted
	ActionKeepOrphan       Action = "keep_orphan"       // the source certificate is gone; its copies are kept (prune is off)
	ActionSkip             Action = "skip"              // nothing can be copied (see Reason)
	ActionKeepNewer        Action = "keep_newer"        // the copy holds a newer certificate than the source: never replaced by an older one (a stale deployment, or fail back first)
	ActionAdopt            Action = "adopt"             // a certificate claims to be the copy without a valid proof: adopted if it holds the source's material, else left alone
)

// NewerMessage explains ActionKeepNewer.
const NewerMessage = "the backup holds a newer certificate than the source, or the copy of another certificate of the same origin that the source does not supersede (renewed in another region during a failover); it is not replaced: run the reconcile from the instance that holds the newest certificates (the runbook's failback), or stop this deployment"

// Writes reports whether the action writes to a backup.
func (a Action) Writes() bool {
	switch a {
	case ActionImport, ActionReimport, ActionUpdate, ActionRemoveDuplicates, ActionDeleteOrphan, ActionAdopt:
		return true
	}
	return false
}

// Outcome of a pair. The engine's outcomes (imported, reimported, updated, unchanged,
// conflict, failed, skipped) keep their meaning; the reconcile adds its own below.
type Outcome = replicate.Outcome

const (
	Planned      Outcome = "planned"      // dry run and verify: the action would be carried out
	Deferred     Outcome = "deferred"     // left for the next run: rate limit, outage, deadline (see Message)
	Deleted      Outcome = "deleted"      // prune: the orphan copies were deleted
	OrphanKept   Outcome = "orphan_kept"  // the source certificate is gone; its copy was kept
	Deduplicated Outcome = "deduplicated" // extra copies of the same source were deleted; the copy was right
)

// Step is one planned action.
type Step struct {
	SourceCRN  string   `json:"source_crn,omitempty"` // empty for a backup that could not be listed
	Name       string   `json:"name,omitempty"`
	Backup     string   `json:"backup_instance_crn"`
	CopyCRN    string   `json:"copy_crn,omitempty"`
	Action     Action   `json:"action"`
	Reason     string   `json:"reason,omitempty"`     // why this action
	Duplicates []string `json:"duplicates,omitempty"` // further copies of the same certificate, ours, to delete
	Conflicts  []string `json:"conflicts,omitempty"`  // certificates that are not ours (same name without a marker, or an unproven marker): never written

	target int           // index in Engine.Targets
	src    match.Subject // the source's metadata from the listing
	found  match.Found   // what the backup holds for the source, from its listing
}

// BackupListing is what the plan saw of one backup.
type BackupListing struct {
	InstanceCRN  string `json:"instance_crn"`
	Region       string `json:"region,omitempty"`
	Certificates int    `json:"certificates"`
	Error        string `json:"error,omitempty"` // the backup could not be listed: none of its pairs is planned
	ErrorClass   string `json:"error_class,omitempty"`
}

// PlanResult is the plan of a run.
type PlanResult struct {
	SourceInstanceCRN  string          `json:"source_instance_crn"`
	SourceCertificates int             `json:"source_certificates"`
	Backups            []BackupListing `json:"backups"`
	// Steps holds one step per (source certificate, backup) pair, in the order of the
	// source certificates (by name, then CRN) and of the backups, then one per orphan.
	// In a Report, only the steps that write (or would) are kept.
	Steps  []Step         `json:"steps"`
	Counts map[Action]int `json:"counts"`
}

// Work is the number of steps that write.
func (p *PlanResult) Work() int {
	n := 0
	for _, s := range p.Steps {
		if s.Action.Writes() {
			n++
		}
	}
	return n
}

// Result is what became of one step.
type Result struct {
	Step
	Outcome           Outcome  `json:"outcome"`
	Verified          bool     `json:"verified,omitempty"`    // the copy was read back and holds the source certificate and labels
	Fingerprint       string   `json:"fingerprint,omitempty"` // SHA-256 of the leaf's DER, when the source was downloaded
	RemovedDuplicates []string `json:"removed_duplicates,omitempty"`
	ErrorClass        string   `json:"error_class,omitempty"` // replicate.Class*
	Message           string   `json:"message,omitempty"`     // what went wrong or why it was deferred
}

// BackupReport sums up one backup.
type BackupReport struct {
	BackupListing
	Counts map[Outcome]int `json:"counts"`
}

// Report is the result of a run. It is JSON-serialisable and holds no key material.
type Report struct {
	Mode              string `json:"mode"`
	SourceInstanceCRN string `json:"source_instance_crn"`
	Prune             bool   `json:"prune"`
	// Match: once this run is over the backups hold every source certificate with its
	// labels, nothing is left to do and nothing failed. Orphans kept because prune is
	// off do not count against it (they are what was asked for); conflicts neither
	// (they are someone else's certificates, reported).
	Match              bool            `json:"match"`
	SourceCertificates int             `json:"source_certificates"`
	SourceDownloads    int             `json:"source_downloads"`
	Counts             map[Outcome]int `json:"counts"`
	Backups            []BackupReport  `json:"backups"`
	// Results has one entry per step of the plan, plus one per backup that could not
	// be listed (no source_crn).
	Results   []Result `json:"results"`
	Conflicts []Result `json:"conflicts,omitempty"` // pairs beside a certificate of the same name that is not ours
	Failures  []Result `json:"failures,omitempty"`  // need an operator: permanent errors, invalid source material, verification
	Deferred  []Result `json:"deferred,omitempty"`  // left for the next run, with the reason in message
	// Plan is set in dry run and verify: the steps that a reconcile would carry out.
	Plan       *PlanResult `json:"plan,omitempty"`
	Error      string      `json:"error,omitempty"` // the run could not plan (the source could not be listed)
	DurationMS int64       `json:"duration_ms"`
}

// Plan lists the source and every backup and returns what a run would do, without any
// write or download. Its error is the source's listing failure; a backup that cannot be
// listed is reported in PlanResult.Backups and planned for no pair.
func Plan(ctx context.Context, e *replicate.Engine, opts Options) (*PlanResult, error) {
	opts = opts.withDefaults()
	return plan(ctx, e.Owner, e.Source, e.Targets, opts)
}

// Run reconciles (or, with opts.DryRun, plans) and reports. It never panics on a
// service failure and never returns without a report: what it could not do is in
// Failures and Deferred.
func Run(ctx context.Context, e *replicate.Engine, opts Options) *Report {
	mode := ModeReconcile
	if opts.DryRun {
		mode = ModeDryRun
	}
	return run(ctx, e, opts.withDefaults(), mode)
}

// Verify compares the backups with the source and reports whether they match
// (Report.Match), writing and downloading nothing: a dry run whose purpose is the
// answer.
func Verify(ctx context.Context, e *replicate.Engine, opts Options) *Report {
	opts.DryRun = true
	return run(ctx, e, opts.withDefaults(), ModeVerify)
}

// OK is the one rule of a run's success, for every entry point (an activation's
// result, the command's exit code): verify succeeds when the backups match; a
// reconcile or a dry run when it could plan, nothing failed and nothing was left for
// the next run (a dry run that could not list a backup has not planned it).
func (rep *Report) OK() bool {
	switch {
	case rep.Error != "":
		return false
	case rep.Mode == ModeVerify:
		return rep.Match
	default:
		return len(rep.Failures) == 0 && len(rep.Deferred) == 0
	}
}
