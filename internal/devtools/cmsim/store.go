package cmsim

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simrate"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// Limits of docs/services/certificate-manager.md §14.
const (
	maxCertificates   = 1000
	maxNameLen        = 256
	maxDescriptionLen = 1024
	perCertPerMinute  = 5 // reimport, update, order policy update
	perInstPerMinute  = 5 // order, renew, channel create
)

// keyMismatchMessage is the documented text for a key that does not match
// (docs/services/certificate-manager.md §5.2).
const keyMismatchMessage = "The private key doesn't match the certificate that you're trying to import. Ensure that they match and try again."

// Metadata is a certificate as the API describes it (docs/services/certificate-manager.md
// §5.1).
type Metadata struct {
	ID           string        `json:"_id"`
	Name         string        `json:"name"`
	Description  string        `json:"description"`
	Domains      []string      `json:"domains"`
	Issuer       string        `json:"issuer"`
	SerialNumber string        `json:"serial_number,omitempty"`
	BeginsOn     int64         `json:"begins_on"`
	ExpiresOn    int64         `json:"expires_on"`
	Algorithm    string        `json:"algorithm"`
	KeyAlgorithm string        `json:"key_algorithm"`
	Imported     bool          `json:"imported"`
	Status       string        `json:"status"`
	HasPrevious  bool          `json:"has_previous"`
	IssuanceInfo *IssuanceInfo `json:"issuance_info,omitempty"`
	OrderPolicy  *OrderPolicy  `json:"order_policy,omitempty"`
	LastModified int64         `json:"last_modified"`
}

// IssuanceInfo describes how an ordered certificate was issued.
type IssuanceInfo struct {
	Status         string `json:"status"`
	Code           string `json:"code"`
	AdditionalInfo string `json:"additional_info"`
	Auto           bool   `json:"auto"`
	OrderedOn      int64  `json:"ordered_on"`
}

// OrderPolicy of an ordered certificate.
type OrderPolicy struct {
	AutoRenewEnabled bool `json:"auto_renew_enabled"`
}

// Data is the PEM material of a certificate. PrivKey and Intermediate are omitted from
// JSON when the certificate has none (docs/services/certificate-manager.md §5.2 leaves ""
// or absent open; absent is what bluemix-go's omitempty model produces).
type Data struct {
	Content      string `json:"content"`
	PrivKey      string `json:"priv_key,omitempty"`
	Intermediate string `json:"intermediate,omitempty"`
}

// String never prints the key.
func (d Data) String() string {
	return fmt.Sprintf("simulator.Data{content=%dB priv_key=%t intermediate=%dB}", len(d.Content), d.PrivKey != "", len(d.Intermediate))
}

// GoString never prints the key either (%#v).
func (d Data) GoString() string { return d.String() }

// StoredCertificate is what the simulator holds for one certificate.
type StoredCertificate struct {
	Metadata
	Data      Data
	DataKeyID string // data_key_id of the current version, as the download answers it
	Versions  int    // current version included
}

// String never prints the key.
func (c StoredCertificate) String() string {
	return fmt.Sprintf("simulator.StoredCertificate{%s name=%q versions=%d %s}", c.ID, c.Name, c.Versions, c.Data)
}

// certificate is one certificate with all its versions, the current one last.
type certificate struct {
	id            string
	name          string
	description   string
	imported      bool
	versions      []version
	lastModified  time.Time
	issuance      *IssuanceInfo
	policy        *OrderPolicy
	key           keySpec // for ordered certificates: what a renewal issues
	reimports     simrate.Window
	updates       simrate.Window
	policyUpdates simrate.Window
}

type version struct {
	data      Data
	dataKeyID string // opaque, new with every version (package doc, choice 21)
	leaf      *x509.Certificate
	meta      pemutil.Metadata
}

func (c *certificate) current() *version { return &c.versions[len(c.versions)-1] }

func (c *certificate) metadata(now time.Time) Metadata {
	v := c.current()
	status := "valid"
	if !now.Before(v.leaf.NotAfter) {
		status = "expired"
	}
	m := Metadata{
		ID: c.id, Name: c.name, Description: c.description,
		Domains:      slices.Clone(v.meta.Domains),
		Issuer:       v.meta.Issuer,
		SerialNumber: v.meta.SerialNumber,
		BeginsOn:     v.meta.BeginsOn,
		ExpiresOn:    v.meta.ExpiresOn,
		Algorithm:    v.meta.Algorithm,
		KeyAlgorithm: v.meta.KeyAlgorithm,
		Imported:     c.imported,
		Status:       status,
		HasPrevious:  len(c.versions) > 1,
		LastModified: c.lastModified.UnixMilli(),
	}
	if c.issuance != nil {
		ii := *c.issuance
		m.IssuanceInfo = &ii
	}
	if c.policy != nil {
		p := *c.policy
		m.OrderPolicy = &p
	}
	return m
}

func (c *certificate) stored(now time.Time) StoredCertificate {
	v := c.current()
	return StoredCertificate{Metadata: c.metadata(now), Data: v.data, DataKeyID: v.dataKeyID, Versions: len(c.versions)}
}

// checkMaterial validates PEM material the way import and reimport do. The messages
// never quote the input.
func checkMaterial(d Data, now time.Time, refuseExpired bool) (version, *apiError) {
	if strings.TrimSpace(d.Content) == "" {
		return version{}, errorf(http.StatusBadRequest, codeInvalidCertificate, "the certificate content is required")
	}
	leaf, err := pemutil.ParseCertificate(d.Content)
	if err != nil {
		return version{}, errorf(http.StatusBadRequest, codeInvalidCertificate, "the certificate content is not one valid PEM-encoded X.509 certificate")
	}
	if strings.TrimSpace(d.PrivKey) != "" {
		key, err := pemutil.ParsePrivateKey(d.PrivKey)
		if err != nil {
			return version{}, errorf(http.StatusBadRequest, codeInvalidKey, "the private key is not one valid, unencrypted PEM private key")
		}
		if !pemutil.KeyMatches(leaf, key) {
			return version{}, errorf(http.StatusBadRequest, codeKeyMismatch, "%s", keyMismatchMessage)
		}
	}
	if _, err := pemutil.ParseBundle(d.Content, d.PrivKey, d.Intermediate); err != nil {
		// Leaf and key passed above, so what is left is the intermediate chain.
		return version{}, errorf(http.StatusBadRequest, codeInvalidChain, "the intermediate certificates are not valid PEM or do not chain to the certificate")
	}
	if refuseExpired && !now.Before(leaf.NotAfter) {
		return version{}, errorf(http.StatusBadRequest, codeExpired, "the certificate has expired; import a valid, unexpired certificate")
	}
	if strings.TrimSpace(d.PrivKey) == "" {
		d.PrivKey = ""
	}
	if strings.TrimSpace(d.Intermediate) == "" {
		d.Intermediate = ""
	}
	return version{data: d, dataKeyID: randomUUID(), leaf: leaf, meta: pemutil.MetadataOf(leaf)}, nil
}

// jsLen is the length JavaScript reports for s (UTF-16 code units).
func jsLen(s string) int { return len(utf16.Encode([]rune(s))) }

func checkName(name *string) *apiError {
	if name == nil || strings.TrimSpace(*name) == "" {
		return errorf(http.StatusBadRequest, codeBadRequest, "name is required")
	}
	if jsLen(*name) > maxNameLen {
		return errorf(http.StatusBadRequest, codeBadRequest, "name must be at most %d characters", maxNameLen)
	}
	return nil
}

func checkDescription(d string) *apiError {
	if jsLen(d) > maxDescriptionLen {
		return errorf(http.StatusBadRequest, codeBadRequest, "description must be at most %d characters", maxDescriptionLen)
	}
	return nil
}

// addLocked stores a new certificate in inst, enforcing the per-instance limit.
func (s *Simulator) addLocked(inst *instance, name, description string, v version, imported bool) (*certificate, *apiError) {
	if len(inst.certs) >= maxCertificates {
		return nil, errorf(http.StatusBadRequest, codeLimitExceeded, "the instance already holds the maximum of %d certificates", maxCertificates)
	}
	id := s.nextIDLocked(inst)
	c := &certificate{id: id, name: name, description: description, imported: imported, versions: []version{v}, lastModified: s.now()}
	inst.certs[id] = c
	return c, nil
}

// nextIDLocked is a new certificate's CRN in inst: random, unless a test places it
// (SeedBelow, SeedAbove: placeID is set only while seed holds the lock).
func (s *Simulator) nextIDLocked(inst *instance) string {
	prefix := inst.crn[:len(inst.crn)-1] + "certificate:"
	if s.placeID != nil {
		return prefix + s.placeID(inst)
	}
	id := prefix + randomHex(16)
	for inst.certs[id] != nil {
		id = prefix + randomHex(16)
	}
	return id
}

// findCertLocked finds a certificate through the instance its CRN names.
func (s *Simulator) findCertLocked(certCRN string) (*instance, *certificate, bool) {
	c, err := crn.ParseCertificate(certCRN)
	if err != nil {
		return nil, nil, false
	}
	inst, ok := s.instances[c.InstanceCRN().String()]
	if !ok {
		return nil, nil, false
	}
	cert, ok := inst.certs[certCRN]
	return inst, cert, ok
}

// certLocked finds a certificate as the regional deployment of region sees it.
func (s *Simulator) certLocked(region, certCRN string) (*instance, *certificate, *apiError) {
	inst, c, ok := s.findCertLocked(certCRN)
	if !ok || inst.region != region {
		return nil, nil, notFound("certificate")
	}
	return inst, c, nil
}

// certAnyRegionLocked is certLocked for the Go API, which has no region prefix.
func (s *Simulator) certAnyRegionLocked(certCRN string) (*instance, *certificate, error) {
	inst, c, ok := s.findCertLocked(certCRN)
	if !ok {
		return nil, nil, fmt.Errorf("certificate %s: %w", certCRN, ErrNotFound)
	}
	return inst, c, nil
}

// reimportLocked replaces the current version of c, keeping the old one.
func (s *Simulator) reimportLocked(c *certificate, d Data) *apiError {
	if !c.imported {
		return errorf(http.StatusBadRequest, codeNotImported, "an ordered certificate cannot be reimported; renew it instead")
	}
	v, aerr := checkMaterial(d, s.now(), true)
	if aerr != nil {
		return aerr
	}
	if !sameDomains(v.meta.Domains, c.current().meta.Domains) {
		return errorf(http.StatusBadRequest, codeDomainsChanged, "a reimported certificate must have the same domains as the certificate it replaces")
	}
	c.versions = append(c.versions, v)
	c.lastModified = s.now()
	return nil
}

func sameDomains(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// keySpec is the key and issuer of an ordered certificate.
type keySpec struct {
	key       testpki.KeyType
	rsaIssuer bool // signed sha256WithRSAEncryption by the CA's RSA intermediate
}

// testKeySpec is what the Go API orders: a fast ECDSA key from the default
// intermediate (package doc, choice 15).
var testKeySpec = keySpec{key: testpki.ECDSAP256}

// orderOptions describe an order the simulator fulfils at once.
type orderOptions struct {
	name, description string
	domains           []string
	key               keySpec
	autoRenew         bool
}

// issue mints a certificate for domains. It runs without the lock: minting an RSA key
// takes long enough to stall other requests.
func (s *Simulator) issue(domains []string, k keySpec) (version, error) {
	iss, err := s.ca.Issue(testpki.Options{Domains: domains, Key: k.key, RSAIssuer: k.rsaIssuer})
	if err != nil {
		return version{}, fmt.Errorf("issue certificate: %w", err)
	}
	v, aerr := checkMaterial(Data{Content: iss.CertPEM, PrivKey: iss.KeyPEM, Intermediate: iss.Intermediate}, s.now(), true)
	if aerr != nil {
		return version{}, fmt.Errorf("issue certificate: %w", aerr)
	}
	return v, nil
}

func (s *Simulator) orderLocked(inst *instance, o orderOptions, v version) (*certificate, *apiError) {
	c, aerr := s.addLocked(inst, o.name, o.description, v, false)
	if aerr != nil {
		return nil, aerr
	}
	c.issuance = &IssuanceInfo{Status: "valid", OrderedOn: s.now().UnixMilli()}
	c.policy = &OrderPolicy{AutoRenewEnabled: o.autoRenew}
	c.key = o.key
	return c, nil
}

// setAutoRenew changes the order policy; only ordered certificates have one.
func (c *certificate) setAutoRenew(enabled bool) *apiError {
	if c.imported || c.policy == nil {
		return errorf(http.StatusBadRequest, codeNotOrdered, "an imported certificate has no order policy")
	}
	c.policy.AutoRenewEnabled = enabled
	return nil
}

func (s *Simulator) renewLocked(c *certificate, v version) *apiError {
	if c.imported {
		return errorf(http.StatusBadRequest, codeNotOrdered, "an imported certificate cannot be renewed; reimport it instead")
	}
	c.versions = append(c.versions, v)
	c.lastModified = s.now()
	c.issuance.OrderedOn = s.now().UnixMilli()
	return nil
}

// ---- Go API: the test's own hand. Not logged, not rate limited. ----

// Seed stores issued in the instance as a first import would (no notification: the
// service sends none for an import). It panics on an unknown instance, an invalid name,
// description or material, or a full instance: those are bugs in the test. Expired
// certificates are accepted, so tests can set up expired ones.
func (s *Simulator) Seed(instanceCRN, name, description string, issued *testpki.Issued) (certCRN string) {
	return s.seed(instanceCRN, name, description, issued, nil)
}

// seed is Seed with the new CRN's suffix chosen by place (nil: random).
func (s *Simulator) seed(instanceCRN, name, description string, issued *testpki.Issued, place func(*instance) string) string {
	if aerr := checkName(&name); aerr != nil {
		panic(fmt.Sprintf("simulator: Seed: %v", aerr))
	}
	if aerr := checkDescription(description); aerr != nil {
		panic(fmt.Sprintf("simulator: Seed: %v", aerr))
	}
	v, aerr := checkMaterial(Data{Content: issued.CertPEM, PrivKey: issued.KeyPEM, Intermediate: issued.Intermediate}, s.now(), false)
	if aerr != nil {
		panic(fmt.Sprintf("simulator: Seed: %v", aerr))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		panic(fmt.Sprintf("simulator: Seed: unknown instance %s", instanceCRN))
	}
	s.placeID = place
	defer func() { s.placeID = nil }() // before the unlock, and also when place panics
	c, aerr := s.addLocked(inst, name, description, v, true)
	if aerr != nil {
		panic(fmt.Sprintf("simulator: Seed: %v", aerr))
	}
	return c.id
}

// SeedBelow is Seed with a CRN that sorts before than (a certificate of the same
// instance), so that a test can put a certificate where a rule keeping the smallest
// CRN would pick it without drawing random CRNs until one happens to fit.
func (s *Simulator) SeedBelow(instanceCRN, than, name, description string, issued *testpki.Issued) (certCRN string) {
	return s.seedBeside(instanceCRN, than, -1, name, description, issued)
}

// SeedAbove is Seed with a CRN that sorts after than.
func (s *Simulator) SeedAbove(instanceCRN, than, name, description string, issued *testpki.Issued) (certCRN string) {
	return s.seedBeside(instanceCRN, than, +1, name, description, issued)
}

// seedBeside seeds with a free CRN drawn uniformly between than's and the end of the
// ID space on the side dir says. It panics when that side holds no free CRN.
func (s *Simulator) seedBeside(instanceCRN, than string, dir int, name, description string, issued *testpki.Issued) string {
	prefix := instanceCRN[:len(instanceCRN)-1] + "certificate:"
	suffix, ok := strings.CutPrefix(than, prefix)
	bound, parsed := new(big.Int).SetString(suffix, 16)
	if !ok || !parsed || len(suffix) != 32 {
		panic(fmt.Sprintf("simulator: seed beside %q: not a certificate of %s", than, instanceCRN))
	}
	return s.seed(instanceCRN, name, description, issued, func(inst *instance) string {
		for range 1000 {
			id := besideID(bound, dir)
			if inst.certs[prefix+id] == nil {
				return id
			}
		}
		panic(fmt.Sprintf("simulator: seed beside %q: no free CRN on that side", than))
	})
}

// besideID is a 32-digit hex ID strictly below bound (dir < 0) or above it.
func besideID(bound *big.Int, dir int) string {
	lo, span := new(big.Int), new(big.Int).Set(bound) // [0, bound)
	if dir > 0 {
		top := new(big.Int).Lsh(big.NewInt(1), 128)
		lo.Add(bound, big.NewInt(1))
		span.Sub(top, lo) // (bound, 2^128)
	}
	if span.Sign() <= 0 {
		panic("simulator: no ID on that side")
	}
	n, err := rand.Int(rand.Reader, span)
	if err != nil {
		panic(fmt.Sprintf("simulator: %v", err))
	}
	return fmt.Sprintf("%032x", n.Add(n, lo))
}

// Order issues a certificate for domains in the instance at once, like a completed
// Let's Encrypt order, and sends cert_issued.
func (s *Simulator) Order(instanceCRN, name string, domains ...string) (certCRN string, err error) {
	if len(domains) == 0 {
		return "", fmt.Errorf("order %q: %w: at least one domain is required", name, ErrRejected)
	}
	v, err := s.issue(domains, testKeySpec)
	if err != nil {
		return "", fmt.Errorf("order %q: %w", name, err)
	}
	s.mu.Lock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("order %q in %s: %w", name, instanceCRN, ErrNotFound)
	}
	c, aerr := s.orderLocked(inst, orderOptions{name: name, domains: domains, key: testKeySpec}, v)
	if aerr != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("order %q: %w", name, aerr)
	}
	pending := s.prepareEventLocked(inst, EventCertIssued, []*certificate{c}, "")
	s.mu.Unlock()
	s.deliver(pending)
	return c.id, nil
}

// Renew issues a new certificate for an ordered one (keeping the previous version), with
// the same kind of key and issuer as the order, and sends cert_renewed with auto_renewed
// false.
func (s *Simulator) Renew(certCRN string) error {
	s.mu.Lock()
	_, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("renew: %w", err)
	}
	domains, key := slices.Clone(c.current().meta.Domains), c.key
	s.mu.Unlock()
	v, err := s.issue(domains, key)
	if err != nil {
		return fmt.Errorf("renew %s: %w", certCRN, err)
	}
	s.mu.Lock()
	inst, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("renew: %w", err)
	}
	if aerr := s.renewLocked(c, v); aerr != nil {
		s.mu.Unlock()
		return fmt.Errorf("renew %s: %w", certCRN, aerr)
	}
	pending := s.prepareEventLocked(inst, EventCertRenewed, []*certificate{c}, "")
	s.mu.Unlock()
	s.deliver(pending)
	return nil
}

// Reimport replaces the certificate's material with the same checks as the API (except
// the rate limit), keeping the previous version, and sends cert_reimported.
func (s *Simulator) Reimport(certCRN, content, key, intermediate string) error {
	s.mu.Lock()
	inst, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("reimport: %w", err)
	}
	if aerr := s.reimportLocked(c, Data{Content: content, PrivKey: key, Intermediate: intermediate}); aerr != nil {
		s.mu.Unlock()
		return fmt.Errorf("reimport %s: %w", certCRN, aerr)
	}
	pending := s.prepareEventLocked(inst, EventCertReimported, []*certificate{c}, "")
	s.mu.Unlock()
	s.deliver(pending)
	return nil
}

// SetAutoRenew sets the order policy of an ordered certificate, with the same checks as
// the order policy API except its rate limit. The service sends no event for it.
func (s *Simulator) SetAutoRenew(certCRN string, enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		return fmt.Errorf("set auto-renew: %w", err)
	}
	if aerr := c.setAutoRenew(enabled); aerr != nil {
		return fmt.Errorf("set auto-renew of %s: %w", certCRN, aerr)
	}
	return nil
}

// Snapshot returns the instance's certificates sorted by CRN (nil for an unknown
// instance).
func (s *Simulator) Snapshot(instanceCRN string) []StoredCertificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return nil
	}
	now := s.now()
	out := make([]StoredCertificate, 0, len(inst.certs))
	for _, c := range inst.certs {
		out = append(out, c.stored(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns one certificate.
func (s *Simulator) Get(certCRN string) (StoredCertificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		return StoredCertificate{}, false
	}
	return c.stored(s.now()), true
}

// Delete removes a certificate (no notification: the service has no delete event).
func (s *Simulator) Delete(certCRN string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, _, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	delete(inst.certs, certCRN)
	return nil
}

// SetName changes a certificate's name and description directly, for tests that set up
// a renamed source.
func (s *Simulator) SetName(certCRN, name, description string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.certAnyRegionLocked(certCRN)
	if err != nil {
		return fmt.Errorf("set name: %w", err)
	}
	if aerr := checkName(&name); aerr != nil {
		return fmt.Errorf("set name: %w", aerr)
	}
	if aerr := checkDescription(description); aerr != nil {
		return fmt.Errorf("set name: %w", aerr)
	}
	c.name, c.description, c.lastModified = name, description, s.now()
	return nil
}
