// Package match is the rule that pairs a source certificate with its copy in a backup
// instance. Certificate Manager has no labels, names are not unique and a certificate's
// CRN differs between instances, so a copy carries the CRN of its source certificate in
// a marker at the end of its description:
//
//	<source description>\n[certbackup source=<source certificate CRN>]
//
// A backup certificate is a copy of S if and only if its description ends with the
// marker of S. Everything else in a backup instance belongs to someone else and is never
// written by us.
package match

import (
	"slices"
	"strings"

	"github.com/certbackup/certbackup/internal/provider/cms"
)

// MaxDescription is Certificate Manager's limit on a description.
const MaxDescription = 1024

const (
	markerPrefix = "[certbackup source="
	markerSuffix = "]"
	separator    = "\n"
)

// Marker is the marker of source certificate sourceCRN.
func Marker(sourceCRN string) string { return markerPrefix + sourceCRN + markerSuffix }

// SourceOf returns the source certificate CRN named by a description's marker.
func SourceOf(description string) (string, bool) {
	if !strings.HasSuffix(description, markerSuffix) {
		return "", false
	}
	i := strings.LastIndex(description, markerPrefix)
	if i < 0 {
		return "", false
	}
	src := description[i+len(markerPrefix) : len(description)-len(markerSuffix)]
	if src == "" || strings.ContainsAny(src, "[]\n") {
		return "", false
	}
	return src, true
}

// StripMarker removes a trailing marker (of any source) and its separator, so that a
// restore (backup and source swapped) does not pile markers up.
func StripMarker(description string) string {
	if _, ok := SourceOf(description); !ok {
		return description
	}
	i := strings.LastIndex(description, markerPrefix)
	return strings.TrimSuffix(description[:i], separator)
}

// CopyDescription is the description a copy of the source must have: the source's own
// description (without any marker it carries), cut so that the whole fits the limit,
// then the marker.
func CopyDescription(sourceDescription, sourceCRN string) string {
	desc := StripMarker(sourceDescription)
	marker := Marker(sourceCRN)
	room := MaxDescription - len(marker) - len(separator)
	if len(desc) > room {
		desc = cutUTF8(desc, room)
	}
	if desc == "" {
		return marker
	}
	return desc + separator + marker
}

// UserDescription is what a copy's description says without our marker.
func UserDescription(description string) string { return StripMarker(description) }

func cutUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// IsCopyOf reports whether backup certificate c is a copy of sourceCRN.
func IsCopyOf(c cms.Certificate, sourceCRN string) bool {
	src, ok := SourceOf(c.Description)
	return ok && src == sourceCRN
}

// Found is what a backup instance holds for one source certificate.
type Found struct {
	// Copy is our copy, nil when there is none. When several copies exist (two
	// activations raced to import), the one with the smallest CRN is the copy.
	Copy *cms.Certificate
	// Extra are further copies of the same source: ours, safe to delete once Copy is
	// verified.
	Extra []cms.Certificate
	// Conflicts are certificates with the source's name that carry no marker at all.
	// They are reported and never written.
	Conflicts []cms.Certificate
}

// Find looks for the copy of source certificate sourceCRN (named sourceName) in a
// backup instance's listing.
func Find(backup []cms.Certificate, sourceCRN, sourceName string) Found {
	var f Found
	var copies []cms.Certificate
	seen := map[string]bool{}
	for _, c := range backup {
		// A paged listing can return one certificate twice (it moved in the sort order
		// between two pages): it is still one certificate, never its own duplicate.
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		switch {
		case IsCopyOf(c, sourceCRN):
			copies = append(copies, c)
		case c.Name == sourceName:
			// A copy of another source with the same name is not a conflict: two source
			// certificates may share a name, and their copies keep them apart.
			if _, marked := SourceOf(c.Description); !marked {
				f.Conflicts = append(f.Conflicts, c)
			}
		}
	}
	if len(copies) > 0 {
		slices.SortFunc(copies, func(a, b cms.Certificate) int { return strings.Compare(a.ID, b.ID) })
		winner := copies[0]
		f.Copy = &winner
		f.Extra = copies[1:]
	}
	return f
}

// Index groups a backup listing by the source CRN of each copy, for the reconcile.
// Certificates without a marker are returned apart, by name.
type Index struct {
	BySource  map[string][]cms.Certificate // sorted by ID: the first is the copy
	Unmanaged map[string][]cms.Certificate // by name
}

// NewIndex indexes a backup listing.
func NewIndex(backup []cms.Certificate) Index {
	ix := Index{BySource: map[string][]cms.Certificate{}, Unmanaged: map[string][]cms.Certificate{}}
	seen := map[string]bool{}
	for _, c := range backup {
		if seen[c.ID] {
			continue // see Find
		}
		seen[c.ID] = true
		if src, ok := SourceOf(c.Description); ok {
			ix.BySource[src] = append(ix.BySource[src], c)
		} else {
			ix.Unmanaged[c.Name] = append(ix.Unmanaged[c.Name], c)
		}
	}
	for k := range ix.BySource {
		slices.SortFunc(ix.BySource[k], func(a, b cms.Certificate) int { return strings.Compare(a.ID, b.ID) })
	}
	return ix
}

// Lookup is Find over an index.
func (ix Index) Lookup(sourceCRN, sourceName string) Found {
	var f Found
	if copies := ix.BySource[sourceCRN]; len(copies) > 0 {
		winner := copies[0]
		f.Copy = &winner
		f.Extra = slices.Clone(copies[1:])
	}
	f.Conflicts = slices.Clone(ix.Unmanaged[sourceName])
	return f
}

// SameCertificate decides from metadata alone whether a copy holds the same leaf
// certificate as its source: same serial number, issuer, validity and domains. An X.509
// issuer never reuses a serial number, so equal metadata means the same certificate;
// the private key is bound to it. The intermediate is not in the metadata: the
// notification path compares full digests, the reconcile trusts this.
func SameCertificate(src, cp cms.Certificate) bool {
	return src.SerialNumber == cp.SerialNumber &&
		src.Issuer == cp.Issuer &&
		src.BeginsOn == cp.BeginsOn &&
		src.ExpiresOn == cp.ExpiresOn &&
		slices.Equal(src.Domains, cp.Domains)
}

// SameLabels reports whether the copy's name and description are what they must be.
func SameLabels(src, cp cms.Certificate) bool {
	return cp.Name == src.Name && cp.Description == CopyDescription(src.Description, src.ID)
}
