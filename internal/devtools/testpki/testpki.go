// Package testpki is a small in-memory certificate authority for tests, the simulator
// and the local demo: a root, an intermediate, and leaf certificates with their keys.
// Nothing it makes is ever committed; key material lives only in memory.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// CA issues leaf certificates through an intermediate, like a public CA does.
type CA struct {
	Root            *x509.Certificate
	Intermediate    *x509.Certificate // ECDSA P-256: leaves are signed ecdsa-with-SHA256
	RootPEM         string
	IntermediatePEM string

	mu       sync.Mutex
	rootKey  crypto.Signer
	interKey crypto.Signer
	serial   int64

	// The RSA intermediate is made on first use (Options.RSAIssuer): an RSA key takes
	// long enough to generate that CAs which never need it should not pay for it.
	rsaOnce  sync.Once
	rsaInter *issuer
	rsaErr   error
}

// issuer is an intermediate with its key.
type issuer struct {
	cert *x509.Certificate
	pem  string
	key  crypto.Signer
}

// KeyType chooses the leaf key. ECDSA P-256 is the default because it is fast to
// generate: tests mint thousands of certificates.
type KeyType int

const (
	ECDSAP256 KeyType = iota
	RSA2048
	RSA4096 // slow to generate (around a second): for the few tests that need it
)

// Issued is a leaf with its key and chain, as PEM text.
type Issued struct {
	Cert         *x509.Certificate
	CertPEM      string
	KeyPEM       string
	Intermediate string
}

// String never prints the key.
func (i *Issued) String() string {
	return fmt.Sprintf("testpki.Issued{cn=%s serial=%s}", i.Cert.Subject.CommonName, i.Cert.SerialNumber)
}

// NewCA creates a root and an intermediate named after name.
func NewCA(name string) (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " Root", Organization: []string{name}},
		NotBefore:             now,
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: name + " Issuing CA", Organization: []string{name}},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	inter, _ := x509.ParseCertificate(interDER)
	return &CA{
		Root: root, Intermediate: inter,
		RootPEM:         encode("CERTIFICATE", rootDER),
		IntermediatePEM: encode("CERTIFICATE", interDER),
		rootKey:         rootKey,
		interKey:        interKey,
		serial:          time.Now().UnixNano(),
	}, nil
}

// rsaIssuer returns the CA's second intermediate, whose key is RSA 2048 so that the
// leaves it signs are sha256WithRSAEncryption, as those of Let's Encrypt's RSA
// intermediates are. It is made on first use and then kept.
func (ca *CA) rsaIssuer() (*issuer, error) {
	ca.rsaOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			ca.rsaErr = fmt.Errorf("testpki: RSA intermediate key: %w", err)
			return
		}
		now := ca.Intermediate.NotBefore
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(3),
			Subject:               pkix.Name{CommonName: ca.Root.Subject.Organization[0] + " RSA Issuing CA", Organization: ca.Root.Subject.Organization},
			NotBefore:             now,
			NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, key.Public(), ca.rootKey)
		if err != nil {
			ca.rsaErr = fmt.Errorf("testpki: RSA intermediate: %w", err)
			return
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			ca.rsaErr = fmt.Errorf("testpki: RSA intermediate: %w", err)
			return
		}
		ca.rsaInter = &issuer{cert: cert, pem: encode("CERTIFICATE", der), key: key}
	})
	return ca.rsaInter, ca.rsaErr
}

// MustNewCA is NewCA for tests.
func MustNewCA(name string) *CA {
	ca, err := NewCA(name)
	if err != nil {
		panic(err)
	}
	return ca
}

// Options describe one leaf.
type Options struct {
	Domains   []string // first is the common name; at least one
	NotBefore time.Time
	NotAfter  time.Time
	Key       KeyType
	// RSAIssuer issues through a second intermediate, whose key is RSA, instead of the
	// default ECDSA one, so that the leaf is signed sha256WithRSAEncryption.
	RSAIssuer bool
}

// Issue mints a leaf certificate and a fresh key. Zero dates mean "from an hour ago for
// 90 days", like a Let's Encrypt certificate.
func (ca *CA) Issue(o Options) (*Issued, error) {
	if len(o.Domains) == 0 {
		return nil, fmt.Errorf("testpki: at least one domain is required")
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = o.NotBefore.Add(90 * 24 * time.Hour)
	}
	var key crypto.Signer
	var err error
	switch o.Key {
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	parent := &issuer{cert: ca.Intermediate, pem: ca.IntermediatePEM, key: ca.interKey}
	if o.RSAIssuer {
		if parent, err = ca.rsaIssuer(); err != nil {
			return nil, err
		}
	}
	ca.mu.Lock()
	ca.serial++
	serial := big.NewInt(ca.serial)
	ca.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.Domains[0]},
		DNSNames:     o.Domains,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{
		Cert:         cert,
		CertPEM:      encode("CERTIFICATE", der),
		KeyPEM:       encode("PRIVATE KEY", keyDER),
		Intermediate: parent.pem,
	}, nil
}

// MustIssue is Issue for tests.
func (ca *CA) MustIssue(domains ...string) *Issued {
	i, err := ca.Issue(Options{Domains: domains})
	if err != nil {
		panic(err)
	}
	return i
}

func encode(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}
