package smsim

import (
	"encoding/json"
	"time"
)

// timeFormat is RFC 3339 in UTC with milliseconds, as the real service prints it
// ("2024-05-22T15:46:26.000Z").
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

type validityJSON struct {
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
}

type rotationJSON struct {
	AutoRotate bool  `json:"auto_rotate"`
	RotateKeys *bool `json:"rotate_keys,omitempty"`
}

type issuanceJSON struct {
	AutoRotated      bool   `json:"auto_rotated"`
	OrderedOn        string `json:"ordered_on,omitempty"`
	State            int    `json:"state"`
	StateDescription string `json:"state_description"`
}

// secretJSON is a secret's metadata, with its payload when asked for. Empty optional
// fields are left out, as the real service leaves out labels and custom_metadata.
type secretJSON struct {
	CreatedBy        string          `json:"created_by"`
	CreatedAt        string          `json:"created_at"`
	CRN              string          `json:"crn"`
	CustomMetadata   json.RawMessage `json:"custom_metadata,omitempty"`
	Description      string          `json:"description,omitempty"`
	Downloaded       bool            `json:"downloaded"`
	ID               string          `json:"id"`
	Labels           []string        `json:"labels,omitempty"`
	LocksTotal       int             `json:"locks_total"`
	Name             string          `json:"name"`
	SecretGroupID    string          `json:"secret_group_id"`
	SecretType       string          `json:"secret_type"`
	State            int             `json:"state"`
	StateDescription string          `json:"state_description"`
	UpdatedAt        string          `json:"updated_at"`
	VersionsTotal    int             `json:"versions_total"`

	SigningAlgorithm string        `json:"signing_algorithm,omitempty"`
	AltNames         []string      `json:"alt_names,omitempty"`
	CommonName       string        `json:"common_name,omitempty"`
	ExpirationDate   string        `json:"expiration_date,omitempty"`
	Issuer           string        `json:"issuer,omitempty"`
	KeyAlgorithm     string        `json:"key_algorithm,omitempty"`
	SerialNumber     string        `json:"serial_number,omitempty"`
	Validity         *validityJSON `json:"validity,omitempty"`

	// imported_cert
	IntermediateIncluded *bool `json:"intermediate_included,omitempty"`
	PrivateKeyIncluded   *bool `json:"private_key_included,omitempty"`
	// public_cert
	IssuanceInfo *issuanceJSON `json:"issuance_info,omitempty"`
	Rotation     *rotationJSON `json:"rotation,omitempty"`
	BundleCerts  *bool         `json:"bundle_certs,omitempty"`
	CA           string        `json:"ca,omitempty"`
	DNS          string        `json:"dns,omitempty"`
	// private_cert
	CertificateTemplate  string `json:"certificate_template,omitempty"`
	CertificateAuthority string `json:"certificate_authority,omitempty"`

	// payload (GET with payload only)
	Certificate  string   `json:"certificate,omitempty"`
	Intermediate string   `json:"intermediate,omitempty"`
	PrivateKey   string   `json:"private_key,omitempty"`
	IssuingCA    string   `json:"issuing_ca,omitempty"`
	CAChain      []string `json:"ca_chain,omitempty"`
}

func boolPtr(b bool) *bool { return &b }

// renderSecret builds the JSON of s. With withPayload, the current version's data is
// included when the secret is Active and the version still has it.
func (inst *instance) renderSecret(s *secret, withPayload bool) secretJSON {
	out := secretJSON{
		CreatedBy:        s.createdBy,
		CreatedAt:        ts(s.createdAt),
		CRN:              inst.crn.SecretCRN(s.id),
		CustomMetadata:   s.customMetadata,
		Description:      s.description,
		ID:               s.id,
		Labels:           s.labels,
		LocksTotal:       s.locksTotal(),
		Name:             s.name,
		SecretGroupID:    s.groupID,
		SecretType:       s.typ,
		State:            int(s.state),
		StateDescription: s.state.Description(),
		UpdatedAt:        ts(s.updatedAt),
		VersionsTotal:    len(s.versions),
	}
	cur := s.current()
	if cur != nil {
		out.Downloaded = cur.downloaded
		info := cur.info
		out.SigningAlgorithm = info.signingAlgorithm
		out.AltNames = info.altNames
		out.CommonName = info.commonName
		out.ExpirationDate = ts(info.notAfter)
		out.Issuer = info.issuer
		out.KeyAlgorithm = info.keyAlgorithm
		out.SerialNumber = info.serial
		out.Validity = &validityJSON{NotBefore: ts(info.notBefore), NotAfter: ts(info.notAfter)}
	}
	switch s.typ {
	case ImportedCert:
		out.IntermediateIncluded = boolPtr(cur != nil && cur.hasIntermediate)
		out.PrivateKeyIncluded = boolPtr(cur != nil && cur.hasKey)
	case PublicCert:
		out.IssuanceInfo = &issuanceJSON{
			OrderedOn: ts(s.createdAt), State: int(s.state), StateDescription: s.state.Description(),
		}
		out.Rotation = &rotationJSON{RotateKeys: boolPtr(false)}
		out.BundleCerts = boolPtr(s.bundleCerts)
		out.CA, out.DNS = s.ca, s.dns
	case PrivateCert:
		out.CertificateTemplate = s.certificateTemplate
		out.CertificateAuthority = s.certificateAuthority
		out.Rotation = &rotationJSON{}
	}
	if withPayload && cur != nil && cur.payload != nil && s.payloadVisible() {
		setPayload(&out.Certificate, &out.Intermediate, &out.PrivateKey, &out.IssuingCA, &out.CAChain, cur.payload)
	}
	return out
}

func setPayload(cert, inter, key, ca *string, chain *[]string, p *payload) {
	*cert, *inter, *key, *ca = p.certificate, p.intermediate, p.privateKey, p.issuingCA
	*chain = p.caChain
}

// versionJSON is a version's metadata, with its payload when asked for.
type versionJSON struct {
	AutoRotated           bool            `json:"auto_rotated"`
	CreatedBy             string          `json:"created_by"`
	CreatedAt             string          `json:"created_at"`
	Downloaded            bool            `json:"downloaded"`
	ID                    string          `json:"id"`
	SecretName            string          `json:"secret_name"`
	SecretType            string          `json:"secret_type"`
	SecretGroupID         string          `json:"secret_group_id"`
	PayloadAvailable      bool            `json:"payload_available"`
	Alias                 string          `json:"alias,omitempty"`
	VersionCustomMetadata json.RawMessage `json:"version_custom_metadata,omitempty"`
	SecretID              string          `json:"secret_id"`
	ExpirationDate        string          `json:"expiration_date,omitempty"`
	SerialNumber          string          `json:"serial_number,omitempty"`
	Validity              *validityJSON   `json:"validity,omitempty"`

	Certificate  string   `json:"certificate,omitempty"`
	Intermediate string   `json:"intermediate,omitempty"`
	PrivateKey   string   `json:"private_key,omitempty"`
	IssuingCA    string   `json:"issuing_ca,omitempty"`
	CAChain      []string `json:"ca_chain,omitempty"`
}

func renderVersion(s *secret, v *version, withPayload bool) versionJSON {
	out := versionJSON{
		CreatedBy:             v.createdBy,
		CreatedAt:             ts(v.createdAt),
		Downloaded:            v.downloaded,
		ID:                    v.id,
		SecretName:            s.name,
		SecretType:            s.typ,
		SecretGroupID:         s.groupID,
		PayloadAvailable:      v.payload != nil,
		Alias:                 s.alias(v),
		VersionCustomMetadata: v.versionCustomMetadata,
		SecretID:              s.id,
		ExpirationDate:        ts(v.info.notAfter),
		SerialNumber:          v.info.serial,
		Validity:              &validityJSON{NotBefore: ts(v.info.notBefore), NotAfter: ts(v.info.notAfter)},
	}
	if withPayload && v.payload != nil && s.payloadVisible() {
		setPayload(&out.Certificate, &out.Intermediate, &out.PrivateKey, &out.IssuingCA, &out.CAChain, v.payload)
	}
	return out
}

type groupJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	CreatedAt   string `json:"created_at"`
	CreatedBy   string `json:"created_by"`
	UpdatedAt   string `json:"updated_at"`
}

func renderGroup(g *group) groupJSON {
	return groupJSON{
		ID: g.id, Name: g.name, Description: g.description,
		CreatedAt: ts(g.createdAt), CreatedBy: g.createdBy, UpdatedAt: ts(g.updatedAt),
	}
}
