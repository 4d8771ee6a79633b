// Package match is the rule that pairs a source certificate with its copy in a backup
// instance, and decides what certbackup may touch there.
//
// Names are not unique and a certificate's ID differs between instances, so a copy
// carries certbackup's marker (engine.Marker) naming its source certificate and the
// original it descends from, with a proof (Owner) that certbackup wrote it. How a
// provider stores the marker (a description suffix, labels and metadata) is the
// provider's business.
//
// In a backup instance, for a source certificate S whose original is O:
//   - a certificate with a proven marker naming S, or descending from O, is a copy of S
//     (copies of copies after a failover are the same logical certificate);
//   - the certificate whose ID is O is the original itself (failback): it is updated,
//     never marked and never deleted;
//   - a certificate whose marker names S without a proof is adopted only if it holds
//     S's own certificate and private key (a principal without import rights cannot
//     have put them there); otherwise it is reported as a conflict and left alone;
//   - everything else belongs to someone else and is never written.
package match

import (
	"cmp"
	"crypto/hmac"
	"slices"
	"strings"

	"github.com/certbackup/certbackup/internal/engine"
)

// Found is what a backup instance holds for one source certificate.
type Found struct {
	// Copy is the certificate that stands for the source in the backup, nil when
	// there is none: our copy (the smallest ID among direct copies, then among
	// copies of the same original), or the original itself, or a candidate for
	// adoption.
	Copy *engine.Certificate
	// Original: Copy is the original of the source's chain of copies.
	Original bool
	// Adopt: Copy carries an unproven marker naming the source; it is ours only if it
	// holds the source's material, which must be checked before anything is written.
	Adopt bool
	// Extra are further proven copies of the same logical certificate: ours, deleted
	// once Copy is verified, if they hold the same certificate (nothing is lost).
	Extra []engine.Certificate
	// Conflicts are certificates that are not ours and are left alone: the source's
	// name without a marker, or a marker certbackup cannot prove.
	Conflicts []engine.Certificate
	// names are the backup's names (lower case -> IDs), nil when nothing was listed.
	names map[string][]string
	// current: Copy's proof is the one the current key makes for its ID (a reconcile
	// of unchanged copies need not make it again).
	current bool
}

// Taken reports whether a name is held by another certificate of the backup than the
// copy (compared without regard to case, as Secrets Manager compares): the copy keeps
// its name rather than take one that is not free. False when nothing was listed.
func (f Found) Taken(name string) bool {
	for _, id := range f.names[strings.ToLower(name)] {
		if f.Copy == nil || id != f.Copy.ID {
			return true
		}
	}
	return false
}

// Index is a backup instance's listing, read with the ownership rule.
type Index struct {
	instance string
	owner    *Owner
	bySource map[string][]engine.Certificate // proven copies, by source
	byRoot   map[string][]engine.Certificate // proven copies, by original
	claims   map[string][]engine.Certificate // unproven markers, by claimed source
	byName   map[string][]engine.Certificate // certificates that are not proven copies
	byID     map[string]engine.Certificate
	names    map[string][]string // lower-case name -> IDs
	current  map[string]bool     // IDs whose proof is the current key's, for their ID
	proven   []engine.Certificate
}

// NewIndex indexes the listing of backup instance instance.
func NewIndex(o *Owner, instance string, listing []engine.Certificate) *Index {
	ix := &Index{
		instance: instance, owner: o,
		bySource: map[string][]engine.Certificate{}, byRoot: map[string][]engine.Certificate{},
		claims: map[string][]engine.Certificate{}, byName: map[string][]engine.Certificate{},
		byID: map[string]engine.Certificate{}, names: map[string][]string{}, current: map[string]bool{},
	}
	for _, c := range listing {
		// A paged listing can return one certificate twice (it moved in the sort order
		// between two pages): it is still one certificate, never its own duplicate.
		if _, seen := ix.byID[c.ID]; seen {
			continue
		}
		ix.byID[c.ID] = c
		ix.names[strings.ToLower(c.Name)] = append(ix.names[strings.ToLower(c.Name)], c.ID)
		current := c.Marker != nil && hmac.Equal([]byte(c.Marker.Proof), []byte(o.Proof(instance, *c.Marker, c.ID)))
		switch {
		case current || o.Proven(instance, c):
			ix.current[c.ID] = current
			ix.bySource[c.Marker.Source] = append(ix.bySource[c.Marker.Source], c)
			if root := c.Marker.Root(); root != c.Marker.Source {
				ix.byRoot[root] = append(ix.byRoot[root], c)
			}
			ix.proven = append(ix.proven, c)
		case c.Marker != nil:
			ix.claims[c.Marker.Source] = append(ix.claims[c.Marker.Source], c)
			ix.byName[c.Name] = append(ix.byName[c.Name], c)
		default:
			ix.byName[c.Name] = append(ix.byName[c.Name], c)
		}
	}
	return ix
}

// Find is Lookup over a fresh index of a listing.
func Find(o *Owner, instance string, listing []engine.Certificate, s Subject) Found {
	return NewIndex(o, instance, listing).Lookup(s)
}

// Lookup finds what the backup holds for source certificate s.
func (ix *Index) Lookup(s Subject) Found {
	f := Found{names: ix.names}
	copies := ix.copiesOf(s)
	switch orig, isOrig := ix.byID[s.Origin]; {
	case len(copies) > 0:
		f.Copy, f.Extra = &copies[0], copies[1:]
		f.current = ix.current[f.Copy.ID]
	case isOrig && s.Origin != s.ID && !ix.owner.Proven(ix.instance, orig):
		f.Copy, f.Original = &orig, true
	case len(ix.claims[s.ID]) > 0:
		claims := byID(ix.claims[s.ID])
		f.Copy, f.Adopt = &claims[0], true
	}
	seen := map[string]bool{}
	if f.Copy != nil {
		seen[f.Copy.ID] = true
	}
	for _, c := range append(slices.Clone(ix.byName[s.Name]), ix.claims[s.ID]...) {
		if !seen[c.ID] {
			seen[c.ID] = true
			f.Conflicts = append(f.Conflicts, c)
		}
	}
	slices.SortFunc(f.Conflicts, func(a, b engine.Certificate) int { return strings.Compare(a.ID, b.ID) })
	return f
}

// copiesOf returns the proven copies of s: direct copies first, then the other copies
// of the same original, each group by ID.
func (ix *Index) copiesOf(s Subject) []engine.Certificate {
	direct := byID(ix.bySource[s.ID])
	var kin []engine.Certificate
	for _, c := range append(slices.Clone(ix.byRoot[s.Origin]), ix.bySource[s.Origin]...) {
		if c.Marker.Source != s.ID && !slices.ContainsFunc(kin, func(k engine.Certificate) bool { return k.ID == c.ID }) {
			kin = append(kin, c)
		}
	}
	return append(direct, byID(kin)...)
}

// KeepsNewer reports whether the certificate f found must not be given s's
// certificate: it holds a newer one, or it is the copy of another certificate of the
// same origin (made during a failover) and s is not newer than it. A deployment that
// comes back with a failed region must not undo the renewals made elsewhere.
func KeepsNewer(s Subject, f Found) bool {
	if f.Copy == nil || engine.SameCertificate(s.Certificate, *f.Copy) {
		return false
	}
	if engine.Newer(*f.Copy, s.Certificate) {
		return true
	}
	kin := !f.Original && !f.Adopt && f.Copy.Marker != nil && f.Copy.Marker.Source != s.ID
	return kin && !engine.Newer(s.Certificate, *f.Copy)
}

// Unwritable reports whether the certificate f found for s is the original itself and
// an order the service renews (engine.Certificate.Managed) that holds another
// certificate: its material cannot be replaced, so it is left as it is and reported.
func Unwritable(s Subject, f Found) bool {
	return f.Copy != nil && f.Original && f.Copy.Managed && !engine.SameCertificate(s.Certificate, *f.Copy)
}

// UnwritableMessage explains Unwritable.
const UnwritableMessage = "the original in this instance is a certificate the service orders and renews itself, whose material cannot be replaced by an import: it is left as it is; renew it there (or import the newer certificate by hand)"

// Proven returns the proven copies of the listing (ours), by ID.
func (ix *Index) Proven() []engine.Certificate { return byID(ix.proven) }

func byID(cs []engine.Certificate) []engine.Certificate {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b engine.Certificate) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Owns reports whether c, read from instance, is a copy of s that certbackup may
// write: a proven copy of s or of its original, or the original itself.
func (o *Owner) Owns(instance string, c engine.Certificate, s Subject) bool {
	if o.Proven(instance, c) {
		return c.Marker.Source == s.ID || c.Marker.Root() == s.Origin || c.Marker.Source == s.Origin
	}
	return c.ID == s.Origin && s.Origin != s.ID
}

// IDs returns the IDs of cs, nil when it is empty.
func IDs(cs []engine.Certificate) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
