package cmcallback

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
)

func FuzzExtractToken(f *testing.F) {
	for _, s := range []string{
		`{"data":"a.b.c"}`, `{"data":"a.b.c","data":"d.e.f"}`, `{"data":"a.b.c","DATA":"x"}`,
		`{"data":1}`, `{"data":null}`, `["a.b.c"]`, `"a.b.c"`, ``, `{"data":"a.b.c"} {}`,
		`{"x":[1,{"y":null}],"data":"a.b.c"}`, `{"data":"a\u002eb"}`, `{"dat\u0061":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		token, err := ExtractToken(body)
		if err != nil {
			require.Empty(t, token)
			status := HTTPStatus(err)
			require.True(t, status == 400 || status == 413, "status %d for %v", status, err)
			return
		}
		require.NotEmpty(t, token)
		// Whatever we accept, encoding/json must read the same way: no parser
		// differential on the body.
		var std map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &std))
		var data string
		require.NoError(t, json.Unmarshal(std["data"], &data))
		require.Equal(t, data, token)
	})
}

// FuzzVerify has two halves. token is verified as is: whatever it is, success requires
// a real RS256 signature by the configured key over its first two segments (checked
// independently of jwt). payload is signed with the configured key, which drives the
// strict decoder: it must never panic, and success must mean every documented
// invariant holds.
func FuzzVerify(f *testing.F) {
	k := keys()
	for _, tc := range hostileCases("http://127.0.0.1:1") {
		if tc.want == ErrTooLarge {
			continue // a megabyte seed only slows the fuzzer down
		}
		tok := tc.token(f)
		payload := []byte(`{}`)
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			if p, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				payload = p
			}
		}
		f.Add(tok, payload)
	}
	for _, name := range []string{"v4_test_notification_channel.json", "v4_cert_about_to_expire_reimport_required.json"} {
		b, err := os.ReadFile("testdata/" + name)
		require.NoError(f, err)
		f.Add(signPayload(f, k.source, b), b)
	}
	f.Add(signPayload(f, k.source, domainValidation(EventCertDomainValidationRequired)), toJSON(f, domainValidation(EventCertDomainValidationCompleted)))
	f.Add(signPayload(f, k.source, lifecycle(2, EventCertReimported)), toJSON(f, lifecycle(3, EventCertReimported)))

	v := staticVerifier(f)
	pub := &k.source.PublicKey
	f.Fuzz(func(t *testing.T, token string, payload []byte) {
		ctx := context.Background()
		if n, err := v.Verify(ctx, token); err == nil {
			require.True(t, signedBy(pub, token), "accepted a token not signed by the configured key")
			checkInvariants(t, n)
		} else {
			require.Nil(t, n)
			require.NotEqual(t, 500, HTTPStatus(err), "unclassified error %v", err)
		}
		if len(payload) > 64<<10 {
			return // signing is the slow part; big payloads add nothing
		}
		signed := signPayload(t, k.source, payload)
		if n, err := v.Verify(ctx, signed); err == nil {
			checkInvariants(t, n)
		} else {
			require.NotEqual(t, 500, HTTPStatus(err), "unclassified error %v", err)
		}
	})
}

// signedBy verifies RS256 by hand: header says RS256 and the signature over the first
// two segments verifies with pub.
func signedBy(pub *rsa.PublicKey, token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h map[string]any
	if json.Unmarshal(hdr, &h) != nil || h["alg"] != "RS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
}

func checkInvariants(t *testing.T, n *Notification) {
	t.Helper()
	require.NotNil(t, n)
	require.Equal(t, srcCRN, n.InstanceCRN)
	require.NotEmpty(t, n.EventType)
	require.Contains(t, []int{2, 3, 4}, n.Version)
	for _, c := range n.CertificateCRNs() {
		require.True(t, crn.CertificateBelongsTo(c, srcCRN), "foreign certificate %q accepted", c)
	}
	if Classify(n.EventType) != Replicate {
		require.Empty(t, n.CertificatesToCopy())
	}
}
