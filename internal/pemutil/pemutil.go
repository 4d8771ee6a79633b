// Package pemutil checks certificate material before it is written anywhere: the PEM
// parses, the private key matches the certificate, the intermediates chain; and it
// derives the fingerprints and metadata that decide whether two copies are the same.
//
// Errors from this package describe what is wrong without ever quoting the input: the
// input holds private keys.
package pemutil

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid certificate material")

// Bundle is parsed certificate material: the leaf, its private key (nil when the
// certificate was stored without one) and its intermediates in order.
type Bundle struct {
	Leaf          *x509.Certificate
	Key           crypto.PrivateKey
	Intermediates []*x509.Certificate
}

// String never prints key material.
func (b *Bundle) String() string {
	if b == nil || b.Leaf == nil {
		return "pemutil.Bundle{}"
	}
	return fmt.Sprintf("pemutil.Bundle{leaf=%s key=%t intermediates=%d}", Fingerprint(b.Leaf)[:16], b.Key != nil, len(b.Intermediates))
}

// ParseBundle parses and checks certificate material as Certificate Manager stores it:
// content holds exactly one certificate, privKey is empty or one unencrypted private key
// that matches it, intermediate is empty or a chain of certificates each of which signed
// the one before (the first signed the leaf).
func ParseBundle(content, privKey, intermediate string) (*Bundle, error) {
	certs, err := parseCertificates(content)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrInvalid, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: certificate: want exactly one CERTIFICATE block, found %d", ErrInvalid, len(certs))
	}
	b := &Bundle{Leaf: certs[0]}
	if strings.TrimSpace(privKey) != "" {
		key, err := ParsePrivateKey(privKey)
		if err != nil {
			return nil, err
		}
		if !KeyMatches(b.Leaf, key) {
			return nil, fmt.Errorf("%w: the private key does not match the certificate", ErrInvalid)
		}
		b.Key = key
	}
	if strings.TrimSpace(intermediate) != "" {
		inters, err := parseCertificates(intermediate)
		if err != nil {
			return nil, fmt.Errorf("%w: intermediate: %v", ErrInvalid, err)
		}
		if len(inters) == 0 {
			return nil, fmt.Errorf("%w: intermediate: no CERTIFICATE block", ErrInvalid)
		}
		child := b.Leaf
		for i, in := range inters {
			if err := child.CheckSignatureFrom(in); err != nil {
				return nil, fmt.Errorf("%w: intermediate %d does not sign the certificate before it: %v", ErrInvalid, i, err)
			}
			child = in
		}
		b.Intermediates = inters
	}
	return b, nil
}

// ParseCertificate parses exactly one PEM certificate.
func ParseCertificate(s string) (*x509.Certificate, error) {
	certs, err := parseCertificates(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: want exactly one CERTIFICATE block, found %d", ErrInvalid, len(certs))
	}
	return certs[0], nil
}

func parseCertificates(s string) ([]*x509.Certificate, error) {
	rest := []byte(s)
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse block %d: %v", len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data that is not PEM")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// ParsePrivateKey parses one unencrypted PEM private key (PKCS#1, PKCS#8 or SEC 1).
// Its error never includes the key.
func ParsePrivateKey(s string) (crypto.PrivateKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("%w: private key: no PEM block", ErrInvalid)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: private key: more than one PEM block", ErrInvalid)
	}
	if x509.IsEncryptedPEMBlock(block) || block.Type == "ENCRYPTED PRIVATE KEY" { //nolint:staticcheck // detection only
		return nil, fmt.Errorf("%w: private key: encrypted keys are not supported", ErrInvalid)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: private key: malformed PKCS#1 key", ErrInvalid)
		}
		return k, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: private key: malformed EC key", ErrInvalid)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: private key: malformed PKCS#8 key", ErrInvalid)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: private key: unexpected PEM block %q", ErrInvalid, block.Type)
	}
}

// KeyMatches reports whether key is the private key of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.PrivateKey) bool {
	type publicKeyer interface{ Public() crypto.PublicKey }
	pk, ok := key.(publicKeyer)
	if !ok {
		return false
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := pk.Public().(equaler)
	if !ok {
		return false
	}
	return pub.Equal(cert.PublicKey)
}

// Fingerprint is the lower-case hex SHA-256 of the certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Digest identifies the whole bundle: leaf, key and intermediates. Two bundles with the
// same digest hold the same certificate, key and chain, whatever the PEM formatting
// (line endings, PKCS#1 or PKCS#8). It is safe to log: it is a one-way hash.
func (b *Bundle) Digest() string {
	h := sha256.New()
	writePart := func(tag string, der []byte) {
		fmt.Fprintf(h, "%s:%d:", tag, len(der))
		h.Write(der)
	}
	writePart("leaf", b.Leaf.Raw)
	if b.Key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(b.Key)
		if err == nil {
			writePart("key", der)
		} else {
			writePart("key-unmarshalable", nil)
		}
	}
	for _, in := range b.Intermediates {
		writePart("intermediate", in.Raw)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Metadata is what Certificate Manager derives from a certificate when it stores it.
type Metadata struct {
	Domains      []string
	Issuer       string
	SerialNumber string
	BeginsOn     int64 // epoch milliseconds
	ExpiresOn    int64 // epoch milliseconds
	Algorithm    string
	KeyAlgorithm string
}

// MetadataOf derives the metadata of c the way Certificate Manager reports it: the
// primary domain (common name) first, then the other DNS names; dates in epoch ms;
// OpenSSL-style algorithm names.
func MetadataOf(c *x509.Certificate) Metadata {
	var domains []string
	seen := map[string]bool{}
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			domains = append(domains, d)
		}
	}
	add(c.Subject.CommonName)
	for _, d := range c.DNSNames {
		add(d)
	}
	issuer := c.Issuer.CommonName
	if issuer == "" {
		issuer = c.Issuer.String()
	}
	return Metadata{
		Domains:      domains,
		Issuer:       issuer,
		SerialNumber: SerialString(c),
		BeginsOn:     c.NotBefore.UnixMilli(),
		ExpiresOn:    c.NotAfter.UnixMilli(),
		Algorithm:    signatureAlgorithmName(c.SignatureAlgorithm),
		KeyAlgorithm: keyAlgorithmName(c.PublicKey),
	}
}

// SerialString formats the serial number as lower-case hex pairs joined by ':'.
func SerialString(c *x509.Certificate) string {
	h := hex.EncodeToString(c.SerialNumber.Bytes())
	if len(h) == 0 {
		return "00"
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	parts := make([]string, 0, len(h)/2)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func signatureAlgorithmName(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.SHA256WithRSA:
		return "sha256WithRSAEncryption"
	case x509.SHA384WithRSA:
		return "sha384WithRSAEncryption"
	case x509.SHA512WithRSA:
		return "sha512WithRSAEncryption"
	case x509.ECDSAWithSHA256:
		return "ecdsa-with-SHA256"
	case x509.ECDSAWithSHA384:
		return "ecdsa-with-SHA384"
	case x509.ECDSAWithSHA512:
		return "ecdsa-with-SHA512"
	case x509.SHA256WithRSAPSS:
		return "rsassaPss"
	case x509.PureEd25519:
		return "ED25519"
	default:
		return a.String()
	}
}

func keyAlgorithmName(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsaEncryption %d bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("id-ecPublicKey %d bit", k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "ED25519 256 bit"
	default:
		return "unknown"
	}
}
