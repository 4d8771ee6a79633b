package match

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/internal/engine"
)

// Owner proves and checks that certbackup wrote a marker. A proof is a keyed MAC over
// the marker (source, origin), the instance that holds the certificate and the
// certificate's own identity, so that a marker copied verbatim onto another
// certificate, or into another instance, proves nothing, and nobody without the key
// can make one. Whoever can edit names and descriptions (a Writer) can break a proof,
// never forge one.
//
// The identity is the copy's ID. An import cannot know the ID it will get, so an
// import carries a proof bound to the certificate it holds (serial number and expiry)
// instead, and the engine rewrites it to the ID form right after: a copy's proof then
// survives every renewal without another write.
//
// The key comes from the configuration's ownership_key, or else from its API key:
// see README "How a copy is recognised" for what a key rotation does.
type Owner struct {
	key      []byte
	previous []*Owner // keys whose proofs are still accepted (a rotation); never used to prove
}

// NewOwner derives the proof key from secret; proofs made with the keys of previous
// are accepted too, and replaced by proofs of secret when certbackup next writes the
// copy's labels.
func NewOwner(secret string, previous ...string) *Owner {
	o := &Owner{key: deriveKey(secret)}
	for _, p := range previous {
		if p != "" && p != secret {
			o.previous = append(o.previous, &Owner{key: deriveKey(p)})
		}
	}
	return o
}

func deriveKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("certbackup ownership proof key v1"))
	return m.Sum(nil)
}

// proofLen is 128 bits of MAC in unpadded base64url.
const proofLen = 22

// Proof is the proof of m on certificate id of instance.
func (o *Owner) Proof(instance string, m engine.Marker, id string) string {
	return o.mac("id", strings.ToLower(instance), m.Source, m.Origin, adopted(m), id)
}

func adopted(m engine.Marker) string {
	if m.Adopted {
		return "adopted"
	}
	return ""
}

// ImportProof is the proof of m in instance on a certificate holding c's certificate
// (its serial number and expiry), for an import.
func (o *Owner) ImportProof(instance string, m engine.Marker, c engine.Certificate) string {
	return o.mac("content", strings.ToLower(instance), m.Source, m.Origin, adopted(m), serialKey(c.SerialNumber), strconv.FormatInt(c.NotAfter.Unix(), 10))
}

func (o *Owner) mac(parts ...string) string {
	mac := hmac.New(sha256.New, o.key)
	for _, part := range append([]string{"v1"}, parts...) {
		mac.Write([]byte(strconv.Itoa(len(part))))
		mac.Write([]byte{':'})
		mac.Write([]byte(part))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))[:proofLen]
}

// Proven reports whether c, held by instance, carries a marker that certbackup wrote:
// a proof bound to c's ID, or an import's proof bound to the certificate c holds.
func (o *Owner) Proven(instance string, c engine.Certificate) bool {
	if c.Marker == nil || len(c.Marker.Proof) != proofLen {
		return false
	}
	got := []byte(c.Marker.Proof)
	if hmac.Equal(got, []byte(o.Proof(instance, *c.Marker, c.ID))) ||
		hmac.Equal(got, []byte(o.ImportProof(instance, *c.Marker, c))) {
		return true
	}
	for _, p := range o.previous {
		if p.Proven(instance, c) {
			return true
		}
	}
	return false
}

func serialKey(s string) string { return engine.NormSerial(s) }

// Subject is a source certificate as the matching rule sees it.
type Subject struct {
	engine.Certificate
	// Origin is the original the certificate descends from: the root of its marker
	// when certbackup proves that marker in the source instance (the source is itself
	// a copy, after a failover), else the certificate itself.
	Origin string
	// UserDescription is what the copy's description carries: the source's own text,
	// with an unproven marker's text given back to it.
	UserDescription string
}

// Subject reads src, held by sourceInstance.
func (o *Owner) Subject(sourceInstance string, src engine.Certificate) Subject {
	s := Subject{Certificate: src, Origin: src.ID, UserDescription: src.Description}
	switch {
	case src.Marker == nil:
	case o.Proven(sourceInstance, src):
		s.Origin = src.Marker.Root()
	default:
		s.UserDescription += src.Marker.Raw
	}
	return s
}

// Holder is the part of an engine.Target that labels depend on.
type Holder interface {
	Instance() string
	Fit(engine.Labels) engine.Labels
}

// WantFor is the labels the certificate f found for s must carry: what Want says for
// a copy; for the original itself (failback), the labels it has: certbackup brings its
// material up to date and never renames or marks the user's own certificate.
func (o *Owner) WantFor(t Holder, s Subject, f Found) engine.Labels {
	switch {
	case f.Original:
		return engine.LabelsOf(*f.Copy)
	case f.Adopt || f.Copy.Marker != nil && f.Copy.Marker.Adopted && o.Proven(t.Instance(), *f.Copy):
		// Adopted: the marker becomes proven (and says so); the name and description
		// stay the owner's.
		l := engine.LabelsOf(*f.Copy)
		l.Marker = engine.Marker{Source: s.ID, Adopted: true}
		if s.Origin != s.ID {
			l.Marker.Origin = s.Origin
		}
		l.Marker.Proof = o.Proof(t.Instance(), l.Marker, f.Copy.ID)
		return l
	default:
		var l engine.Labels
		if m := f.Copy.Marker; f.current && m.Source == s.ID && m.Origin == originOf(s) && !m.Adopted {
			// The copy carries the current key's proof for this very marker: the same
			// labels without computing the proof again.
			l = t.Fit(engine.Labels{Name: s.Name, Description: s.UserDescription, Marker: engine.Marker{Source: m.Source, Origin: m.Origin, Proof: m.Proof}})
		} else {
			l = o.Want(t, s, false, f.Copy.ID)
		}
		if engine.NamesAreUnique(t) && !strings.EqualFold(l.Name, f.Copy.Name) && f.Taken(l.Name) {
			l.Name = f.Copy.Name // the name is held by another certificate: keep the copy's own
		}
		return l
	}
}

// originOf is the Origin field a copy of s carries ("" when it is s itself).
func originOf(s Subject) string {
	if s.Origin != s.ID {
		return s.Origin
	}
	return ""
}

// Want is the labels copy id (empty: a copy about to be imported) of s in t must have:
// the source's name and description and a marker proven for t and for the copy. The
// original of a chain of copies (found in a backup on failback) carries no marker: it
// is the user's certificate.
func (o *Owner) Want(t Holder, s Subject, original bool, id string) engine.Labels {
	l := engine.Labels{Name: s.Name, Description: s.UserDescription}
	if !original {
		l.Marker = engine.Marker{Source: s.ID}
		if s.Origin != s.ID {
			l.Marker.Origin = s.Origin
		}
		if id == "" {
			l.Marker.Proof = o.ImportProof(t.Instance(), l.Marker, s.Certificate)
		} else {
			l.Marker.Proof = o.Proof(t.Instance(), l.Marker, id)
		}
	}
	return t.Fit(l)
}
