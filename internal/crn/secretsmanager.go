package crn

import (
	"fmt"
	"strings"
)

// SecretsManagerServiceName is the CRN service name of IBM Cloud Secrets Manager.
const SecretsManagerServiceName = "secrets-manager"

// SecretsManagerCRN is a parsed Secrets Manager CRN:
//
//	crn:v1:<cname>:<ctype>:secrets-manager:<region>:a/<account>:<instance>::
//	crn:v1:<cname>:<ctype>:secrets-manager:<region>:a/<account>:<instance>:secret:<id>
//
// The secret id is the secret's UUID, the identifier of the Secrets Manager API
// (/api/v2/secrets/{id}); the SDK documents it as "the v4 UUID that uniquely identifies
// your secret".
type SecretsManagerCRN struct {
	CName    string // bluemix, staging
	CType    string // public
	Region   string // us-south, eu-de, ...
	Account  string // account id, without the "a/" prefix
	Instance string // instance GUID
	SecretID string // empty for an instance CRN
}

// IsSecretID reports whether s has the syntax of a Secrets Manager secret id: a UUID in
// its 8-4-4-4-12 hexadecimal form (either case). Such a string is safe in a URL path.
func IsSecretID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ParseSecretsManager parses an instance or secret CRN of Secrets Manager. Like Parse it
// is strict: the CRN decides trust and builds URLs.
func ParseSecretsManager(s string) (SecretsManagerCRN, error) {
	if len(s) > 512 {
		return SecretsManagerCRN{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	p := strings.Split(s, ":")
	if len(p) != 10 {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value does not have the 10 fields of a CRN", ErrInvalid)
	}
	if p[0] != "crn" || p[1] != "v1" {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value does not start with crn:v1:", ErrInvalid)
	}
	if p[4] != SecretsManagerServiceName {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value is not a Secrets Manager (%s) CRN", ErrInvalid, SecretsManagerServiceName)
	}
	c := SecretsManagerCRN{CName: p[2], CType: p[3], Region: p[5]}
	if !segmentRE.MatchString(c.CName) || !segmentRE.MatchString(c.CType) {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value has a malformed cloud name or type", ErrInvalid)
	}
	if !regionRE.MatchString(c.Region) {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value has a malformed region", ErrInvalid)
	}
	acct, ok := strings.CutPrefix(p[6], "a/")
	if !ok || !segmentRE.MatchString(acct) {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value has a malformed account scope", ErrInvalid)
	}
	c.Account = acct
	if !segmentRE.MatchString(p[7]) {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value has a malformed instance id", ErrInvalid)
	}
	c.Instance = p[7]
	switch {
	case p[8] == "" && p[9] == "":
	case p[8] == "secret" && IsSecretID(p[9]):
		c.SecretID = p[9]
	default:
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value is neither a Secrets Manager instance nor a secret CRN", ErrInvalid)
	}
	return c, nil
}

// ParseSecretsManagerInstance parses s and requires a Secrets Manager instance CRN
// (trailing "::").
func ParseSecretsManagerInstance(s string) (SecretsManagerCRN, error) {
	c, err := ParseSecretsManager(s)
	if err != nil {
		return SecretsManagerCRN{}, err
	}
	if c.IsSecret() {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value is a secret CRN, an instance CRN was expected", ErrInvalid)
	}
	return c, nil
}

// ParseSecret parses s and requires a Secrets Manager secret CRN.
func ParseSecret(s string) (SecretsManagerCRN, error) {
	c, err := ParseSecretsManager(s)
	if err != nil {
		return SecretsManagerCRN{}, err
	}
	if !c.IsSecret() {
		return SecretsManagerCRN{}, fmt.Errorf("%w: the value is an instance CRN, a secret CRN was expected", ErrInvalid)
	}
	return c, nil
}

// IsSecret reports whether c names a secret rather than an instance.
func (c SecretsManagerCRN) IsSecret() bool { return c.SecretID != "" }

// String formats c back into its text form, with the fields as parsed.
func (c SecretsManagerCRN) String() string {
	s := fmt.Sprintf("crn:v1:%s:%s:%s:%s:a/%s:%s:", c.CName, c.CType, SecretsManagerServiceName, c.Region, c.Account, c.Instance)
	if c.IsSecret() {
		return s + "secret:" + c.SecretID
	}
	return s + ":"
}

// InstanceCRN returns the instance that c belongs to (c itself for an instance CRN).
func (c SecretsManagerCRN) InstanceCRN() SecretsManagerCRN {
	c.SecretID = ""
	return c
}

// Secret returns the CRN of secret id in instance c. The caller checks id with
// IsSecretID.
func (c SecretsManagerCRN) Secret(id string) SecretsManagerCRN {
	c.SecretID = id
	return c
}

// SameInstance reports whether a and b name the same Secrets Manager instance: same
// cloud name and type, region and account, and the same instance GUID compared
// case-insensitively (a GUID is a UUID, whose hexadecimal digits have no case).
func (c SecretsManagerCRN) SameInstance(o SecretsManagerCRN) bool {
	return c.CName == o.CName && c.CType == o.CType && c.Region == o.Region &&
		c.Account == o.Account && strings.EqualFold(c.Instance, o.Instance)
}

// SecretBelongsTo reports whether secretCRN is a well-formed secret CRN of the Secrets
// Manager instance instanceCRN. Both strings are parsed; malformed input never belongs.
func SecretBelongsTo(secretCRN, instanceCRN string) bool {
	s, err := ParseSecret(secretCRN)
	if err != nil {
		return false
	}
	i, err := ParseSecretsManagerInstance(instanceCRN)
	if err != nil {
		return false
	}
	return s.SameInstance(i)
}
