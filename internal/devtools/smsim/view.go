package smsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Secret is a copy of a stored secret, for tests to assert on. Its String and GoString
// methods leave the payloads out, so that printing one never shows a private key.
type Secret struct {
	ID, CRN, Name, Description string
	Labels                     []string
	CustomMetadata             map[string]any
	GroupID                    string
	Type                       string
	State                      State
	CreatedBy                  string
	CreatedAt, UpdatedAt       time.Time
	// Downloaded is the current version's downloaded flag.
	Downloaded    bool
	LocksTotal    int
	VersionsTotal int
	// Versions are the kept versions, oldest first; the last is the current one.
	Versions []SecretVersion

	BundleCerts                               bool
	CA, DNS                                   string
	CertificateTemplate, CertificateAuthority string
}

// SecretVersion is a copy of one version. Payload fields are empty once the payload is
// gone.
type SecretVersion struct {
	ID                    string
	CreatedAt             time.Time
	Downloaded            bool
	PayloadAvailable      bool
	Certificate           string
	Intermediate          string
	PrivateKey            string
	IssuingCA             string
	CAChain               []string
	VersionCustomMetadata map[string]any
	SerialNumber          string
	CommonName            string
	NotBefore, NotAfter   time.Time
	Locks                 []string
}

// Current is the current version, or nil for a secret without versions.
func (s Secret) Current() *SecretVersion {
	if len(s.Versions) == 0 {
		return nil
	}
	return &s.Versions[len(s.Versions)-1]
}

func (s Secret) String() string {
	return fmt.Sprintf("smsim.Secret{id=%s name=%s type=%s state=%s versions=%d locks=%d}",
		s.ID, s.Name, s.Type, s.State.Description(), len(s.Versions), s.LocksTotal)
}

// GoString keeps %#v from printing payloads too.
func (s Secret) GoString() string { return s.String() }

func (v SecretVersion) String() string {
	return fmt.Sprintf("smsim.SecretVersion{id=%s serial=%s payload=%t locks=%s}",
		v.ID, v.SerialNumber, v.PayloadAvailable, strings.Join(v.Locks, ","))
}

// GoString keeps %#v from printing the payload too.
func (v SecretVersion) GoString() string { return v.String() }

// Get returns a copy of one secret. Reading it does not set downloaded.
func (s *Simulator) Get(instanceCRN, id string) (Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return Secret{}, fmt.Errorf("get: %w", err)
	}
	return s.instances[instanceCRN].view(sec), nil
}

// List returns copies of every secret of the instance, by name then id.
func (s *Simulator) List(instanceCRN string) ([]Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return nil, fmt.Errorf("list: instance %s: %w", instanceCRN, ErrNotFound)
	}
	out := make([]Secret, 0, len(inst.secrets))
	for _, sec := range inst.secrets {
		out = append(out, inst.view(sec))
	}
	slices.SortFunc(out, func(a, b Secret) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// FindByName returns the id of the secret of type typ named name, or ErrNotFound.
func (s *Simulator) FindByName(instanceCRN, typ, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return "", fmt.Errorf("find: instance %s: %w", instanceCRN, ErrNotFound)
	}
	for _, sec := range inst.secrets {
		if sec.typ == typ && sec.name == name {
			return sec.id, nil
		}
	}
	return "", fmt.Errorf("find %s %q: %w", typ, name, ErrNotFound)
}

func (inst *instance) view(sec *secret) Secret {
	out := Secret{
		ID: sec.id, CRN: inst.crn.SecretCRN(sec.id), Name: sec.name, Description: sec.description,
		Labels: slices.Clone(sec.labels), CustomMetadata: decodeObject(sec.customMetadata),
		GroupID: sec.groupID, Type: sec.typ, State: sec.state, CreatedBy: sec.createdBy,
		CreatedAt: sec.createdAt, UpdatedAt: sec.updatedAt,
		LocksTotal: sec.locksTotal(), VersionsTotal: len(sec.versions),
		BundleCerts: sec.bundleCerts, CA: sec.ca, DNS: sec.dns,
		CertificateTemplate: sec.certificateTemplate, CertificateAuthority: sec.certificateAuthority,
	}
	if cur := sec.current(); cur != nil {
		out.Downloaded = cur.downloaded
	}
	for _, v := range sec.versions {
		sv := SecretVersion{
			ID: v.id, CreatedAt: v.createdAt, Downloaded: v.downloaded, PayloadAvailable: v.payload != nil,
			VersionCustomMetadata: decodeObject(v.versionCustomMetadata),
			SerialNumber:          v.info.serial, CommonName: v.info.commonName,
			NotBefore: v.info.notBefore, NotAfter: v.info.notAfter, Locks: slices.Clone(v.locks),
		}
		if p := v.payload; p != nil {
			sv.Certificate, sv.Intermediate, sv.PrivateKey = p.certificate, p.intermediate, p.privateKey
			sv.IssuingCA, sv.CAChain = p.issuingCA, slices.Clone(p.caChain)
		}
		out.Versions = append(out.Versions, sv)
	}
	return out
}

func decodeObject(raw json.RawMessage) map[string]any {
	if raw == nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m) // stored objects were validated on the way in
	return m
}
