package cms

import (
	"context"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
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
func (i Instance) Reimport(ctx context.Context, id string, m engine.Material) (*engine.Certificate, error) {
	c, err := i.Client.Reimport(ctx, id, fromMaterial(m))
	if err != nil {
		return nil, err
	}
	ec := ToEngine(*c)
	return &ec, nil
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
	}
	if src, ok := SourceOf(c.Description); ok {
		ec.Marker = &engine.Marker{Source: src}
		ec.Description = StripMarker(c.Description)
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

// MaxDescription is Certificate Manager's limit on a description.
const MaxDescription = 1024

const (
	markerPrefix = "[certbackup source="
	markerSuffix = "]"
	separator    = "\n"
)

// Marker is the marker text of source certificate sourceCRN.
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

// StripMarker removes a trailing marker (of any source) and its separator.
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
	return describe(engine.Labels{Description: StripMarker(sourceDescription), Marker: engine.Marker{Source: sourceCRN}})
}

func describe(l engine.Labels) string {
	desc := fitDescription(l.Description, l.Marker)
	marker := Marker(l.Marker.Source)
	if desc == "" {
		return marker
	}
	return desc + separator + marker
}

func fitDescription(desc string, m engine.Marker) string {
	room := MaxDescription - len(Marker(m.Source)) - len(separator)
	if len(desc) > room {
		desc = cutUTF8(desc, room)
	}
	return desc
}

func cutUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// IsCopyDescription reports whether a description carries the marker of sourceCRN.
func IsCopyDescription(description, sourceCRN string) bool {
	src, ok := SourceOf(description)
	return ok && src == sourceCRN
}
