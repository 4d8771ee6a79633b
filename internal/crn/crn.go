// Package crn parses IBM Cloud Resource Names of Certificate Manager instances and
// certificates, and escapes them the way the Certificate Manager API expects them in a
// URL path: the whole CRN as one segment, ':' as %3A and '/' as %2F.
package crn

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ServiceName is the CRN service name of Certificate Manager.
const ServiceName = "cloudcerts"

// ErrInvalid is returned (wrapped) for any string that is not a well-formed CRN of the
// expected kind.
var ErrInvalid = errors.New("invalid CRN")

// CRN is a parsed Certificate Manager CRN:
//
//	crn:v1:<cname>:<ctype>:cloudcerts:<region>:a/<account>:<instance>::
//	crn:v1:<cname>:<ctype>:cloudcerts:<region>:a/<account>:<instance>:certificate:<id>
type CRN struct {
	CName         string // bluemix, staging
	CType         string // public
	Region        string // us-south, eu-de, ...
	Account       string // account id, without the "a/" prefix
	Instance      string // instance GUID
	CertificateID string // empty for an instance CRN
}

var (
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+$`)
	certIDRE  = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// Parse parses an instance or certificate CRN of Certificate Manager. It is strict: the
// CRN is used to build URLs and to decide trust, so anything unexpected is refused.
func Parse(s string) (CRN, error) {
	if len(s) > 512 {
		return CRN{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	p := strings.Split(s, ":")
	if len(p) != 10 {
		return CRN{}, fmt.Errorf("%w: the value does not have the 10 fields of a CRN", ErrInvalid)
	}
	if p[0] != "crn" || p[1] != "v1" {
		return CRN{}, fmt.Errorf("%w: the value does not start with crn:v1:", ErrInvalid)
	}
	if p[4] != ServiceName {
		return CRN{}, fmt.Errorf("%w: the value is not a Certificate Manager (%s) CRN", ErrInvalid, ServiceName)
	}
	c := CRN{CName: p[2], CType: p[3], Region: p[5]}
	if !segmentRE.MatchString(c.CName) || !segmentRE.MatchString(c.CType) {
		return CRN{}, fmt.Errorf("%w: the value has a malformed cloud name or type", ErrInvalid)
	}
	if !regionRE.MatchString(c.Region) {
		return CRN{}, fmt.Errorf("%w: the value has a malformed region", ErrInvalid)
	}
	acct, ok := strings.CutPrefix(p[6], "a/")
	if !ok || !segmentRE.MatchString(acct) {
		return CRN{}, fmt.Errorf("%w: the value has a malformed account scope", ErrInvalid)
	}
	c.Account = acct
	if !segmentRE.MatchString(p[7]) {
		return CRN{}, fmt.Errorf("%w: the value has a malformed instance id", ErrInvalid)
	}
	c.Instance = p[7]
	switch {
	case p[8] == "" && p[9] == "":
	case p[8] == "certificate" && certIDRE.MatchString(p[9]):
		c.CertificateID = p[9]
	default:
		return CRN{}, fmt.Errorf("%w: the value is neither an instance nor a certificate CRN", ErrInvalid)
	}
	return c, nil
}

// ParseInstance parses s and requires an instance CRN (trailing "::").
func ParseInstance(s string) (CRN, error) {
	c, err := Parse(s)
	if err != nil {
		return CRN{}, err
	}
	if c.IsCertificate() {
		return CRN{}, fmt.Errorf("%w: the value is a certificate CRN, an instance CRN was expected", ErrInvalid)
	}
	return c, nil
}

// ParseCertificate parses s and requires a certificate CRN.
func ParseCertificate(s string) (CRN, error) {
	c, err := Parse(s)
	if err != nil {
		return CRN{}, err
	}
	if !c.IsCertificate() {
		return CRN{}, fmt.Errorf("%w: the value is an instance CRN, a certificate CRN was expected", ErrInvalid)
	}
	return c, nil
}

// IsCertificate reports whether c names a certificate rather than an instance.
func (c CRN) IsCertificate() bool { return c.CertificateID != "" }

// String formats c back into its canonical text.
func (c CRN) String() string {
	s := fmt.Sprintf("crn:v1:%s:%s:%s:%s:a/%s:%s:", c.CName, c.CType, ServiceName, c.Region, c.Account, c.Instance)
	if c.IsCertificate() {
		return s + "certificate:" + c.CertificateID
	}
	return s + ":"
}

// InstanceCRN returns the instance that c belongs to (c itself for an instance CRN).
func (c CRN) InstanceCRN() CRN {
	c.CertificateID = ""
	return c
}

// Certificate returns the CRN of certificate id in instance c.
func (c CRN) Certificate(id string) CRN {
	c.CertificateID = id
	return c
}

// SameInstance reports whether a and b are in the same instance of the same account.
func SameInstance(a, b CRN) bool {
	return a.InstanceCRN() == b.InstanceCRN()
}

// CertificateBelongsTo reports whether certCRN is a well-formed certificate CRN of the
// instance instanceCRN. Both strings are parsed; malformed input never belongs.
func CertificateBelongsTo(certCRN, instanceCRN string) bool {
	c, err := ParseCertificate(certCRN)
	if err != nil {
		return false
	}
	i, err := ParseInstance(instanceCRN)
	if err != nil {
		return false
	}
	return SameInstance(c, i) && c.String() == certCRN
}

// PathEscape escapes a CRN as one URL path segment, the way IBM's own clients do
// (encodeURIComponent): ':' becomes %3A and '/' becomes %2F.
func PathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

// Instance is the identity of a service instance, whatever its service.
type Instance struct {
	Service string // ServiceName or SecretsManagerServiceName
	Region  string
	Account string
	GUID    string // lower case: IBM Cloud GUIDs compare case-insensitively
}

// ParseAnyInstance parses the instance CRN of a Certificate Manager or a Secrets
// Manager instance.
func ParseAnyInstance(s string) (Instance, error) {
	if c, err := ParseInstance(s); err == nil {
		return Instance{Service: ServiceName, Region: c.Region, Account: c.Account, GUID: strings.ToLower(c.Instance)}, nil
	}
	c, err := ParseSecretsManager(s)
	if err != nil {
		return Instance{}, fmt.Errorf("%w: it is neither a Certificate Manager (%s) nor a Secrets Manager (%s) instance CRN", ErrInvalid, ServiceName, SecretsManagerServiceName)
	}
	if c.SecretID != "" {
		return Instance{}, fmt.Errorf("%w: it is a secret CRN, an instance CRN was expected", ErrInvalid)
	}
	return Instance{Service: SecretsManagerServiceName, Region: c.Region, Account: c.Account, GUID: strings.ToLower(c.Instance)}, nil
}

// SameInstanceCRN reports whether two instance CRNs name the same instance (the GUID
// compared without regard to case).
func SameInstanceCRN(a, b string) bool {
	x, errA := ParseAnyInstance(a)
	y, errB := ParseAnyInstance(b)
	return errA == nil && errB == nil && x == y
}

// IsRegion reports whether s has the shape of an IBM Cloud region name (us-south, eu-de).
func IsRegion(s string) bool { return regionRE.MatchString(s) }

// ItemBelongsTo reports whether item (a certificate or a secret CRN) is in instance.
func ItemBelongsTo(item, instance string) bool {
	return CertificateBelongsTo(item, instance) || SecretBelongsTo(item, instance)
}
