package cms

import (
	"context"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
)

// Instance adapts one Certificate Manager instance to engine.Source and
// engine.Target. Certificate Manager has no labels, so certbackup's marker is the end
// of a copy's description (see CopyDescription).
type Instance struct {
	Client *Client
	CRN    string
}

var (
	_ engine.Source = Instance{}
	_ engine.Target = Instance{}
)

// Instance is the instance's CRN.
func (i Instance) Instance() string { return i.CRN }

// List lists every certificate of the instance (metadata only).
func (i Instance) List(ctx context.Context) ([]engine.Certificate, error) {
	certs, err := i.Client.ListCertificates(ctx, i.CRN)
	if err != nil {
		return nil, err
	}
	out := make([]engine.Certificate, len(certs))
	for k, c := range certs {
		out[k] = ToEngine(c)
	}
	return out, nil
}

// Metadata reads one certificate's metadata.
func (i Instance) Metadata(ctx context.Context, id string) (*engine.Certificate, error) {
	c, err := i.Client.Metadata(ctx, id)
	if err != nil {
		return nil, err
	}
	ec := ToEngine(*c)
	return &ec, nil
}

// Download reads one certificate with its material.
func (i Instance) Download(ctx context.Context, id string) (*engine.Downloaded, error) {
	d, err := i.Client.Download(ctx, id)
	if err != nil {
		return nil, err
	}
	return &engine.Downloaded{Certificate: ToEngine(d.Certificate), Material: toMaterial(d.Data)}, nil
}

// Fit cuts the description so that it and the marker fit the service's limit.
func (i Instance) Fit(l engine.Labels) engine.Labels {
	l.Description = fitDescription(l.Description, l.Marker)
	return l
}

// Import imports a copy.
func (i Instance) Import(ctx context.Context, l engine.Labels, m engine.Material) (*engine.Certificate, error) {
	c, err := i.Client.Import(ctx, i.CRN, ImportRequest{Name: l.Name, Description: describe(l), Data: fromMaterial(m)})
	if err != nil {
		return nil, err
	}
	ec := ToEngine(*c)
	return &ec, nil
}

// Reimport replaces a copy's material; Certificate Manager keeps the previous version.
func (i Instance) Reimport(ctx context.Context, id string, m engine.Material) error {
	_, err := i.Client.Reimport(ctx, id, fromMaterial(m))
	return err
}

// UpdateLabels sets the copy's name and description (with the marker).
func (i Instance) UpdateLabels(ctx context.Context, id string, l engine.Labels) error {
	return i.Client.UpdateMetadata(ctx, id, l.Name, describe(l))
}

// Delete deletes a certificate.
func (i Instance) Delete(ctx context.Context, id string) error { return i.Client.Delete(ctx, id) }

// ToEngine translates the service's metadata into the engine's: the marker is taken
// out of the description, dates become times, and the status becomes a state.
func ToEngine(c Certificate) engine.Certificate {
	ec := engine.Certificate{
		ID: c.ID, Name: c.Name, Description: c.Description,
		Domains: c.Domains, Issuer: c.Issuer, SerialNumber: c.SerialNumber,
		NotBefore: fromMillis(c.BeginsOn), NotAfter: fromMillis(c.ExpiresOn),
		Managed: !c.Imported,
	}
	if m, user, ok := parseMarker(c.Description); ok {
		ec.Marker, ec.Description = &m, user
	}
	switch {
	case c.SerialNumber == "" && c.ExpiresOn == 0:
		// An ordered certificate still pending has no material to copy.
		ec.State, ec.StateReason = engine.Pending, "status "+quote(c.Status)
	case c.Status == "expired":
		ec.State, ec.StateReason = engine.Expired, "status "+quote(c.Status)
	}
	return ec
}

func quote(s string) string { return `"` + s + `"` }

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func toMaterial(d Data) engine.Material {
	return engine.Material{Certificate: d.Content, PrivateKey: d.PrivKey, Intermediate: d.Intermediate}
}

func fromMaterial(m engine.Material) Data {
	return Data{Content: m.Certificate, PrivKey: m.PrivateKey, Intermediate: m.Intermediate}
}

// MaxDescription is Certificate Manager's limit on a description, counted as the
// service counts (UTF-16 code units, JavaScript's String.length: a character outside
// the Basic Multilingual Plane counts two; docs/services/certificate-manager.md).
const MaxDescription = 1024

// Certificate Manager has no labels: the marker is the end of the description,
//
//	<user description>\n[certbackup source=<CRN> origin=<CRN> proof=<MAC>]
//
// origin only when it differs from source; copies made by releases before proofs
// carry [certbackup source=<CRN>] alone.
const (
	markerPrefix = "[certbackup source="
	markerSuffix = "]"
	separator    = "\n"
)

// markerText is the marker of m.
func markerText(m engine.Marker) string {
	var b strings.Builder
	b.WriteString(markerPrefix + m.Source)
	if m.Origin != "" {
		b.WriteString(" origin=" + m.Origin)
	}
	if m.Adopted {
		b.WriteString(" adopted=yes")
	}
	if m.Proof != "" {
		b.WriteString(" proof=" + m.Proof)
	}
	b.WriteString(markerSuffix)
	return b.String()
}

// parseMarker reads the marker at the end of a description; user is what precedes
// it (without the separator).
func parseMarker(description string) (m engine.Marker, user string, ok bool) {
	if !strings.HasSuffix(description, markerSuffix) {
		return m, description, false
	}
	i := strings.LastIndex(description, markerPrefix)
	if i < 0 {
		return m, description, false
	}
	fields := strings.Split(description[i+len(markerPrefix):len(description)-len(markerSuffix)], " ")
	m.Source = fields[0]
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch {
		case k == "origin" && m.Origin == "" && v != "":
			m.Origin = v
		case k == "proof" && m.Proof == "" && v != "":
			m.Proof = v
		case k == "adopted" && !m.Adopted && v == "yes":
			m.Adopted = true
		default:
			return engine.Marker{}, description, false
		}
	}
	if m.Source == "" || strings.ContainsAny(description[i+len(markerPrefix):len(description)-len(markerSuffix)], "[]\n") {
		return engine.Marker{}, description, false
	}
	user = strings.TrimSuffix(description[:i], separator)
	m.Raw = description[len(user):]
	return m, user, true
}

// SourceOf returns the source certificate CRN named by a description's marker,
// proven or not.
func SourceOf(description string) (string, bool) {
	m, _, ok := parseMarker(description)
	return m.Source, ok
}

// StripMarker removes a trailing marker and its separator.
func StripMarker(description string) string {
	_, user, _ := parseMarker(description)
	return user
}

// IsCopyDescription reports whether a description carries a marker naming sourceCRN.
func IsCopyDescription(description, sourceCRN string) bool {
	src, ok := SourceOf(description)
	return ok && src == sourceCRN
}

// LegacyDescription is the description a release before ownership proofs wrote on a
// copy of sourceCRN (for tests of the upgrade).
func LegacyDescription(userDescription, sourceCRN string) string {
	return describe(engine.Labels{Description: userDescription, Marker: engine.Marker{Source: sourceCRN}})
}

func describe(l engine.Labels) string {
	desc := fitDescription(l.Description, l.Marker)
	if l.Marker == (engine.Marker{}) {
		return desc
	}
	marker := markerText(l.Marker)
	if desc == "" {
		return marker
	}
	return desc + separator + marker
}

// fitDescription cuts desc, on a character boundary and counting as the service
// counts, so that it and the marker fit the limit.
func fitDescription(desc string, m engine.Marker) string {
	room := MaxDescription
	if m != (engine.Marker{}) {
		room -= serviceLen(markerText(m)) + serviceLen(separator)
	}
	if serviceLen(desc) <= room {
		return desc
	}
	n := 0
	for i, r := range desc {
		if n += utf16.RuneLen(r); n > room {
			return desc[:i]
		}
	}
	return desc
}

// serviceLen is s's length as the service counts it (UTF-16 code units).
func serviceLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// CopyDescription is the description certbackup writes on copy copyID, in instance
// backup, of the source certificate whose listing metadata is src; with copyID empty,
// the one an import writes.
func CopyDescription(o *match.Owner, backup, copyID string, src Certificate) string {
	source := ""
	if c, err := crn.Parse(src.ID); err == nil {
		source = c.InstanceCRN().String()
	}
	s := o.Subject(source, ToEngine(src))
	return describe(o.Want(Instance{CRN: backup}, s, false, copyID))
}
