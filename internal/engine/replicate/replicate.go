// Package replicate is the engine: it makes one source certificate exist, byte for
// byte, in every backup instance, and turns a verified notification into such copies.
// It is pure logic over two small interfaces, Source and Target; it knows nothing of
// OpenWhisk, and the reconcile, the action and the local demo all call it.
//
// The notification is only a hint: the engine always reads the current state of the
// source, so a replayed, duplicated or out-of-order notification re-confirms the
// current state instead of writing an old one.
//
// It never logs or returns certificate material: results carry CRNs, outcomes and
// fingerprints (one-way hashes) only.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/pemutil"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// Source is where certificates come from. Download returns an error for which
// cms.IsNotFound is true when the certificate no longer exists. Implementations are
// safe for concurrent use and honour the context's deadline.
type Source interface {
	InstanceCRN() string
	List(ctx context.Context) ([]cms.Certificate, error)
	Download(ctx context.Context, certCRN string) (*cms.CertificateWithData, error)
}

// Target is one backup instance. Same contract as Source; writes are not idempotent
// (an import twice makes two certificates), which is why the engine looks before it
// writes and converges duplicates.
type Target interface {
	InstanceCRN() string
	List(ctx context.Context) ([]cms.Certificate, error)
	Download(ctx context.Context, certCRN string) (*cms.CertificateWithData, error)
	Import(ctx context.Context, req cms.ImportRequest) (*cms.Certificate, error)
	Reimport(ctx context.Context, certCRN string, data cms.Data) (*cms.Certificate, error)
	UpdateMetadata(ctx context.Context, certCRN, name, description string) error
	Delete(ctx context.Context, certCRN string) error
}

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

// Error classes of a failed pair.
const (
	ClassRetryable     = "retryable"      // rate limit, server error, network, deadline: the next run will do it
	ClassPermanent     = "permanent"      // 400, 401, 403, 404, 409: needs an operator
	ClassInvalidSource = "invalid_source" // the source's material does not parse, match or chain: nothing was written
	ClassVerification  = "verification"   // the copy read back does not hold what was written
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
	ErrorClass        string   `json:"error_class,omitempty"`
	Message           string   `json:"message,omitempty"`
	Reason            string   `json:"reason,omitempty"`
}

// Engine replicates certificates from Source to every Target.
type Engine struct {
	Source  Source
	Targets []Target
	Logger  *slog.Logger
	// Cache remembers where each copy is, for the life of a warm container, so that a
	// replay costs one call per backup instead of a listing.
	Cache *CopyCache
}

// CopyCache maps (backup instance, source certificate) to the copy's CRN. Safe for
// concurrent use. A stale entry is harmless: the copy is read and its marker checked
// before it is trusted.
type CopyCache struct {
	mu sync.Mutex
	m  map[[2]string]string
}

// NewCopyCache returns an empty cache.
func NewCopyCache() *CopyCache { return &CopyCache{m: map[[2]string]string{}} }

func (c *CopyCache) get(backup, source string) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[[2]string{backup, source}]
}

func (c *CopyCache) put(backup, source, copyCRN string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if copyCRN == "" {
		delete(c.m, [2]string{backup, source})
		return
	}
	c.m[[2]string{backup, source}] = copyCRN
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
func (e *Engine) ReplicateCertificate(ctx context.Context, certCRN string) []PairResult {
	results := make([]PairResult, len(e.Targets))
	base := func(t Target) PairResult {
		return PairResult{SourceCRN: certCRN, Backup: t.InstanceCRN()}
	}
	// Read every copy the cache knows while the source is being downloaded: the two
	// are independent, and on a warm replay they are all the calls there are.
	prefetched := make([]chan prefetch, len(e.Targets))
	for i, t := range e.Targets {
		if known := e.Cache.get(t.InstanceCRN(), certCRN); known != "" {
			ch := make(chan prefetch, 1)
			prefetched[i] = ch
			go func() {
				cp, err := t.Download(ctx, known)
				ch <- prefetch{crn: known, cp: cp, err: err}
			}()
		}
	}
	src, err := e.Source.Download(ctx, certCRN)
	if err != nil {
		for i, t := range e.Targets {
			r := base(t)
			if cms.IsNotFound(err) {
				r.Outcome, r.Reason = Skipped, "the certificate no longer exists in the source instance"
			} else {
				failWith(&r, fmt.Errorf("download from the source: %w", err))
			}
			results[i] = r
		}
		e.logPairs(ctx, results)
		return results
	}
	if src.ID != certCRN {
		for i, t := range e.Targets {
			r := base(t)
			r.Outcome, r.ErrorClass, r.Message = Failed, ClassInvalidSource, "the source returned a different certificate than the one asked for"
			results[i] = r
		}
		return results
	}
	bundle, err := pemutil.ParseBundle(src.Data.Content, src.Data.PrivKey, src.Data.Intermediate)
	if err != nil {
		for i, t := range e.Targets {
			r := base(t)
			r.Name = src.Name
			r.Outcome, r.ErrorClass, r.Message = Failed, ClassInvalidSource, err.Error()
			results[i] = r
		}
		e.logPairs(ctx, results)
		return results
	}
	var wg sync.WaitGroup
	for i, t := range e.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.CopyTo(ctx, t, src, bundle, nil, CopyOptions{prefetched: prefetched[i]})
		}()
	}
	wg.Wait()
	e.logPairs(ctx, results)
	return results
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

// CopyOptions are hints from a caller that already listed the backup (the reconcile).
type CopyOptions struct {
	// KnownDifferent: the caller saw from the metadata that the copy holds another
	// certificate, so the copy is reimported without being downloaded first.
	KnownDifferent bool

	// prefetched is the read of the cached copy, started while the source was being
	// downloaded (ReplicateCertificate), so that a warm replay costs one round trip.
	prefetched <-chan prefetch
}

type prefetch struct {
	crn string
	cp  *cms.CertificateWithData
	err error
}

// CopyTo makes src (already checked into bundle) exist in t. found is what the caller
// already knows of t from a fresh listing (the reconcile indexes a whole listing); nil
// means look it up. When the caller gave found, an import is not followed by a second
// listing to detect a racing import: the caller's next run converges duplicates, and a
// restore of 1000 certificates must not cost 1000 listings.
func (e *Engine) CopyTo(ctx context.Context, t Target, src *cms.CertificateWithData, bundle *pemutil.Bundle, found *match.Found, opts CopyOptions) PairResult {
	r := PairResult{SourceCRN: src.ID, Name: src.Name, Backup: t.InstanceCRN(), Fingerprint: pemutil.Fingerprint(bundle.Leaf)}
	want := bundle.Digest()
	var cp *cms.CertificateWithData // the copy, read, when the lookup already downloaded it

	raceCheck := found == nil
	if found == nil {
		f, read, err := e.lookup(ctx, t, src, opts.prefetched)
		if err != nil {
			failWith(&r, fmt.Errorf("find the copy: %w", err))
			return r
		}
		found, cp = &f, read
	}
	r.Conflicts = crns(found.Conflicts)

	wrote := Outcome("")
	if found.Copy == nil {
		imported, err := e.importOnce(ctx, t, src)
		if err != nil {
			failWith(&r, fmt.Errorf("import: %w", err))
			return r
		}
		wrote = Imported
		f := match.Found{Copy: imported, Conflicts: found.Conflicts}
		if raceCheck {
			// Another activation may have imported the same source at the same time:
			// list again, and let every activation converge on the same winner (the
			// smallest CRN).
			all, err := t.List(ctx)
			if err != nil {
				failWith(&r, fmt.Errorf("list after import: %w", err))
				r.CopyCRN = imported.ID
				return r
			}
			f = match.Find(all, src.ID, src.Name)
			if f.Copy == nil {
				// Not yet visible in the listing: trust the import response.
				f.Copy = imported
			}
		}
		found = &f
		cp = nil // read the copy back below
	}
	r.CopyCRN = found.Copy.ID

	// Read the copy before deciding, unless the caller knows it differs (it is then
	// reimported unread). After an import the copy is read as well: if a racing
	// activation's copy won, this read is what tells whether it holds our material.
	if wrote == "" && opts.KnownDifferent {
		cp = nil
	} else if cp == nil || cp.ID != found.Copy.ID {
		got, err := t.Download(ctx, found.Copy.ID)
		for retry := 0; err != nil && cms.IsNotFound(err) && raceCheck && retry < 3; retry++ {
			// A racing activation imported a copy with a smaller CRN after our listing
			// and removed the one we took for the winner: converge on the new winner.
			all, lerr := t.List(ctx)
			if lerr != nil {
				break
			}
			f := match.Find(all, src.ID, src.Name)
			if f.Copy == nil {
				break
			}
			found = &f
			r.CopyCRN = found.Copy.ID
			got, err = t.Download(ctx, found.Copy.ID)
		}
		if err != nil {
			failWith(&r, fmt.Errorf("read the copy: %w", err))
			return r
		}
		cp = got
	}
	if cp == nil || !sameMaterial(cp, src, want) {
		if _, err := t.Reimport(ctx, found.Copy.ID, src.Data); err != nil {
			failWith(&r, fmt.Errorf("reimport: %w", err))
			return r
		}
		if wrote == "" {
			wrote = Reimported
		}
		cp = nil
	}
	wantDesc := match.CopyDescription(src.Description, src.ID)
	labels := func(c cms.Certificate) bool { return c.Name == src.Name && c.Description == wantDesc }
	current := found.Copy
	if cp != nil {
		current = &cp.Certificate
	}
	if !labels(*current) {
		if err := t.UpdateMetadata(ctx, found.Copy.ID, src.Name, wantDesc); err != nil {
			failWith(&r, fmt.Errorf("update name and description: %w", err))
			return r
		}
		if wrote == "" {
			wrote = Updated
		}
		cp = nil
	}
	if cp == nil {
		got, err := t.Download(ctx, found.Copy.ID)
		if err != nil {
			failWith(&r, fmt.Errorf("read the copy back: %w", err))
			return r
		}
		cp = got
	}
	if !sameMaterial(cp, src, want) || !labels(cp.Certificate) {
		r.Outcome, r.ErrorClass = Failed, ClassVerification
		r.Message = "the copy read back does not hold the source certificate"
		e.Cache.put(t.InstanceCRN(), src.ID, "")
		return r
	}
	r.Verified = true
	e.Cache.put(t.InstanceCRN(), src.ID, found.Copy.ID)

	for _, extra := range found.Extra {
		if extra.ID == found.Copy.ID {
			continue // never the copy itself, whatever a listing said
		}
		if err := t.Delete(ctx, extra.ID); err != nil && !cms.IsNotFound(err) {
			// Harmless: the extra copy holds the same source; the next run removes it.
			r.Message = fmt.Sprintf("duplicate copy %s not removed yet: %v", extra.ID, err)
			continue
		}
		r.RemovedDuplicates = append(r.RemovedDuplicates, extra.ID)
	}

	r.Outcome = Unchanged
	if wrote != "" {
		r.Outcome = wrote
	}
	// Conflict is decided when the copy is first made: later replays may take the
	// cached path, which does not list the backup, and must report the same outcome
	// for the same state of the copy.
	if wrote == Imported && len(found.Conflicts) > 0 {
		r.Outcome = Conflict
		r.Message = "imported beside a certificate of the same name that is not a copy; that certificate was left untouched"
	}
	return r
}

func receive(ctx context.Context, ch <-chan prefetch) (prefetch, bool) {
	if ch == nil {
		return prefetch{}, false
	}
	select {
	case p := <-ch:
		return p, true
	case <-ctx.Done():
		return prefetch{}, false
	}
}

// importAttempts bounds the imports of one copy whose earlier attempts ended without
// an answer (the client does not resend an import by itself: see cms.IsAmbiguous).
const importAttempts = 3

// importOnce imports src into t so that at most one copy results: after a failure
// that leaves it unknown whether the service imported it (lost answer, 5xx), it lists
// t and takes the copy it finds; only when there is none does it import again.
func (e *Engine) importOnce(ctx context.Context, t Target, src *cms.CertificateWithData) (*cms.Certificate, error) {
	req := cms.ImportRequest{
		Name:        src.Name,
		Description: match.CopyDescription(src.Description, src.ID),
		Data:        src.Data,
	}
	var err error
	for attempt := 1; ; attempt++ {
		var imported *cms.Certificate
		imported, err = t.Import(ctx, req)
		if err == nil || !cms.IsAmbiguous(err) || attempt == importAttempts {
			return imported, err
		}
		all, lerr := t.List(ctx)
		if lerr != nil {
			return nil, err
		}
		if f := match.Find(all, src.ID, src.Name); f.Copy != nil {
			return f.Copy, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// lookup finds the copy of src in t: through the cache when it knows the copy (one
// call, which also reads the copy), else by listing t.
func (e *Engine) lookup(ctx context.Context, t Target, src *cms.CertificateWithData, prefetched <-chan prefetch) (match.Found, *cms.CertificateWithData, error) {
	if known := e.Cache.get(t.InstanceCRN(), src.ID); known != "" {
		var cp *cms.CertificateWithData
		var err error
		if p, ok := receive(ctx, prefetched); ok && p.crn == known {
			cp, err = p.cp, p.err
		} else {
			cp, err = t.Download(ctx, known)
		}
		switch {
		case err == nil && match.IsCopyOf(cp.Certificate, src.ID):
			// Conflicts are not re-checked on this path: they were reported when the
			// copy was made, and a warm replay must stay cheap.
			return match.Found{Copy: &cp.Certificate}, cp, nil
		case err == nil || cms.IsNotFound(err):
			e.Cache.put(t.InstanceCRN(), src.ID, "")
		default:
			return match.Found{}, nil, err
		}
	}
	all, err := t.List(ctx)
	if err != nil {
		return match.Found{}, nil, err
	}
	return match.Find(all, src.ID, src.Name), nil, nil
}

// sameMaterial reports whether the copy holds the source's material: equal text first
// (the common case, and free), else the same certificate, key and chain whatever their
// PEM formatting (the service may store it normalised).
func sameMaterial(cp *cms.CertificateWithData, src *cms.CertificateWithData, want string) bool {
	if cp.Data == src.Data {
		return true
	}
	return digestOf(cp) == want
}

func digestOf(c *cms.CertificateWithData) string {
	b, err := pemutil.ParseBundle(c.Data.Content, c.Data.PrivKey, c.Data.Intermediate)
	if err != nil {
		return "unparsable"
	}
	return b.Digest()
}

func crns(cs []cms.Certificate) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// failWith records err on r with its class. err's text is safe: cms errors never carry
// secrets, and pemutil errors never quote their input.
func failWith(r *PairResult, err error) {
	r.Outcome = Failed
	r.Message = err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), cms.IsRetryable(err):
		r.ErrorClass = ClassRetryable
	case errors.Is(err, pemutil.ErrInvalid):
		r.ErrorClass = ClassInvalidSource
	default:
		r.ErrorClass = ClassPermanent
	}
}

// Instance adapts one Certificate Manager instance to Source and Target.
type Instance struct {
	Client *cms.Client
	CRN    string
}

func (i Instance) InstanceCRN() string { return i.CRN }
func (i Instance) List(ctx context.Context) ([]cms.Certificate, error) {
	return i.Client.ListCertificates(ctx, i.CRN)
}
func (i Instance) Download(ctx context.Context, cert string) (*cms.CertificateWithData, error) {
	return i.Client.Download(ctx, cert)
}
func (i Instance) Import(ctx context.Context, req cms.ImportRequest) (*cms.Certificate, error) {
	return i.Client.Import(ctx, i.CRN, req)
}
func (i Instance) Reimport(ctx context.Context, cert string, data cms.Data) (*cms.Certificate, error) {
	return i.Client.Reimport(ctx, cert, data)
}
func (i Instance) UpdateMetadata(ctx context.Context, cert, name, description string) error {
	return i.Client.UpdateMetadata(ctx, cert, name, description)
}
func (i Instance) Delete(ctx context.Context, cert string) error {
	return i.Client.Delete(ctx, cert)
}
