package replicate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// CopyOptions are hints from a caller that already listed the backup (the reconcile).
type CopyOptions struct {
	// KnownDifferent: the caller saw from the metadata that the copy holds another
	// certificate, so the copy is reimported without being downloaded first.
	KnownDifferent bool

	// prefetched is the read of the cached copy, started while the source was being
	// downloaded (ReplicateCertificate), so that a warm replay costs one round trip.
	prefetched <-chan prefetch
}

// copyJob is one source certificate on its way into one backup: what the steps of
// CopyTo learn, in the order they learn it.
type copyJob struct {
	e      *Engine
	t      engine.Target
	src    *engine.Downloaded
	subj   match.Subject
	want   string        // the source bundle's digest
	labels engine.Labels // what the copy must carry; set once the copy is found
	opts   CopyOptions
	// relist: nobody listed t for us, so an import is followed by a listing that
	// detects a racing import (the reconcile, which lists every backup once, skips it:
	// a restore of 1000 certificates must not cost 1000 listings).
	relist bool

	found match.Found
	read  *engine.Downloaded // the copy as last read; nil when it must be read again
	wrote Outcome            // the first write made, "" when none
	// holds: the copy holds the source's material because this job just wrote it
	// (the final read-back checks it).
	holds bool
	// converged: the read-back found the copy gone once and the job moved to the
	// winner of a race; it does not do so twice.
	converged bool
}

// CopyTo makes src (already checked into bundle) exist in t. found is what the caller
// already knows of t from a fresh listing; nil means look it up.
func (e *Engine) CopyTo(ctx context.Context, t engine.Target, src *engine.Downloaded, bundle *pemutil.Bundle, found *match.Found, opts CopyOptions) PairResult {
	j := &copyJob{
		e: e, t: t, src: src, subj: e.subject(src.Certificate), want: bundle.Digest(), opts: opts, relist: found == nil,
	}
	r := PairResult{SourceCRN: src.ID, Name: src.Name, Backup: t.Instance(), Fingerprint: pemutil.Fingerprint(bundle.Leaf)}
	if found != nil {
		j.found = *found
	} else if err := j.find(ctx); err != nil {
		failWith(&r, fmt.Errorf("find the copy: %w", err))
		return r
	}
	if err := j.steps(ctx); err != nil {
		if j.found.Copy != nil {
			r.CopyCRN = j.found.Copy.ID
		}
		var v verificationError
		switch {
		case errors.Is(err, errUnwritable):
			r.Outcome, r.Reason = Skipped, err.Error()
		case errors.As(err, &v):
			r.Outcome, r.ErrorClass, r.Message = Failed, engine.ClassVerification, v.Error()
		default:
			failWith(&r, err)
		}
		return r
	}
	r.CopyCRN, r.Verified = j.found.Copy.ID, true
	r.Conflicts = match.IDs(j.found.Conflicts)
	r.RemovedDuplicates, r.Message = j.removeExtras(ctx)
	r.Outcome = j.outcome()
	if r.Outcome == Conflict {
		r.Message = ConflictMessage
	}
	return r
}

// ConflictMessage explains a Conflict outcome.
const ConflictMessage = "imported beside certificates that certbackup cannot prove are its copies (the same name without a marker, or a marker without a valid proof); they were left untouched"

// steps runs the named steps. When nobody listed the backup for us and our copy
// vanishes under a step (a racing activation's copy won and ours was removed as its
// duplicate), it lists the backup once more and runs them again on the winner, which
// must then hold our material and labels.
func (j *copyJob) steps(ctx context.Context) error {
	for {
		err := j.runSteps(ctx)
		if err == nil || !errors.Is(err, engine.ErrNotFound) || !j.relist || j.converged {
			return err
		}
		j.converged, j.holds, j.read = true, false, nil
		if lerr := j.list(ctx); lerr != nil {
			return err
		}
	}
}

func (j *copyJob) runSteps(ctx context.Context) error {
	for _, step := range []func(context.Context) error{j.checkAdoption, j.keepNewer, j.ensureExists, j.readCopy, j.updateMaterial, j.updateLabels, j.verify} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// find looks the copy up: through the cache when it knows the copy (one call, which
// also reads it), else by listing the backup.
func (j *copyJob) find(ctx context.Context) error {
	backup := j.t.Instance()
	if known := j.e.Cache.get(backup, j.src.ID); known != "" {
		var cp *engine.Downloaded
		var err error
		if p, ok := receive(ctx, j.opts.prefetched); ok && p.id == known {
			cp, err = p.cp, p.err
		} else {
			cp, err = j.t.Download(ctx, known)
		}
		switch {
		case err == nil && j.e.Owner.Owns(backup, cp.Certificate, j.subj):
			// Conflicts are not re-checked on this path: they were reported when the
			// copy was made, and a warm replay must stay cheap.
			j.found, j.read = match.Found{Copy: &cp.Certificate, Original: cp.ID == j.subj.Origin && cp.ID != j.subj.ID}, cp
			return nil
		case err == nil || errors.Is(err, engine.ErrNotFound):
			j.e.Cache.put(backup, j.src.ID, "")
		default:
			return err
		}
	}
	return j.lookUp(ctx)
}

// lookUp finds the copy the first time: in the batch's listing when the engine copies
// a batch, else in a fresh one.
func (j *copyJob) lookUp(ctx context.Context) error {
	if j.e.Batch == nil {
		return j.list(ctx)
	}
	ix, err := j.e.Batch.index(ctx, j.e.Owner, j.t)
	if err != nil {
		return err
	}
	j.found = ix.Lookup(j.subj)
	return nil
}

// list finds the copy in a fresh listing of the backup.
func (j *copyJob) list(ctx context.Context) error {
	all, err := j.t.List(ctx)
	if err != nil {
		return err
	}
	j.found = match.Find(j.e.Owner, j.t.Instance(), all, j.subj)
	return nil
}

// checkAdoption reads a copy whose marker proves nothing: it is taken as ours (and
// its marker proven from now on) only if it holds the source's own material, which
// nobody without the right to import could have put there. Otherwise it is someone
// else's, reported as a conflict, and the backup gets its own copy.
func (j *copyJob) checkAdoption(ctx context.Context) error {
	if !j.found.Adopt {
		return nil
	}
	cand := *j.found.Copy
	got, err := j.t.Download(ctx, cand.ID)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("read the certificate to adopt: %w", err)
	}
	if err == nil && sameMaterial(got, j.src, j.want) {
		j.read = got // adopted: its marker is proven below, its name and description stay
		return nil
	}
	j.found.Adopt = false
	j.found.Copy = nil
	j.found.Conflicts = append(j.found.Conflicts, cand)
	return nil
}

// keepNewer refuses to replace a copy that holds a newer certificate than the source:
// a deployment that came back with a failed region must not undo the renewals made
// elsewhere during the outage.
func (j *copyJob) keepNewer(context.Context) error {
	if j.found.Copy == nil {
		return nil
	}
	f := j.found
	if j.read != nil {
		current := j.read.Certificate
		f.Copy = &current
	}
	if match.Unwritable(j.subj, f) {
		return errUnwritable
	}
	if match.KeepsNewer(j.subj, f) {
		return errNewer
	}
	return nil
}

// errUnwritable skips an original the service renews itself (match.Unwritable).
var errUnwritable = errors.New(match.UnwritableMessage)

// errNewer is ActionKeepNewer's refusal on the notification path (class permanent).
var errNewer = errors.New("the backup holds a newer certificate than the source; it is not replaced by the older one: run the reconcile from the instance that holds the newest certificates, or stop this deployment")

// ensureExists imports a copy when there is none.
func (j *copyJob) ensureExists(ctx context.Context) error {
	if j.found.Copy != nil {
		return nil
	}
	imported, err := j.importOnce(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	j.wrote, j.read, j.holds = Imported, nil, true
	j.found = match.Found{Copy: imported, Conflicts: j.found.Conflicts}
	if !j.relist {
		return nil
	}
	// Another activation may have imported the same source at the same time: list
	// again, and let every activation converge on the same winner (the smallest ID).
	all, err := j.t.List(ctx)
	if err != nil {
		return fmt.Errorf("list after import: %w", err)
	}
	if f := match.Find(j.e.Owner, j.t.Instance(), all, j.subj); f.Copy != nil && !f.Adopt && !f.Original {
		// A racing activation's copy won: what it holds must be read.
		j.holds = j.holds && f.Copy.ID == imported.ID
		f.Conflicts = j.found.Conflicts
		j.found = f
	} // else not yet visible in the listing: trust the import's answer
	return nil
}

// importAttempts bounds the imports of one copy whose earlier attempts ended without
// an answer (a provider never resends an import by itself: see engine.ErrAmbiguous).
const importAttempts = 3

// importOnce imports so that at most one copy results: after a failure that leaves it
// unknown whether the service imported it, it lists the backup and takes the copy it
// finds; only when there is none does it import again.
func (j *copyJob) importOnce(ctx context.Context) (*engine.Certificate, error) {
	labels := j.e.Owner.Want(j.t, j.subj, false, "")
	for n := 2; engine.NamesAreUnique(j.t) && j.found.Taken(labels.Name) && n < 10; n++ {
		labels = j.renamed(n) // the name is held by another certificate (names are unique there)
	}
	for attempt, n := 1, 2; ; attempt++ {
		imported, err := j.t.Import(ctx, labels, j.src.Material)
		if errors.Is(err, engine.ErrConflict) && n < 10 {
			// The name is taken: by a racing activation's copy of the same source (take
			// it), or by a certificate that is not ours (import under the next name).
			if all, lerr := j.t.List(ctx); lerr == nil {
				if f := match.Find(j.e.Owner, j.t.Instance(), all, j.subj); f.Copy != nil && !f.Adopt && !f.Original {
					return f.Copy, nil
				}
			}
			labels, n = j.renamed(n), n+1
			continue
		}
		if err == nil || !engine.IsAmbiguous(err) || attempt == importAttempts {
			return imported, err
		}
		all, lerr := j.t.List(ctx)
		if lerr != nil {
			return nil, err
		}
		if f := match.Find(j.e.Owner, j.t.Instance(), all, j.subj); f.Copy != nil && !f.Adopt && !f.Original {
			return f.Copy, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// renamed is the import's labels with the name made distinct by n, for a backup where
// the copy's name is held by a certificate that is not certbackup's.
func (j *copyJob) renamed(n int) engine.Labels {
	s := j.subj
	s.Name = fmt.Sprintf("%s-%d", s.Name, n)
	return j.e.Owner.Want(j.t, s, false, "")
}

// readCopy reads the copy before deciding what to write, unless the caller knows it
// differs (it is then reimported unread) or this job just wrote it. After an import
// that a racing activation's copy won, this read is what tells whether the winner
// holds our material.
func (j *copyJob) readCopy(ctx context.Context) error {
	if j.holds || j.wrote == "" && j.opts.KnownDifferent {
		j.read = nil
		return nil
	}
	if j.read != nil && j.read.ID == j.found.Copy.ID {
		return nil
	}
	got, err := j.t.Download(ctx, j.found.Copy.ID)
	for retry := 0; errors.Is(err, engine.ErrNotFound) && j.relist && retry < 3; retry++ {
		// A racing activation imported a copy with a smaller ID after our listing and
		// removed the one we took for the winner: converge on the new winner.
		all, lerr := j.t.List(ctx)
		if lerr != nil {
			break
		}
		f := match.Find(j.e.Owner, j.t.Instance(), all, j.subj)
		if f.Copy == nil || f.Adopt {
			break
		}
		f.Conflicts = j.found.Conflicts
		j.found = f
		got, err = j.t.Download(ctx, j.found.Copy.ID)
	}
	if err != nil {
		return fmt.Errorf("read the copy: %w", err)
	}
	j.read = got
	return nil
}

// updateMaterial reimports the copy when it does not hold the source's material.
func (j *copyJob) updateMaterial(ctx context.Context) error {
	if j.holds || j.read != nil && sameMaterial(j.read, j.src, j.want) {
		return nil
	}
	if err := j.t.Reimport(ctx, j.found.Copy.ID, j.src.Material); err != nil {
		return fmt.Errorf("reimport: %w", err)
	}
	j.noteWrite(Reimported)
	return nil
}

// updateLabels sets the copy's name, description and marker when they differ (after
// an import, the import's proof becomes the proof bound to the copy's ID).
func (j *copyJob) updateLabels(ctx context.Context) error {
	current := *j.found.Copy
	j.labels = j.e.Owner.WantFor(j.t, j.subj, j.found)
	if j.read != nil {
		current = j.read.Certificate
	}
	if engine.LabelsOf(current) == j.labels {
		return nil
	}
	err := j.t.UpdateLabels(ctx, j.found.Copy.ID, j.labels)
	if errors.Is(err, engine.ErrConflict) && j.labels.Name != current.Name {
		// The name is held by another certificate: keep the copy's own.
		j.labels.Name = current.Name
		err = j.t.UpdateLabels(ctx, j.found.Copy.ID, j.labels)
	}
	if err != nil {
		return fmt.Errorf("update name and description: %w", err)
	}
	j.noteWrite(Updated)
	return nil
}

// verify reads the copy back after any write and checks that it holds the source's
// material and labels; it then remembers where the copy is.
func (j *copyJob) verify(ctx context.Context) error {
	backup := j.t.Instance()
	if j.read == nil {
		got, err := j.t.Download(ctx, j.found.Copy.ID)
		if err != nil {
			return fmt.Errorf("read the copy back: %w", err)
		}
		j.read = got
	}
	if !sameMaterial(j.read, j.src, j.want) || engine.LabelsOf(j.read.Certificate) != j.labels {
		j.e.Cache.put(backup, j.src.ID, "")
		return verificationError{}
	}
	j.e.Cache.put(backup, j.src.ID, j.found.Copy.ID)
	return nil
}

type verificationError struct{}

func (verificationError) Error() string {
	return "the copy read back does not hold the source certificate"
}

// removeExtras deletes the further copies of the same logical certificate once the
// copy is verified, when that loses nothing: they are ours and hold the same
// certificate. A failure is harmless (the next run removes it) and is reported.
func (j *copyJob) removeExtras(ctx context.Context) (removed []string, message string) {
	for _, extra := range j.found.Extra {
		if extra.ID == j.found.Copy.ID {
			continue // never the copy itself, whatever a listing said
		}
		if extra.Marker != nil && extra.Marker.Adopted {
			message = fmt.Sprintf("further copy %s was adopted, not created by certbackup; kept", extra.ID)
			continue
		}
		if !engine.SameCertificate(extra, j.src.Certificate) {
			message = fmt.Sprintf("further copy %s holds another certificate; kept", extra.ID)
			continue
		}
		if err := j.t.Delete(ctx, extra.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			message = fmt.Sprintf("duplicate copy %s not removed yet: %v", extra.ID, err)
			continue
		}
		removed = append(removed, extra.ID)
	}
	return removed, message
}

// noteWrite records a write; the first one names the outcome. Any write means the
// copy must be read back.
func (j *copyJob) noteWrite(o Outcome) {
	if j.wrote == "" {
		j.wrote = o
	}
	j.read = nil
}

// outcome of a verified copy. Conflict is decided when the copy is first made: later
// replays may take the cached path, which does not list the backup, and must report
// the same outcome for the same state of the copy.
func (j *copyJob) outcome() Outcome {
	switch {
	case j.wrote == Imported && len(j.found.Conflicts) > 0:
		return Conflict
	case j.wrote != "":
		return j.wrote
	default:
		return Unchanged
	}
}

// sameMaterial reports whether the copy holds the source's material: equal text first
// (the common case, and free), else the same certificate, key and chain whatever their
// PEM formatting (the service may store it normalised).
func sameMaterial(cp, src *engine.Downloaded, want string) bool {
	if cp.Material == src.Material {
		return true
	}
	b, err := pemutil.ParseBundle(cp.Material.Certificate, cp.Material.PrivateKey, cp.Material.Intermediate)
	return err == nil && b.Digest() == want
}
