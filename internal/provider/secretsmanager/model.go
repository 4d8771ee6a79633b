package secretsmanager

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
)

// The certificate secret types; copies are always ImportedCert.
const (
	ImportedCert = "imported_cert"
	PublicCert   = "public_cert"
	PrivateCert  = "private_cert"
)

// certificateTypes are the secret types List asks for and Download can copy.
var certificateTypes = []string{ImportedCert, PublicCert, PrivateCert}

// The states of a secret (NIST SP 800-57, as the API numbers them).
const (
	statePreActivation = 0
	stateActive        = 1
	stateSuspended     = 2
	stateDeactivated   = 3
	stateDestroyed     = 5
)

// Label is the label every copy carries, so that an operator (or match_all_labels) can
// find certbackup's copies. It is a convenience, not the ownership rule: that is the
// proven marker in custom_metadata.
const Label = "certbackup"

// The custom_metadata keys of certbackup's marker on a copy (engine.Marker). They hold
// CRNs and a MAC, nothing secret.
const (
	MetadataSource = "certbackup_source"
	MetadataOrigin = "certbackup_origin"
	MetadataProof  = "certbackup_proof"
	// MetadataAdopted is "yes" on a certificate certbackup adopted (engine.Marker.Adopted).
	MetadataAdopted = "certbackup_adopted"
)

var markerKeys = []string{MetadataSource, MetadataOrigin, MetadataProof, MetadataAdopted}

// secretView is a secret as certbackup reads it, whatever its type: the SDK decodes
// each type into its own struct (by secret_type), and every one of them is re-encoded
// into this one by its JSON field names, which are the API's. One reader for every
// type, and unknown types still show their id, name, type and state.
type secretView struct {
	ID               string         `json:"id"`
	CRN              string         `json:"crn"`
	Name             string         `json:"name"`
	Description      string         `json:"description"`
	SecretType       string         `json:"secret_type"`
	SecretGroupID    string         `json:"secret_group_id"`
	State            *int64         `json:"state"`
	StateDescription string         `json:"state_description"`
	Labels           []string       `json:"labels"`
	CustomMetadata   map[string]any `json:"custom_metadata"`
	VersionsTotal    int64          `json:"versions_total"`
	Downloaded       bool           `json:"downloaded"`

	CommonName   string   `json:"common_name"`
	AltNames     []string `json:"alt_names"`
	Issuer       string   `json:"issuer"`
	SerialNumber string   `json:"serial_number"`
	Validity     *struct {
		NotBefore time.Time `json:"not_before"`
		NotAfter  time.Time `json:"not_after"`
	} `json:"validity"`

	// Payload (GET /secrets/{id} only). A version answer names its secret differently.
	Certificate  string   `json:"certificate"`
	Intermediate string   `json:"intermediate"`
	PrivateKey   string   `json:"private_key"`
	IssuingCA    string   `json:"issuing_ca"`
	CAChain      []string `json:"ca_chain"`
	SecretID     string   `json:"secret_id"`
	SecretName   string   `json:"secret_name"`
}

// String never prints the payload.
func (v secretView) String() string {
	return fmt.Sprintf("secretView{id=%s type=%s name=%s}", v.ID, v.SecretType, v.Name)
}

// GoString keeps %#v from printing the payload too.
func (v secretView) GoString() string { return v.String() }

// viewOf reads an SDK model (SecretIntf, SecretMetadataIntf, SecretVersionIntf).
func viewOf(model any) (secretView, error) {
	var v secretView
	b, err := json.Marshal(model)
	if err != nil {
		return v, errors.New("re-encode the answer")
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, errors.New("decode the answer")
	}
	return v, nil
}

func isCertificateType(t string) bool { return slices.Contains(certificateTypes, t) }

// toEngine translates a secret's metadata into the engine's: the secret's CRN is its
// ID, the domains are the common name then the other names, and the state says
// whether its material can be copied.
func toEngine(v secretView, id string, now time.Time) engine.Certificate {
	c := engine.Certificate{
		ID: id, Name: v.Name, Description: v.Description,
		Domains: domainsOf(v), Issuer: v.Issuer, SerialNumber: v.SerialNumber,
		Marker:  markerOf(v.CustomMetadata),
		Managed: v.SecretType != "imported_cert",
	}
	if v.Validity != nil {
		c.NotBefore, c.NotAfter = v.Validity.NotBefore.UTC(), v.Validity.NotAfter.UTC()
	}
	c.State, c.StateReason = stateOf(v, c.NotAfter, now)
	return c
}

func domainsOf(v secretView) []string {
	var out []string
	for _, d := range append([]string{v.CommonName}, v.AltNames...) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// stateOf maps the secret's state: Active (1) can be copied unless the certificate has
// expired; Pre-activation (0) has no certificate yet; Suspended (2), Deactivated (3),
// Destroyed (5) and secrets that are not certificates are Inactive.
func stateOf(v secretView, notAfter, now time.Time) (engine.State, string) {
	if !isCertificateType(v.SecretType) {
		return engine.Inactive, fmt.Sprintf("secret type %s is not a certificate", quote(v.SecretType))
	}
	if v.State == nil {
		return engine.Inactive, "the service reported no state"
	}
	switch *v.State {
	case stateActive:
		if !notAfter.IsZero() && !now.Before(notAfter) {
			return engine.Expired, "the certificate expired at " + notAfter.Format(time.RFC3339)
		}
		return engine.Active, ""
	case statePreActivation:
		return engine.Pending, "state " + stateName(v)
	default:
		return engine.Inactive, "state " + stateName(v)
	}
}

// stateName is the state as the service describes it (pre_activation, suspended,
// deactivated, destroyed), else by its number.
func stateName(v secretView) string {
	if d := strings.TrimSpace(v.StateDescription); d != "" {
		return sanitize(d)
	}
	switch *v.State {
	case statePreActivation:
		return "pre_activation"
	case stateActive:
		return "active"
	case stateSuspended:
		return "suspended"
	case stateDeactivated:
		return "deactivated"
	case stateDestroyed:
		return "destroyed"
	}
	return fmt.Sprintf("%d", *v.State)
}

func quote(s string) string { return `"` + sanitize(s) + `"` }

// markerOf reads certbackup's marker from custom_metadata; nil without a source. A key
// whose value is not a non-empty string counts as absent (a merge patch that removed
// it may leave a null behind).
func markerOf(cm map[string]any) *engine.Marker {
	str := func(k string) string {
		s, _ := cm[k].(string)
		return s
	}
	m := engine.Marker{Source: str(MetadataSource), Origin: str(MetadataOrigin), Proof: str(MetadataProof), Adopted: str(MetadataAdopted) == "yes"}
	if m.Source == "" {
		return nil
	}
	return &m
}

// markerMetadata is the custom_metadata of a marker: its non-empty fields.
func markerMetadata(m engine.Marker) map[string]any {
	out := map[string]any{}
	adopted := ""
	if m.Adopted {
		adopted = "yes"
	}
	for k, v := range map[string]string{MetadataSource: m.Source, MetadataOrigin: m.Origin, MetadataProof: m.Proof, MetadataAdopted: adopted} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// materialOf assembles what a copy needs from a secret's payload: the leaf, its key
// and its chain. One rule serves every type: the first certificate of the certificate
// field is the leaf; the chain is the rest of that field (a bundled public_cert holds
// leaf + chain there), then intermediate (imported_cert, public_cert), then issuing_ca
// and ca_chain (private_cert), each certificate once, in that order. A bundled
// public_cert repeats its chain in intermediate, and a private_cert's ca_chain
// normally starts with its issuing CA: without the deduplication the copy would chain
// them twice.
//
// Certificates are re-encoded as standard PEM. When a field is not PEM certificates
// the fields are passed on as they are, so that the engine's checks (pemutil) report
// the source as invalid in their own words.
func materialOf(v secretView) engine.Material {
	var chainFields []string
	if v.Intermediate != "" {
		chainFields = append(chainFields, v.Intermediate)
	}
	if v.IssuingCA != "" {
		chainFields = append(chainFields, v.IssuingCA)
	}
	chainFields = append(chainFields, v.CAChain...)

	leafBlocks, ok := certificateBlocks(v.Certificate)
	var chain [][]byte
	if ok && len(leafBlocks) > 0 {
		chain = append(chain, leafBlocks[1:]...)
		for _, f := range chainFields {
			blocks, fok := certificateBlocks(f)
			if !fok {
				ok = false
				break
			}
			chain = append(chain, blocks...)
		}
	}
	if !ok || len(leafBlocks) == 0 {
		return engine.Material{Certificate: v.Certificate, PrivateKey: v.PrivateKey, Intermediate: strings.Join(chainFields, "\n")}
	}
	var inter strings.Builder
	var seen [][]byte
	for _, der := range chain {
		if bytes.Equal(der, leafBlocks[0]) || slices.ContainsFunc(seen, func(s []byte) bool { return bytes.Equal(s, der) }) {
			continue
		}
		seen = append(seen, der)
		inter.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return engine.Material{
		Certificate:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafBlocks[0]})),
		PrivateKey:   v.PrivateKey,
		Intermediate: inter.String(),
	}
}

// certificateBlocks splits PEM text into the DER of its CERTIFICATE blocks; ok is
// false when it holds anything else (another block type, or text that is not PEM).
func certificateBlocks(s string) (ders [][]byte, ok bool) {
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, false
		}
		ders = append(ders, b.Bytes)
	}
	return ders, len(bytes.TrimSpace(rest)) == 0
}
