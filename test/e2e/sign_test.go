package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
)

func rsaSign(key *rsa.PrivateKey, signing string) ([]byte, error) {
	sum := sha256.Sum256([]byte(signing))
	return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
}
