// Package engine holds what every part of certbackup shares: the types of a
// certificate and of its material, the ownership marker of a copy, the error classes,
// and the two contracts a provider implements (Source and Target). The replication
// engine (engine/replicate), the matching rule (engine/match) and the reconcile
// (engine/reconcile) are written against these types only.
//
// It must never import a provider, a trigger or a runtime, nor an API client library:
// a provider adapts to the engine, never the other way round.
package engine

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Certificate is the metadata of one certificate in one instance, as a listing
// returns it. It holds no key material.
type Certificate struct {
	// ID identifies the certificate in every call of its provider: the certificate
	// CRN in Certificate Manager, the secret CRN in Secrets Manager.
	ID   string
	Name string
	// Description is the user's text. A provider that stores certbackup's marker in
	// the description removes it here and reports it in Marker.
	Description string
	// Marker is certbackup's ownership marker as the instance holds it, nil when the
	// certificate carries none. It is a claim, not a proof: engine/match decides
	// whether it may be trusted.
	Marker *Marker

	Domains      []string // the common name first, then the other DNS names
	Issuer       string
	SerialNumber string // hex, as the provider shows it; compare with SameSerial
	NotBefore    time.Time
	NotAfter     time.Time

	// Managed: the service issues and renews this certificate itself (an order, a
	// public or private certificate of Secrets Manager): its material cannot be
	// replaced by an import.
	Managed bool

	State State
	// StateReason says why a certificate that is not Active cannot be copied, in the
	// provider's words (for the report).
	StateReason string
}

// State is whether a certificate's material can be read and copied.
type State int

const (
	// Active: issued, not expired, readable.
	Active State = iota
	// Pending: ordered, no certificate issued yet (nothing to copy).
	Pending
	// Expired: the provider refuses to hand out (or take in) its material.
	Expired
	// Inactive: suspended, deactivated, destroyed, or not a certificate at all.
	Inactive
)

func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Pending:
		return "pending"
	case Expired:
		return "expired"
	default:
		return "inactive"
	}
}

// Material is a certificate's PEM material. It holds a private key, so every way of
// printing it is redacted; only encoding/json (to send it to an API) sees the fields.
type Material struct {
	Certificate  string `json:"certificate"`
	PrivateKey   string `json:"private_key,omitempty"`
	Intermediate string `json:"intermediate,omitempty"`
}

const redactedMaterial = "engine.Material{redacted}"

// String implements fmt.Stringer without revealing the material.
func (Material) String() string { return redactedMaterial }

// GoString implements fmt.GoStringer (%#v) without revealing the material.
func (Material) GoString() string { return redactedMaterial }

// Format makes every fmt verb print the redacted form, %+v included.
func (Material) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedMaterial)) }

// LogValue keeps the material out of log/slog output.
func (Material) LogValue() slog.Value { return slog.StringValue(redactedMaterial) }

// Downloaded is a certificate with its material, as a download returns it.
type Downloaded struct {
	Certificate
	Material Material
}

// Marker is certbackup's claim on a copy: which source certificate it is a copy of,
// which original it descends from, and the proof that certbackup wrote it (see
// engine/match: only a proven marker is trusted).
type Marker struct {
	// Source is the ID of the certificate this one was copied from.
	Source string
	// Origin is the ID of the original at the root of the chain of copies (a copy of
	// a copy after a failover); empty when it is Source.
	Origin string
	// Adopted: certbackup did not create this certificate but took it as the copy
	// because it held the source's own material (a copy of an older release, or a
	// copy made under another key). An adopted certificate's material is kept up to
	// date; its name and description stay its owner's, and it is never deleted.
	Adopted bool
	// Proof binds the marker to the instance that holds the certificate and to the
	// certificate it holds; empty on markers that carry none (older releases).
	Proof string
	// Raw is the text a provider took out of the description to read the marker
	// (empty when the provider keeps markers elsewhere). When the marker proves
	// nothing, the text is the user's and goes back into the description.
	Raw string
}

// Root is the original the marker descends from.
func (m Marker) Root() string {
	if m.Origin != "" {
		return m.Origin
	}
	return m.Source
}

// Labels are what certbackup writes on a copy besides its material.
type Labels struct {
	Name        string
	Description string
	Marker      Marker
}

// LabelsOf reports c's labels (a missing marker is the zero Marker). Raw is a
// provider's reading aid, not a label, and is left out.
func LabelsOf(c Certificate) Labels {
	l := Labels{Name: c.Name, Description: c.Description}
	if c.Marker != nil {
		l.Marker = *c.Marker
		l.Marker.Raw = ""
	}
	return l
}

// SameSerial compares serial numbers whatever their separators, case and leading zeros.
func SameSerial(a, b string) bool { return normSerial(a) == normSerial(b) }

// serialSeparators are dropped from serial numbers before they are compared (built
// once: a reconcile compares thousands).
var serialSeparators = strings.NewReplacer(":", "", "-", "", " ", "")

// NormSerial is a serial number without separators, in lower case and without
// leading zeros, for comparing and for binding proofs.
func NormSerial(s string) string { return normSerial(s) }

func normSerial(s string) string {
	s = strings.ToLower(serialSeparators.Replace(s))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return s
}

// SameCertificate decides from metadata alone whether two certificates are the same
// leaf certificate: same serial number, issuer, validity and domains. An X.509 issuer
// never reuses a serial number, so equal metadata means the same certificate; the
// private key is bound to it. The intermediate is not in the metadata: the
// notification path compares full digests, the reconcile trusts this.
func SameCertificate(a, b Certificate) bool {
	return SameSerial(a.SerialNumber, b.SerialNumber) &&
		a.Issuer == b.Issuer &&
		a.NotBefore.Equal(b.NotBefore) &&
		a.NotAfter.Equal(b.NotAfter) &&
		slices.Equal(a.Domains, b.Domains)
}

// Newer reports whether a was issued after b (both known): a backup that holds a newer
// certificate than the source (renewed in another region during a failover) is never
// given the older one.
func Newer(a, b Certificate) bool {
	return !a.NotBefore.IsZero() && !b.NotBefore.IsZero() && a.NotBefore.After(b.NotBefore)
}

// CertificateDiff names what differs between two certificates' metadata, for a report.
func CertificateDiff(a, b Certificate) string {
	var d []string
	if !SameSerial(a.SerialNumber, b.SerialNumber) {
		d = append(d, "serial number")
	}
	if a.Issuer != b.Issuer {
		d = append(d, "issuer")
	}
	if !a.NotBefore.Equal(b.NotBefore) || !a.NotAfter.Equal(b.NotAfter) {
		d = append(d, "validity")
	}
	if !slices.Equal(a.Domains, b.Domains) {
		d = append(d, "domains")
	}
	return strings.Join(d, ", ") + " differ"
}
