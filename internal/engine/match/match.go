// Package match is the rule that pairs a source certificate with its copy in a backup
// instance. Names are not unique and a certificate's ID differs between instances, so
// a copy carries certbackup's marker (engine.Marker) naming its source certificate;
// how a provider stores the marker (a description suffix, labels and metadata) is the
// provider's business.
//
// A backup certificate is a copy of S if and only if its marker names S. Everything
// else in a backup instance belongs to someone else and is never written by us.
package match

import (
	"slices"
	"strings"

	"github.com/certbackup/certbackup/internal/engine"
)

// IsCopyOf reports whether backup certificate c is a copy of source certificate sourceID.
func IsCopyOf(c engine.Certificate, sourceID string) bool {
	return c.Marker != nil && c.Marker.Source == sourceID
}

// Want is the labels a copy of src must have, before the target's own rules (see
// engine.Target.Fit).
func Want(src engine.Certificate) engine.Labels {
	return engine.Labels{Name: src.Name, Description: src.Description, Marker: engine.Marker{Source: src.ID}}
}

// SameLabels reports whether copy cp of src has the labels t stores for it.
func SameLabels(t engine.Target, src, cp engine.Certificate) bool {
	return engine.LabelsOf(cp) == t.Fit(Want(src))
}

// Found is what a backup instance holds for one source certificate.
type Found struct {
	// Copy is our copy, nil when there is none. When several copies exist (two
	// activations raced to import), the one with the smallest ID is the copy.
	Copy *engine.Certificate
	// Extra are further copies of the same source: ours, safe to delete once Copy is
	// verified.
	Extra []engine.Certificate
	// Conflicts are certificates with the source's name that carry no marker at all.
	// They are reported and never written.
	Conflicts []engine.Certificate
}

// Find looks for the copy of source certificate sourceID (named sourceName) in a
// backup instance's listing.
func Find(backup []engine.Certificate, sourceID, sourceName string) Found {
	return NewIndex(backup).Lookup(sourceID, sourceName)
}

// Index groups a backup listing by the source of each copy, for the reconcile.
// Certificates without a marker are kept apart, by name.
type Index struct {
	BySource  map[string][]engine.Certificate // sorted by ID: the first is the copy
	Unmanaged map[string][]engine.Certificate // by name
}

// NewIndex indexes a backup listing.
func NewIndex(backup []engine.Certificate) Index {
	ix := Index{BySource: map[string][]engine.Certificate{}, Unmanaged: map[string][]engine.Certificate{}}
	seen := map[string]bool{}
	for _, c := range backup {
		// A paged listing can return one certificate twice (it moved in the sort order
		// between two pages): it is still one certificate, never its own duplicate.
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if c.Marker != nil {
			ix.BySource[c.Marker.Source] = append(ix.BySource[c.Marker.Source], c)
		} else {
			ix.Unmanaged[c.Name] = append(ix.Unmanaged[c.Name], c)
		}
	}
	for k := range ix.BySource {
		slices.SortFunc(ix.BySource[k], func(a, b engine.Certificate) int { return strings.Compare(a.ID, b.ID) })
	}
	return ix
}

// Lookup is Find over an index. A copy of another source with the same name is not a
// conflict: two source certificates may share a name, and their copies keep them apart.
func (ix Index) Lookup(sourceID, sourceName string) Found {
	var f Found
	if copies := ix.BySource[sourceID]; len(copies) > 0 {
		winner := copies[0]
		f.Copy = &winner
		f.Extra = slices.Clone(copies[1:])
	}
	f.Conflicts = slices.Clone(ix.Unmanaged[sourceName])
	return f
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
