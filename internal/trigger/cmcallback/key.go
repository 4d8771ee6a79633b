package cmcallback

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// minRSABits refuses keys an attacker could factor; Certificate Manager uses RSA-2048
// (the captured signatures are 256 bytes).
const minRSABits = 2048

// ParsePublicKeyPEM parses exactly one PEM block holding an RSA public key, as SPKI
// ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY"): the format of the public-key endpoint is
// undocumented and IBM's Node samples accept both. Certificates are not accepted: the
// endpoint serves a bare key and a certificate here would mean a confused caller.
// Errors describe the problem, never the key bytes.
func ParsePublicKeyPEM(s string) (*rsa.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("public key is not PEM encoded")
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, errors.New("public key PEM has more than one block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("public key PEM has trailing data")
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("public key PEM has headers (encrypted?)")
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, errors.New("public key: invalid SPKI encoding")
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, not RSA", k)
		}
		pub = rk
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, errors.New("public key: invalid PKCS#1 encoding")
		}
		pub = k
	default:
		return nil, fmt.Errorf("public key PEM block is %.40q, want PUBLIC KEY or RSA PUBLIC KEY", block.Type)
	}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("public key is RSA-%d, want at least %d bits", bits, minRSABits)
	}
	return pub, nil
}
