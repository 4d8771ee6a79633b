package hostile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The token builders below write the JWS by hand, so that a header can say anything
// (alg none, jku, x5c...) and no JWT library decides what is "valid" for the attacker.

var b64 = base64.RawURLEncoding

const (
	sha256Hash = crypto.SHA256
	sha512Hash = crypto.SHA512
)

// segment encodes v as a JWS segment: []byte and string verbatim, anything else as JSON.
func segment(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case []byte:
		return b64.EncodeToString(x)
	case string:
		return b64.EncodeToString([]byte(x))
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b64.EncodeToString(b)
}

type signer func(t *testing.T, signingInput string) []byte

// jws builds header.payload.signature.
func jws(t *testing.T, header, payload any, sign signer) string {
	t.Helper()
	in := segment(t, header) + "." + segment(t, payload)
	var sig []byte
	if sign != nil {
		sig = sign(t, in)
	}
	return in + "." + b64.EncodeToString(sig)
}

func rsaPKCS1(key *rsa.PrivateKey, h crypto.Hash) signer {
	return func(t *testing.T, in string) []byte {
		t.Helper()
		var sum []byte
		switch h {
		case crypto.SHA256:
			s := sha256.Sum256([]byte(in))
			sum = s[:]
		case crypto.SHA512:
			s := sha512.Sum512([]byte(in))
			sum = s[:]
		default:
			t.Fatalf("hash %v", h)
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, sum)
		require.NoError(t, err)
		return sig
	}
}

func rsaPSS256(key *rsa.PrivateKey) signer {
	return func(t *testing.T, in string) []byte {
		t.Helper()
		sum := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], nil)
		require.NoError(t, err)
		return sig
	}
}

func hmac256(secret []byte) signer {
	return func(_ *testing.T, in string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

// ecdsa256 is ES256 as RFC 7518 §3.4 defines it: r||s, 32 bytes each.
func ecdsa256(key *ecdsa.PrivateKey) signer {
	return func(t *testing.T, in string) []byte {
		t.Helper()
		sum := sha256.Sum256([]byte(in))
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		require.NoError(t, err)
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func rs256Header() map[string]any { return map[string]any{"alg": "RS256"} }

// splice replaces segment i (0 header, 1 payload, 2 signature) of a compact JWS.
func splice(tok string, i int, seg string) string {
	parts := strings.Split(tok, ".")
	parts[i] = seg
	return strings.Join(parts, ".")
}

func publicPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// jwk is the RFC 7517 form of an RSA public key.
func jwk(pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "attacker",
		"n": b64.EncodeToString(pub.N.Bytes()),
		"e": b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// selfSigned is a certificate for key, for x5c and x5u.
func selfSigned(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "Certificate Manager notifications"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return der
}

func newRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func newEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}
