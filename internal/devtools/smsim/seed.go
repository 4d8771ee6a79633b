package smsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// seedCreator is the created_by of what the Go API makes.
const seedCreator = "iam-ServiceId-smsim-seed"

// Seed is a certificate secret to put into an instance through the Go API: the only way
// to make a public_cert or a private_cert, which the real service orders or issues.
type Seed struct {
	// Type is ImportedCert (default), PublicCert or PrivateCert.
	Type        string
	Name        string
	Description string
	Labels      []string
	// GroupID is a secret group id of the instance, or "" / "default".
	GroupID               string
	CustomMetadata        map[string]any
	VersionCustomMetadata map[string]any

	// Certificate is one PEM certificate, or for a public_cert with Bundled the leaf
	// followed by its chain. A public_cert may be seeded without any certificate: it is
	// then in Pre-activation with no version, as an order that has not completed.
	Certificate string
	// Intermediate (imported_cert, public_cert): the chain, each certificate signing the
	// one before.
	Intermediate string
	// PrivateKey must match the certificate; required for public_cert and private_cert.
	PrivateKey string
	// IssuingCA and CAChain (private_cert only): the issuing CA, which must have signed
	// the certificate, and the CA chain (package doc: give it the issuing CA first).
	IssuingCA string
	CAChain   []string

	// Bundled (public_cert): bundle_certs is true; Certificate holds leaf + chain.
	Bundled bool
	// CA and DNS (public_cert): configuration names; defaults are made up.
	CA, DNS string
	// CertificateTemplate and CertificateAuthority (private_cert); defaults are made up.
	CertificateTemplate, CertificateAuthority string
}

// Version is the material of a new version for Rotate: an imported certificate's
// reimport, or a public or private certificate's renewal.
type Version struct {
	Certificate  string
	Intermediate string
	PrivateKey   string
	IssuingCA    string
	CAChain      []string
	// VersionCustomMetadata of the new version.
	VersionCustomMetadata map[string]any
}

// Seed stores a secret in the instance and returns its id. It runs the API's checks
// (name, labels, metadata, material, uniqueness) and is neither logged nor faulted.
func (s *Simulator) Seed(instanceCRN string, in Seed) (string, error) {
	if in.Type == "" {
		in.Type = ImportedCert
	}
	cm, e := metadataFromMap("custom_metadata", in.CustomMetadata)
	if e != nil {
		return "", fmt.Errorf("seed: %w", e)
	}
	vcm, e := metadataFromMap("version_custom_metadata", in.VersionCustomMetadata)
	if e != nil {
		return "", fmt.Errorf("seed: %w", e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return "", fmt.Errorf("seed into %s: instance %w", instanceCRN, ErrNotFound)
	}
	sec, e := s.createLocked(inst, in, cm, vcm, seedCreator)
	if e != nil {
		return "", fmt.Errorf("seed into %s: %w", instanceCRN, e)
	}
	return sec.id, nil
}

// createLocked validates in and stores a new secret; it is shared by the API and Seed.
func (s *Simulator) createLocked(inst *instance, in Seed, cm, vcm json.RawMessage, who string) (*secret, *apiError) {
	if !slices.Contains([]string{ImportedCert, PublicCert, PrivateCert}, in.Type) {
		return nil, badRequest("secret type %q is not a certificate type", in.Type)
	}
	if e := validateName(in.Name); e != nil {
		return nil, e
	}
	if in.Description != "" {
		if e := validateDescription(in.Description); e != nil {
			return nil, e
		}
	}
	if e := validateLabels(in.Labels); e != nil {
		return nil, e
	}
	if in.Type != PrivateCert && (in.IssuingCA != "" || len(in.CAChain) > 0) {
		return nil, badRequest("issuing_ca and ca_chain belong to private_cert only")
	}
	if in.Type == PrivateCert && in.Intermediate != "" {
		return nil, badRequest("a private_cert has issuing_ca and ca_chain, not intermediate")
	}
	if in.Type != PublicCert && in.Bundled {
		return nil, badRequest("only a public_cert can be bundled")
	}
	now := s.now()
	sec := &secret{
		id: randomUUID(), name: in.Name, description: in.Description,
		customMetadata: cm, typ: in.Type, state: Active,
		createdBy: who, createdAt: now, updatedAt: now,
	}
	if len(in.Labels) > 0 {
		sec.labels = slices.Clone(in.Labels)
	}
	switch in.Type {
	case PublicCert:
		sec.bundleCerts = in.Bundled
		sec.ca, sec.dns = defaultString(in.CA, "simulated-ca"), defaultString(in.DNS, "simulated-dns")
	case PrivateCert:
		sec.certificateTemplate = defaultString(in.CertificateTemplate, "simulated-template")
		sec.certificateAuthority = defaultString(in.CertificateAuthority, "simulated-intermediate-ca")
	}
	var v *version
	if in.Type == PublicCert && in.Certificate == "" && in.PrivateKey == "" && in.Intermediate == "" {
		sec.state = PreActivation
	} else {
		var e *apiError
		v, e = s.newVersionLocked(sec, Version{
			Certificate: in.Certificate, Intermediate: in.Intermediate, PrivateKey: in.PrivateKey,
			IssuingCA: in.IssuingCA, CAChain: in.CAChain,
		}, vcm, who)
		if e != nil {
			return nil, e
		}
	}
	gid, e := inst.resolveGroup(in.GroupID)
	if e != nil {
		return nil, e
	}
	sec.groupID = gid
	if inst.nameTakenLocked(in.Type, in.Name, "") {
		return nil, errorf(http.StatusConflict, codeConflict, "a secret of type %s with this name already exists in the instance", in.Type)
	}
	if v != nil {
		_ = sec.addVersion(v) // a new secret has no locks
	}
	inst.secrets[sec.id] = sec
	return sec, nil
}

// newVersionLocked checks the material of a version of sec and builds it.
func (s *Simulator) newVersionLocked(sec *secret, in Version, vcm json.RawMessage, who string) (*version, *apiError) {
	m := certMaterial{
		certificate: in.Certificate, intermediate: in.Intermediate, privateKey: in.PrivateKey,
		issuingCA: in.IssuingCA, caChain: in.CAChain,
	}
	switch sec.typ {
	case ImportedCert:
		if in.IssuingCA != "" || len(in.CAChain) > 0 {
			return nil, badRequest("issuing_ca and ca_chain belong to private_cert only")
		}
	case PublicCert:
		m.bundled = sec.bundleCerts
		m.requireKey = true
		if in.IssuingCA != "" || len(in.CAChain) > 0 {
			return nil, badRequest("issuing_ca and ca_chain belong to private_cert only")
		}
	case PrivateCert:
		m.requireKey = true
		if in.Intermediate != "" {
			return nil, badRequest("a private_cert has issuing_ca and ca_chain, not intermediate")
		}
	}
	if in.Certificate == "" {
		return nil, badRequest("certificate is required")
	}
	info, e := m.check(s.now())
	if e != nil {
		return nil, e
	}
	return &version{
		id: randomUUID(), createdBy: who, createdAt: s.now(),
		payload: &payload{
			certificate: in.Certificate, intermediate: in.Intermediate, privateKey: in.PrivateKey,
			issuingCA: in.IssuingCA, caChain: slices.Clone(in.CAChain),
		},
		versionCustomMetadata: vcm, info: info,
		hasIntermediate: in.Intermediate != "", hasKey: in.PrivateKey != "",
	}, nil
}

// rotateLocked adds a new current version to sec; it is shared by the API and Rotate.
// updated_at is left as it is (package doc).
func (s *Simulator) rotateLocked(sec *secret, in Version, vcm json.RawMessage, who string) (*version, *apiError) {
	if sec.state == Destroyed {
		return nil, badRequest("the secret is destroyed")
	}
	v, e := s.newVersionLocked(sec, in, vcm, who)
	if e != nil {
		return nil, e
	}
	if e := sec.addVersion(v); e != nil {
		return nil, e
	}
	return v, nil
}

// Rotate adds a new current version to a secret of any of the three types, as an
// import of a new version, a renewal or a reissue would. The version before the
// previous one loses its payload; it fails with ErrLocked when the previous version is
// locked. A public_cert in Pre-activation stays there until SetState.
func (s *Simulator) Rotate(instanceCRN, id string, in Version) (versionID string, err error) {
	vcm, e := metadataFromMap("version_custom_metadata", in.VersionCustomMetadata)
	if e != nil {
		return "", fmt.Errorf("rotate: %w", e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	v, e := s.rotateLocked(sec, in, vcm, seedCreator)
	if e != nil {
		return "", fmt.Errorf("rotate %s: %w", id, e)
	}
	return v.id, nil
}

func (s *Simulator) secretLocked(instanceCRN, id string) (*secret, error) {
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return nil, fmt.Errorf("instance %s: %w", instanceCRN, ErrNotFound)
	}
	sec, ok := inst.secrets[id]
	if !ok {
		return nil, fmt.Errorf("secret %s: %w", id, ErrNotFound)
	}
	return sec, nil
}

// SetState puts a secret into a state. Destroyed deletes the payload of every version,
// for good. Only Active secrets return a payload.
func (s *Simulator) SetState(instanceCRN, id string, st State) error {
	if !st.valid() {
		return fmt.Errorf("set state: %d is not a state: %w", int(st), ErrRejected)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return fmt.Errorf("set state: %w", err)
	}
	sec.state = st
	if st == Destroyed {
		for _, v := range sec.versions {
			v.payload = nil
			v.locks = nil
		}
	}
	return nil
}

// LockSecret attaches the lock named name to every version of the secret that has a
// payload (the current one, and the previous one if there is one). Then deleting the
// secret and patching its metadata answer 412, and so does a new version when there was
// a previous version. As IBM documents, a secret whose only locked version is the
// current one can still get a new version (the old current keeps its lock).
func (s *Simulator) LockSecret(instanceCRN, id, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	n := 0
	for _, v := range sec.versions {
		if v.payload != nil {
			if err := lockVersion(sec, v, name); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("lock %s: no version has a payload: %w", id, ErrRejected)
	}
	return nil
}

// LockVersion attaches the lock named name to one version: "current", "previous" or a
// version id. The version must have a payload.
func (s *Simulator) LockVersion(instanceCRN, id, versionRef, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	v := sec.findVersion(versionRef)
	if v == nil {
		return fmt.Errorf("lock %s: version %s: %w", id, versionRef, ErrNotFound)
	}
	if v.payload == nil {
		return fmt.Errorf("lock %s: version %s has no payload: %w", id, versionRef, ErrRejected)
	}
	return lockVersion(sec, v, name)
}

func lockVersion(sec *secret, v *version, name string) error {
	if name == "" {
		return fmt.Errorf("lock: a lock needs a name: %w", ErrRejected)
	}
	if slices.Contains(v.locks, name) {
		return nil // a lock of the same name is replaced
	}
	if sec.locksTotal() >= maxLocksPerSecret {
		return fmt.Errorf("lock: at most %d locks per secret: %w", maxLocksPerSecret, ErrRejected)
	}
	v.locks = append(v.locks, name)
	return nil
}

// Unlock removes the lock named name from every version of the secret.
func (s *Simulator) Unlock(instanceCRN, id, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	for _, v := range sec.versions {
		v.locks = slices.DeleteFunc(v.locks, func(l string) bool { return l == name })
	}
	return nil
}

// AddGroup creates a secret group and returns its id; "" is no description.
func (s *Simulator) AddGroup(instanceCRN, name, description string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return "", fmt.Errorf("add group: instance %s: %w", instanceCRN, ErrNotFound)
	}
	g, e := s.addGroupLocked(inst, name, description, seedCreator)
	if e != nil {
		return "", fmt.Errorf("add group: %w", e)
	}
	return g.id, nil
}

func (s *Simulator) addGroupLocked(inst *instance, name, description, who string) (*group, *apiError) {
	if n := textLen(name); n < minGroupNameLen || n > maxGroupNameLen {
		return nil, badRequest("name must be %d to %d characters long", minGroupNameLen, maxGroupNameLen)
	}
	if !nameRE.MatchString(name) || !nameDocRE.MatchString(name) {
		return nil, badRequest("name may hold only letters, digits, dashes and dots, and must start and end with a letter or digit")
	}
	if description != "" {
		if e := validateDescription(description); e != nil {
			return nil, e
		}
	}
	if strings.EqualFold(name, defaultGroup) {
		return nil, errorf(http.StatusConflict, codeConflict, "the name default is reserved")
	}
	for _, g := range inst.groups {
		if strings.EqualFold(g.name, name) {
			return nil, errorf(http.StatusConflict, codeConflict, "a secret group with this name already exists")
		}
	}
	if len(inst.groups) >= maxGroups {
		return nil, badRequest("an instance can have at most %d secret groups", maxGroups)
	}
	now := s.now()
	g := &group{id: randomUUID(), name: name, description: description, createdBy: who, createdAt: now, updatedAt: now}
	inst.groups[g.id] = g
	return g, nil
}

// Group is a secret group as stored.
type Group struct {
	ID, Name, Description string
	CreatedAt             time.Time
}

// Groups lists the instance's secret groups by name (not the default group).
func (s *Simulator) Groups(instanceCRN string) ([]Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return nil, fmt.Errorf("groups: instance %s: %w", instanceCRN, ErrNotFound)
	}
	var out []Group
	for _, g := range sortedGroups(inst) {
		out = append(out, Group{ID: g.id, Name: g.name, Description: g.description, CreatedAt: g.createdAt})
	}
	return out, nil
}

// Delete removes a secret, as the API would: a locked secret is refused (ErrLocked).
func (s *Simulator) Delete(instanceCRN, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretLocked(instanceCRN, id)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if sec.locksTotal() > 0 {
		return fmt.Errorf("delete %s: %w", id, lockedError())
	}
	delete(s.instances[instanceCRN].secrets, id)
	return nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
