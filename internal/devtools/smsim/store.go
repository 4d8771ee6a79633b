package smsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/certbackup/certbackup/internal/devtools/simrate"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// The certificate secret types the simulator stores.
const (
	ImportedCert = "imported_cert"
	PublicCert   = "public_cert"
	PrivateCert  = "private_cert"
)

// secretTypes are every type the API knows (SDK ImportedCertificate_SecretType_*); only
// the three certificate types are stored by the simulator.
var secretTypes = []string{
	"arbitrary", "custom_credentials", "iam_credentials", ImportedCert, "kv",
	PrivateCert, PublicCert, "service_credentials", "username_password",
}

// State is a secret's NIST SP 800-57 state.
type State int

// The documented states (there is no 4).
const (
	PreActivation State = 0
	Active        State = 1
	Suspended     State = 2
	Deactivated   State = 3
	Destroyed     State = 5
)

// Description is the state_description of the API.
func (st State) Description() string {
	switch st {
	case PreActivation:
		return "pre_activation"
	case Active:
		return "active"
	case Suspended:
		return "suspended"
	case Deactivated:
		return "deactivated"
	case Destroyed:
		return "destroyed"
	default:
		return fmt.Sprintf("state(%d)", int(st))
	}
}

func (st State) valid() bool {
	switch st {
	case PreActivation, Active, Suspended, Deactivated, Destroyed:
		return true
	}
	return false
}

// Limits (docs/services/secrets-manager.md §6).
const (
	maxNameLen          = 256
	minNameLen          = 2
	minDescriptionLen   = 2
	maxDescriptionLen   = 1024
	maxLabels           = 30
	minLabelLen         = 2
	maxLabelLen         = 64
	minPEMLen           = 50
	maxPEMLen           = 100000
	maxMetadataBytes    = 10000 // "10 KB", read as the smaller 10 000 bytes
	maxGroups           = 200
	minGroupNameLen     = 2
	maxGroupNameLen     = 64
	maxVersionsMetadata = 50
	maxLocksPerSecret   = 1000
	maxBody             = 1 << 20
)

var (
	// nameRE is the API's pattern for a secret name (CLI reference, Terraform docs).
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_]*(?:_*-*\.*[A-Za-z0-9]*)*[A-Za-z0-9]+$`)
	// nameDocRE is the rule of limits.md: only letters, digits, dashes and dots, and a
	// letter or digit first and last. Both apply (package doc).
	nameDocRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	// pemRE is the CLI reference's pattern for certificate fields, anchored.
	pemRE  = regexp.MustCompile(`^(-{5}BEGIN.+?-{5}[\s\S]+-{5}END.+?-{5}[\s]*)$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

const defaultGroup = "default"

// instance is one Secrets Manager instance.
type instance struct {
	crn     InstanceCRN
	secrets map[string]*secret
	groups  map[string]*group
	rate    simrate.Window // for Options.RateLimit
}

func newInstance(c InstanceCRN) *instance {
	return &instance{crn: c, secrets: map[string]*secret{}, groups: map[string]*group{}}
}

type group struct {
	id, name, description string
	createdBy             string
	createdAt, updatedAt  time.Time
}

type secret struct {
	id, name, description string
	labels                []string
	customMetadata        json.RawMessage // compact JSON object, or nil
	groupID               string
	typ                   string
	state                 State
	createdBy             string
	createdAt, updatedAt  time.Time
	versions              []*version // oldest first; the last is the current version

	// public_cert
	bundleCerts bool
	ca, dns     string
	// private_cert
	certificateTemplate, certificateAuthority string
}

type version struct {
	id                    string
	createdBy             string
	createdAt             time.Time
	downloaded            bool
	payload               *payload // nil once the payload is gone
	versionCustomMetadata json.RawMessage
	info                  certInfo
	hasIntermediate       bool
	hasKey                bool
	locks                 []string
}

// payload is the secret data of one version.
type payload struct {
	certificate, intermediate, privateKey string
	issuingCA                             string
	caChain                               []string
}

// certInfo is what the service derives from the leaf certificate.
type certInfo struct {
	commonName       string
	altNames         []string
	issuer           string
	keyAlgorithm     string
	signingAlgorithm string
	serial           string
	notBefore        time.Time
	notAfter         time.Time
}

func (s *secret) current() *version {
	if len(s.versions) == 0 {
		return nil
	}
	return s.versions[len(s.versions)-1]
}

func (s *secret) previous() *version {
	if len(s.versions) < 2 {
		return nil
	}
	return s.versions[len(s.versions)-2]
}

func (s *secret) locksTotal() int {
	n := 0
	for _, v := range s.versions {
		n += len(v.locks)
	}
	return n
}

// findVersion resolves a version id or the aliases current and previous.
func (s *secret) findVersion(ref string) *version {
	switch ref {
	case "current":
		return s.current()
	case "previous":
		return s.previous()
	}
	for _, v := range s.versions {
		if v.id == ref {
			return v
		}
	}
	return nil
}

func (s *secret) alias(v *version) string {
	switch v {
	case s.current():
		return "current"
	case s.previous():
		return "previous"
	}
	return ""
}

// payloadVisible reports whether the API returns secret data for the secret: only an
// Active secret has readable data (package doc, choice on states).
func (s *secret) payloadVisible() bool { return s.state == Active }

// addVersion makes v current. The version before the old current one loses its
// payload (two versions with payload are kept), and at most 50 versions are kept.
func (s *secret) addVersion(v *version) *apiError {
	if p := s.previous(); p != nil && len(p.locks) > 0 {
		return lockedError()
	}
	s.versions = append(s.versions, v)
	for i := 0; i < len(s.versions)-2; i++ {
		s.versions[i].payload = nil
	}
	if len(s.versions) > maxVersionsMetadata {
		s.versions = slices.Delete(s.versions, 0, len(s.versions)-maxVersionsMetadata)
	}
	return nil
}

// textLen measures like JavaScript's String.length (UTF-16 code units), which is never
// less than the number of characters.
func textLen(s string) int { return len(utf16.Encode([]rune(s))) }

func validateName(name string) *apiError {
	n := textLen(name)
	if n < minNameLen || n > maxNameLen {
		return badRequest("name must be %d to %d characters long", minNameLen, maxNameLen)
	}
	if !nameRE.MatchString(name) || !nameDocRE.MatchString(name) {
		return badRequest("name may hold only letters, digits, dashes and dots, and must start and end with a letter or digit")
	}
	return nil
}

// validateDescription checks a description that is given: absent is fine, "" is not.
func validateDescription(d string) *apiError {
	if n := textLen(d); n < minDescriptionLen || n > maxDescriptionLen {
		return badRequest("description must be %d to %d characters long", minDescriptionLen, maxDescriptionLen)
	}
	return nil
}

func validateLabels(labels []string) *apiError {
	if len(labels) > maxLabels {
		return badRequest("at most %d labels are allowed", maxLabels)
	}
	for i, l := range labels {
		if n := textLen(l); n < minLabelLen || n > maxLabelLen {
			return badRequest("labels[%d] must be %d to %d characters long", i, minLabelLen, maxLabelLen)
		}
	}
	return nil
}

// compactObject checks that raw is a JSON object of at most 10 000 bytes and returns it
// compacted; an empty object is stored as nil (nothing to show).
func compactObject(field string, raw json.RawMessage) (json.RawMessage, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, badRequest("%s must be a JSON object", field)
	}
	b := buf.Bytes()
	if len(b) == 0 || b[0] != '{' {
		return nil, badRequest("%s must be a JSON object", field)
	}
	if len(b) > maxMetadataBytes {
		return nil, badRequest("%s must be at most %d bytes of JSON", field, maxMetadataBytes)
	}
	if string(b) == "{}" {
		return nil, nil
	}
	return b, nil
}

func metadataFromMap(field string, m map[string]any) (json.RawMessage, *apiError) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, badRequest("%s cannot be encoded as JSON", field)
	}
	return compactObject(field, b)
}

func validatePEMField(field, v string) *apiError {
	if n := len(v); n < minPEMLen || n > maxPEMLen {
		return badRequest("%s must be %d to %d characters long", field, minPEMLen, maxPEMLen)
	}
	if !pemRE.MatchString(v) {
		return badRequest("%s must be PEM text: -----BEGIN ...----- ... -----END ...-----", field)
	}
	return nil
}

// certMaterial is certificate material to validate before it is stored.
type certMaterial struct {
	certificate  string   // the certificate field: one certificate, or leaf + chain when bundled
	bundled      bool     // certificate may hold the chain after the leaf
	intermediate string   // imported/public: chain, each signing the one before
	privateKey   string   // must match the leaf
	requireKey   bool     // public_cert and private_cert always have a key
	issuingCA    string   // private_cert
	caChain      []string // private_cert
}

// check parses and checks the material and derives the certificate's metadata. It
// never quotes the material in its messages.
func (m certMaterial) check(now time.Time) (certInfo, *apiError) {
	if e := validatePEMField("certificate", m.certificate); e != nil {
		return certInfo{}, e
	}
	leaf, chainInCert, err := parseCertBlocks(m.certificate)
	if err != nil || (!m.bundled && len(chainInCert) > 0) {
		return certInfo{}, errorf(http.StatusBadRequest, codeInvalidCert, "Unable to parse the certificate: the certificate field must hold exactly one PEM certificate")
	}
	if !now.Before(leaf.NotAfter) {
		return certInfo{}, errorf(http.StatusBadRequest, codeExpired, "the certificate has expired")
	}
	if m.privateKey != "" {
		if e := validatePEMField("private_key", m.privateKey); e != nil {
			return certInfo{}, e
		}
		key, err := pemutil.ParsePrivateKey(m.privateKey)
		if err != nil {
			return certInfo{}, errorf(http.StatusBadRequest, codeInvalidKey, "Unable to parse the private key: only one unencrypted PEM private key (PKCS#1, PKCS#8 or SEC 1) is supported")
		}
		if !pemutil.KeyMatches(leaf, key) {
			return certInfo{}, errorf(http.StatusBadRequest, codeKeyMismatch, "the private key does not match the certificate")
		}
	} else if m.requireKey {
		return certInfo{}, errorf(http.StatusBadRequest, codeInvalidKey, "a private key is required")
	}
	chains := [][]*x509.Certificate{}
	if len(chainInCert) > 0 {
		chains = append(chains, chainInCert)
	}
	if m.intermediate != "" {
		if e := validatePEMField("intermediate", m.intermediate); e != nil {
			return certInfo{}, e
		}
		inters, err := parseCertList(m.intermediate)
		if err != nil {
			return certInfo{}, errorf(http.StatusBadRequest, codeInvalidChain, "Unable to parse the intermediate certificate")
		}
		chains = append(chains, inters)
	}
	if m.issuingCA != "" {
		if e := validatePEMField("issuing_ca", m.issuingCA); e != nil {
			return certInfo{}, e
		}
		ca, err := parseCertList(m.issuingCA)
		if err != nil || len(ca) != 1 {
			return certInfo{}, errorf(http.StatusBadRequest, codeInvalidChain, "Unable to parse the issuing CA certificate")
		}
		chains = append(chains, ca)
	}
	for i, c := range m.caChain {
		if e := validatePEMField(fmt.Sprintf("ca_chain[%d]", i), c); e != nil {
			return certInfo{}, e
		}
		if _, err := parseCertList(c); err != nil {
			return certInfo{}, errorf(http.StatusBadRequest, codeInvalidChain, "Unable to parse ca_chain[%d]", i)
		}
	}
	for _, chain := range chains {
		child := leaf
		for i, c := range chain {
			if err := child.CheckSignatureFrom(c); err != nil {
				return certInfo{}, errorf(http.StatusBadRequest, codeInvalidChain, "intermediate certificate %d did not sign the certificate before it", i)
			}
			child = c
		}
	}
	return infoOf(leaf), nil
}

// parseCertBlocks parses one or more CERTIFICATE blocks: the first and the rest.
func parseCertBlocks(s string) (*x509.Certificate, []*x509.Certificate, error) {
	certs, err := parseCertList(s)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], certs[1:], nil
}

func parseCertList(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := s
	for {
		i := strings.Index(rest, "-----BEGIN")
		if i < 0 {
			break
		}
		if strings.TrimSpace(rest[:i]) != "" {
			return nil, fmt.Errorf("text between PEM blocks")
		}
		end := strings.Index(rest[i:], "-----END CERTIFICATE-----")
		if end < 0 {
			return nil, fmt.Errorf("unterminated block")
		}
		end += i + len("-----END CERTIFICATE-----")
		c, err := pemutil.ParseCertificate(rest[i:end])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		rest = rest[end:]
	}
	if strings.TrimSpace(rest) != "" || len(out) == 0 {
		return nil, fmt.Errorf("not PEM certificates")
	}
	return out, nil
}

// infoOf derives the certificate metadata the way the service reports it.
func infoOf(c *x509.Certificate) certInfo {
	var alt []string
	for _, d := range c.DNSNames {
		if d != c.Subject.CommonName && !slices.Contains(alt, d) {
			alt = append(alt, d)
		}
	}
	issuer := c.Issuer.CommonName
	if issuer == "" {
		issuer = c.Issuer.String()
	}
	return certInfo{
		commonName:       c.Subject.CommonName,
		altNames:         alt,
		issuer:           issuer,
		keyAlgorithm:     keyAlgorithm(c.PublicKey),
		signingAlgorithm: c.SignatureAlgorithm.String(),
		serial:           pemutil.SerialString(c),
		notBefore:        c.NotBefore,
		notAfter:         c.NotAfter,
	}
}

// keyAlgorithm names a public key the way the API's key_algorithm enum does (RSA2048,
// RSA4096, ECDSA256, ECDSA384).
func keyAlgorithm(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA%d", k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "ED25519"
	default:
		return "UNKNOWN"
	}
}

// nameTakenLocked reports whether another secret of type typ in the instance has name,
// compared without regard to case (package doc).
func (inst *instance) nameTakenLocked(typ, name, exceptID string) bool {
	for _, s := range inst.secrets {
		if s.id != exceptID && s.typ == typ && strings.EqualFold(s.name, name) {
			return true
		}
	}
	return false
}

// resolveGroup checks a secret_group_id: "default" or the UUID of an existing group.
func (inst *instance) resolveGroup(id string) (string, *apiError) {
	if id == "" || id == defaultGroup {
		return defaultGroup, nil
	}
	if !uuidRE.MatchString(id) {
		return "", badRequest("secret_group_id must be a UUID or \"default\"")
	}
	if _, ok := inst.groups[id]; !ok {
		return "", badRequest("the secret group %s does not exist in this instance", id)
	}
	return id, nil
}

func (inst *instance) groupByName(name string) (string, bool) {
	if name == defaultGroup {
		return defaultGroup, true
	}
	for _, g := range inst.groups {
		if g.name == name {
			return g.id, true
		}
	}
	return "", false
}
