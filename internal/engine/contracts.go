package engine

import "context"

// Source is an instance that certificates are copied from.
//
// Every implementation is safe for concurrent use, honours the context's deadline and
// cancellation in every call, and returns errors that answer errors.Is for the classes
// of this package (ErrNotFound when the certificate does not exist, ErrRetryable when
// trying again later may succeed). No error text holds key material or credentials.
type Source interface {
	// Instance is the instance's CRN.
	Instance() string
	// List returns the metadata of every certificate of the instance, without
	// material and without reading any. A certificate that changed while the listing
	// was paged may appear twice; callers count it once (by ID).
	List(ctx context.Context) ([]Certificate, error)
	// Metadata returns one certificate's metadata without reading its material.
	Metadata(ctx context.Context, id string) (*Certificate, error)
	// Download returns one certificate with its material (private key included).
	Download(ctx context.Context, id string) (*Downloaded, error)
}

// UniqueNames is implemented by a Target whose service refuses two certificates of
// one name (Secrets Manager): the engine then never asks for a name another
// certificate holds, and imports under a distinct one. Certificate Manager allows
// equal names.
type UniqueNames interface {
	UniqueNames() bool
}

// NamesAreUnique reports whether t's service refuses two certificates of one name.
func NamesAreUnique(t any) bool {
	u, ok := t.(UniqueNames)
	return ok && u.UniqueNames()
}

// Target is one backup instance. It reads like a Source and writes copies.
//
// Writes are not idempotent: Import twice makes two certificates. That is why the
// engine looks before it writes, why an Import whose answer was lost must fail with
// an error that answers ErrAmbiguous (the engine then looks for the copy before it
// imports again), and why Import must never be retried by the implementation except
// after an answer that proves nothing was created (a 429).
type Target interface {
	Source
	// Fit returns l as this instance stores it: its length and character rules
	// applied to the name and description. The engine compares listings with
	// Fit(wanted), so Fit must be exactly what Import and UpdateLabels write.
	Fit(l Labels) Labels
	// Import creates a new certificate holding m, labelled l.
	Import(ctx context.Context, l Labels, m Material) (*Certificate, error)
	// Reimport replaces the material of certificate id in place; the instance keeps
	// the previous version where it keeps versions. Nothing is returned: the engine
	// reads the copy back to verify it, so a provider makes no call to describe it.
	Reimport(ctx context.Context, id string, m Material) error
	// UpdateLabels sets the name, description and marker of certificate id without
	// touching its material.
	UpdateLabels(ctx context.Context, id string, l Labels) error
	// Delete deletes certificate id. ErrNotFound when it is already gone.
	Delete(ctx context.Context, id string) error
}
