package cmcallback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExtractToken(t *testing.T) {
	big := []byte(`{"data":"` + strings.Repeat("a", MaxBodySize) + `"}`)
	tests := []struct {
		name string
		body string
		want string
		err  error
	}{
		{name: "valid", body: `{"data":"a.b.c"}`, want: "a.b.c"},
		{name: "whitespace and other keys", body: " {\n\"other\": [1,{\"x\":null}], \"data\" : \"a.b.c\" }\n", want: "a.b.c"},
		{name: "escaped", body: `{"data":"a\u002eb.c"}`, want: "a.b.c"},
		{name: "duplicate data", body: `{"data":"a.b.c","data":"d.e.f"}`, err: ErrMalformed},
		{name: "duplicate data differing in case", body: `{"data":"a.b.c","DATA":"d.e.f"}`, err: ErrMalformed},
		{name: "duplicate data via escape", body: `{"data":"a.b.c","d\u0061ta":"d.e.f"}`, err: ErrMalformed},
		{name: "duplicate other key", body: `{"x":1,"x":2,"data":"a.b.c"}`, err: ErrMalformed},
		{name: "missing data", body: `{"token":"a.b.c"}`, err: ErrMalformed},
		{name: "empty data", body: `{"data":""}`, err: ErrMalformed},
		{name: "null data", body: `{"data":null}`, err: ErrMalformed},
		{name: "data is a number", body: `{"data":1}`, err: ErrMalformed},
		{name: "data is an object", body: `{"data":{"jwt":"a.b.c"}}`, err: ErrMalformed},
		{name: "data is an array", body: `{"data":["a.b.c"]}`, err: ErrMalformed},
		{name: "array body", body: `["a.b.c"]`, err: ErrMalformed},
		{name: "string body", body: `"a.b.c"`, err: ErrMalformed},
		{name: "raw token body", body: `a.b.c`, err: ErrMalformed},
		{name: "null body", body: `null`, err: ErrMalformed},
		{name: "empty body", body: ``, err: ErrMalformed},
		{name: "truncated", body: `{"data":"a.b.c"`, err: ErrMalformed},
		{name: "trailing object", body: `{"data":"a.b.c"} {"data":"d.e.f"}`, err: ErrMalformed},
		{name: "trailing garbage", body: `{"data":"a.b.c"}x`, err: ErrMalformed},
		{name: "over 1 MB", body: string(big), err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractToken([]byte(tt.body))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				assert.Empty(t, got)
				if len(tt.body) < 100 && tt.body != "" {
					assert.NotContains(t, err.Error(), "a.b.c", "error must not echo the token")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestVerifyValid(t *testing.T) {
	type tc struct {
		name    string
		payload obj
		action  Action
	}
	var cases []tc
	for _, ev := range []string{
		EventTestNotificationChannel, EventCertAboutToExpireReimportRequired, EventCertExpiredReimportRequired,
		EventCertReimported, EventCertIssued, EventCertRenewed, EventCertOrderFailed, EventCertRenewFailed,
		EventCertAboutToExpireRenewRequired, EventCertExpiredRenewRequired,
		EventCertIssuedNotDownloaded, EventCertRenewedNotDownloaded,
	} {
		cases = append(cases, tc{name: "v4 " + ev, payload: lifecycle(4, ev), action: Classify(ev)})
	}
	for _, ev := range []string{EventCertDomainValidationRequired, EventCertDomainValidationCompleted} {
		cases = append(cases, tc{name: "v4 " + ev, payload: domainValidation(ev), action: AcknowledgeOnly})
	}
	// Channel versions 2 and 3 know the reimport-related events and the test.
	for _, version := range []int{2, 3} {
		for _, ev := range []string{EventCertReimported, EventCertAboutToExpireReimportRequired, EventCertExpiredReimportRequired, EventTestNotificationChannel} {
			cases = append(cases, tc{name: fmt.Sprintf("v%d %s", version, ev), payload: lifecycle(version, ev), action: Classify(ev)})
		}
	}
	cases = append(cases,
		tc{name: "v4 two certificates", payload: lifecycle(4, EventCertRenewed, certOf(4, srcCert), certOf(4, srcCert2)), action: Replicate},
		tc{name: "v4 renewed with auto_renewed", payload: lifecycle(4, EventCertRenewed, with(certOf(4, srcCert), "auto_renewed", true)), action: Replicate},
		tc{name: "v4 unknown event is acknowledged", payload: lifecycle(4, "cert_deleted"), action: Unknown},
		tc{name: "v4 unknown event without certificates", payload: with(lifecycle(4, "cert_something_new"), "certificates", nil), action: Unknown},
		tc{name: "v4 unknown extra fields are ignored", payload: with(lifecycle(4, EventCertIssued), "new_field", obj{"x": []any{1, "y"}}), action: Replicate},
		tc{name: "v4 exp in the future and nbf in the past", payload: with(lifecycle(4, EventCertIssued), "exp", testNow.Add(time.Hour).Unix(), "nbf", testNow.Add(-time.Hour).Unix()), action: Replicate},
		tc{name: "v4 exp just passed, within leeway", payload: with(lifecycle(4, EventCertIssued), "exp", testNow.Add(-30*time.Second).Unix()), action: Replicate},
		tc{name: "v4 nbf just ahead, within leeway", payload: with(lifecycle(4, EventCertIssued), "nbf", testNow.Add(30*time.Second).Unix()), action: Replicate},
		tc{name: "v4 null optional fields", payload: with(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "additional_info", nil, "auto_renewed", nil)), "latestVersion", nil, "expiry_date", nil), action: Replicate},
	)

	v := staticVerifier(t)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			n, err := v.Verify(context.Background(), signPayload(t, keys().source, tt.payload))
			require.NoError(t, err)
			assert.Equal(t, srcCRN, n.InstanceCRN)
			assert.Equal(t, tt.payload["event_type"], n.EventType)
			assert.Equal(t, tt.payload["version"], n.Version)
			assert.Equal(t, tt.action, Classify(n.EventType))
			if isDomainValidation(n.EventType) {
				require.NotNil(t, n.DomainValidation)
				assert.Equal(t, DomainValidation{
					CertificateCRN: srcCert, Domain: "*.example.com", Method: "dns-01",
					Challenge: Challenge{TXTRecordName: "_acme-challenge", TXTRecordValue: "dGhlIGNoYWxsZW5nZQ"},
				}, *n.DomainValidation)
				assert.Empty(t, n.Certificates)
				assert.Empty(t, n.CertificatesToCopy())
				return
			}
			assert.Nil(t, n.DomainValidation)
			if certs, ok := tt.payload["certificates"].([]any); ok {
				require.Len(t, n.Certificates, len(certs))
				for i, c := range n.Certificates {
					assert.Equal(t, certs[i].(obj)["cert_crn"], c.CRN)
					assert.Equal(t, "example.com", c.Name)
					assert.Equal(t, []string{"example.com", "*.example.com"}, c.Domains)
					if n.Version >= 3 {
						assert.Equal(t, time.UnixMilli(1623293628000).UTC(), c.ExpiresOn)
					} else {
						assert.True(t, c.ExpiresOn.IsZero())
					}
				}
			}
			if tt.action == Replicate {
				assert.Equal(t, n.Certificates, n.CertificatesToCopy())
			} else {
				assert.Empty(t, n.CertificatesToCopy())
			}
		})
	}
}

// TestCapturedPayloads signs the two real payloads of docs/services/certificate-manager.md
// §11.4 byte for byte
// (the originals' key is not public) and checks every decoded field.
func TestCapturedPayloads(t *testing.T) {
	load := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		require.NoError(t, err)
		return bytes.TrimSpace(b)
	}
	v := staticVerifier(t)
	url := "https://cloud.ibm.com/services/cloudcerts/crn%3Av1%3Abluemix%3Apublic%3Acloudcerts%3Aus-south%3Aa%2F30f0a21f77994b9eb414b37300e2ced1%3A91a17928-da3c-4465-9c4b-f1a6b4dce684%3A%3A"

	t.Run("test_notification_channel", func(t *testing.T) {
		n, err := v.Verify(context.Background(), signPayload(t, keys().source, load("v4_test_notification_channel.json")))
		require.NoError(t, err)
		assert.Equal(t, &Notification{
			InstanceCRN: srcCRN,
			ManagerURL:  url,
			EventType:   EventTestNotificationChannel,
			Certificates: []Certificate{{
				CRN:     dummyCert,
				Name:    "certificate name",
				Domains: []string{"notification.test.com"},
				// The test event sends expires_on as an ISO-8601 string.
				ExpiresOn: time.Date(2021, 7, 3, 12, 0, 0, 0, time.UTC),
			}},
			Version:       4,
			LatestVersion: 4,
		}, n)
		assert.Equal(t, Test, Classify(n.EventType))
		assert.Empty(t, n.CertificatesToCopy(), "the test event's dummy certificate must never be copied")
	})

	t.Run("cert_about_to_expire_reimport_required", func(t *testing.T) {
		n, err := v.Verify(context.Background(), signPayload(t, keys().source, load("v4_cert_about_to_expire_reimport_required.json")))
		require.NoError(t, err)
		assert.Equal(t, &Notification{
			InstanceCRN: srcCRN,
			ManagerURL:  url,
			EventType:   EventCertAboutToExpireReimportRequired,
			ExpiryDate:  time.Date(2021, 6, 10, 0, 0, 0, 0, time.UTC),
			Certificates: []Certificate{{
				CRN:       srcCert,
				Name:      "zoenixon.com",
				Domains:   []string{"*.zoenixon.com"},
				ExpiresOn: time.Date(2021, 6, 10, 2, 53, 48, 0, time.UTC),
			}},
			Version:       4,
			LatestVersion: 4,
		}, n)
		assert.Equal(t, AcknowledgeOnly, Classify(n.EventType))
		assert.Empty(t, n.CertificatesToCopy())
	})
}

func TestDecodeFields(t *testing.T) {
	v := staticVerifier(t)
	renewed := with(certOf(4, srcCert),
		"auto_renewed", false,
		"previous_expires_on", 1600000000000,
		"additional_info", "order failed: rate limited",
		"domains", " a.example.com , ,b.example.com,",
		"expires_on", 1.623293628e12, // a whole number of ms in exponent form
	)
	n, err := v.Verify(context.Background(), signPayload(t, keys().source, lifecycle(4, EventCertRenewedNotDownloaded, renewed)))
	require.NoError(t, err)
	c := n.Certificates[0]
	require.NotNil(t, c.AutoRenewed)
	assert.False(t, *c.AutoRenewed)
	assert.Equal(t, time.UnixMilli(1600000000000).UTC(), c.PreviousExpiresOn)
	assert.Equal(t, time.UnixMilli(1623293628000).UTC(), c.ExpiresOn)
	assert.Equal(t, "order failed: rate limited", c.AdditionalInfo)
	assert.Equal(t, []string{"a.example.com", "b.example.com"}, c.Domains)
}

// hostileCase is one token that must be refused. The same table seeds the fuzz targets.
type hostileCase struct {
	name  string
	token func(tb testing.TB) string
	want  error
}

func hostileCases(jku string) []hostileCase {
	k := keys()
	srcKey, attacker := k.source, k.attacker
	valid := func(tb testing.TB) string { return signPayload(tb, srcKey, lifecycle(4, EventCertIssued)) }
	signed := func(p obj) func(testing.TB) string {
		return func(tb testing.TB) string { return signPayload(tb, srcKey, p) }
	}
	signedRaw := func(raw string) func(testing.TB) string {
		return func(tb testing.TB) string { return signPayload(tb, srcKey, []byte(raw)) }
	}
	withHeader := func(header string, key any, m jwt.SigningMethod) func(testing.TB) string {
		return func(tb testing.TB) string {
			return signRaw(tb, m, key, header, toJSON(tb, lifecycle(4, EventCertIssued)))
		}
	}
	parts := func(tb testing.TB) []string { return strings.Split(valid(tb), ".") }
	foreign := func(certCRN string) func(testing.TB) string {
		return signed(lifecycle(4, EventCertIssued, certOf(4, certCRN)))
	}
	base := lifecycle(4, EventCertIssued)
	baseBytes, err := json.Marshal(base)
	if err != nil {
		panic(err)
	}
	baseJSON := string(baseBytes)

	return []hostileCase{
		// Not a token at all.
		{name: "empty", token: func(testing.TB) string { return "" }, want: ErrMalformed},
		{name: "garbage", token: func(testing.TB) string { return "this is not a jwt" }, want: ErrMalformed},
		{name: "two segments", token: func(tb testing.TB) string { p := parts(tb); return p[0] + "." + p[1] }, want: ErrMalformed},
		{name: "four segments", token: func(tb testing.TB) string { return valid(tb) + ".x" }, want: ErrMalformed},
		{name: "padded base64", token: func(tb testing.TB) string { p := parts(tb); return p[0] + "==." + p[1] + "." + p[2] }, want: ErrMalformed},
		{name: "standard base64 alphabet", token: func(tb testing.TB) string {
			p := parts(tb)
			return p[0] + "." + p[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(p[2]) + "+/"
		}, want: ErrMalformed},
		{name: "header not JSON", token: func(tb testing.TB) string { p := parts(tb); return b64([]byte("RS256")) + "." + p[1] + "." + p[2] }, want: ErrMalformed},
		{name: "over 1 MB", token: func(tb testing.TB) string {
			return signPayload(tb, srcKey, with(base, "padding", strings.Repeat("x", MaxBodySize)))
		}, want: ErrTooLarge},

		// Signature and algorithm.
		{name: "wrong key", token: func(tb testing.TB) string { return signPayload(tb, attacker, base) }, want: ErrBadSignature},
		{name: "alg none", token: func(tb testing.TB) string {
			return b64([]byte(`{"alg":"none"}`)) + "." + b64(toJSON(tb, base)) + "."
		}, want: ErrBadSignature},
		{name: "alg none with the valid signature", token: func(tb testing.TB) string {
			p := parts(tb)
			return b64([]byte(`{"alg":"none"}`)) + "." + p[1] + "." + p[2]
		}, want: ErrBadSignature},
		{name: "alg None", token: func(tb testing.TB) string {
			return b64([]byte(`{"alg":"None"}`)) + "." + b64(toJSON(tb, base)) + "."
		}, want: ErrBadSignature},
		{name: "HS256 keyed with the public key PEM", token: func(tb testing.TB) string {
			return withHeader(`{"alg":"HS256"}`, []byte(pemSPKI(tb, &srcKey.PublicKey)), jwt.SigningMethodHS256)(tb)
		}, want: ErrBadSignature},
		{name: "HS256 keyed with the PKCS#1 public key PEM", token: func(tb testing.TB) string {
			return withHeader(`{"alg":"HS256"}`, []byte(pemPKCS1(&srcKey.PublicKey)), jwt.SigningMethodHS256)(tb)
		}, want: ErrBadSignature},
		{name: "RS512 with the right key", token: withHeader(`{"alg":"RS512"}`, srcKey, jwt.SigningMethodRS512), want: ErrBadSignature},
		{name: "RS384 with the right key", token: withHeader(`{"alg":"RS384"}`, srcKey, jwt.SigningMethodRS384), want: ErrBadSignature},
		{name: "PS256 with the right key", token: withHeader(`{"alg":"PS256"}`, srcKey, jwt.SigningMethodPS256), want: ErrBadSignature},
		{name: "ES256", token: withHeader(`{"alg":"ES256"}`, k.ec, jwt.SigningMethodES256), want: ErrBadSignature},
		{name: "RS256 signature relabelled RS512", token: func(tb testing.TB) string {
			p := parts(tb)
			return b64([]byte(`{"alg":"RS512"}`)) + "." + p[1] + "." + p[2]
		}, want: ErrBadSignature},
		{name: "no alg", token: withHeader(`{"typ":"JWT"}`, srcKey, jwt.SigningMethodRS256), want: ErrBadSignature},
		{name: "unknown alg", token: withHeader(`{"alg":"XS256"}`, srcKey, jwt.SigningMethodRS256), want: ErrBadSignature},
		{name: "tampered payload with the original signature", token: func(tb testing.TB) string {
			p := parts(tb)
			forged := lifecycle(4, EventCertIssued, certOf(4, srcCert2))
			return p[0] + "." + b64(toJSON(tb, forged)) + "." + p[2]
		}, want: ErrBadSignature},
		{name: "tampered payload, one byte", token: func(tb testing.TB) string {
			p := parts(tb)
			raw := []byte(strings.Replace(baseJSON, "cert_issued", "cert_issuer", 1))
			return p[0] + "." + b64(raw) + "." + p[2]
		}, want: ErrBadSignature},
		{name: "header with kid added after signing", token: func(tb testing.TB) string {
			p := parts(tb)
			return b64([]byte(`{"alg":"RS256","kid":"x"}`)) + "." + p[1] + "." + p[2]
		}, want: ErrBadSignature},
		{name: "truncated signature", token: func(tb testing.TB) string { p := parts(tb); return p[0] + "." + p[1] + "." + p[2][:40] }, want: ErrBadSignature},
		{name: "empty signature", token: func(tb testing.TB) string { p := parts(tb); return p[0] + "." + p[1] + "." }, want: ErrBadSignature},
		{name: "kid jku x5u pointing at the attacker's key", token: withHeader(
			`{"alg":"RS256","kid":"attacker","jku":"`+jku+`/jwks.json","x5u":"`+jku+`/cert.pem","jwk":{"kty":"RSA"}}`,
			attacker, jwt.SigningMethodRS256), want: ErrBadSignature},
		{name: "other instance's own token and key", token: func(tb testing.TB) string {
			return signPayload(tb, attacker, with(base, "instance_crn", otherCRN, "certificates", []any{certOf(4, otherCert)}))
		}, want: ErrBadSignature},

		// Signed with the right key, header not acceptable.
		{name: "duplicate alg in header", token: withHeader(`{"alg":"RS256","alg":"RS256"}`, srcKey, jwt.SigningMethodRS256), want: ErrMalformed},
		{name: "crit header", token: withHeader(`{"alg":"RS256","crit":["exp"],"exp":1}`, srcKey, jwt.SigningMethodRS256), want: ErrMalformed},

		// Signed with the right key, for another instance.
		{name: "other instance", token: signed(with(base, "instance_crn", otherCRN, "certificates", []any{certOf(4, otherCert)})), want: ErrWrongInstance},
		{name: "instance with trailing space", token: signed(with(base, "instance_crn", srcCRN+" ")), want: ErrWrongInstance},
		{name: "instance upper case", token: signed(with(base, "instance_crn", strings.ToUpper(srcCRN))), want: ErrWrongInstance},
		{name: "instance without trailing colons", token: signed(with(base, "instance_crn", strings.TrimSuffix(srcCRN, "::"))), want: ErrWrongInstance},
		{name: "duplicate instance_crn, ours last", token: signedRaw(`{"instance_crn":"` + otherCRN + `",` + baseJSON[1:]), want: ErrMalformed},
		{name: "duplicate instance_crn, ours first", token: signedRaw(baseJSON[:len(baseJSON)-1] + `,"instance_crn":"` + otherCRN + `"}`), want: ErrMalformed},
		{name: "duplicate instance_crn differing in case", token: signedRaw(baseJSON[:len(baseJSON)-1] + `,"INSTANCE_CRN":"` + otherCRN + `"}`), want: ErrMalformed},
		// encoding/json folds "ſ" (U+017F) to "s": to a struct decoder this is instance_crn.
		{name: "duplicate instance_crn with a long s", token: signedRaw(baseJSON[:len(baseJSON)-1] + `,"inſtance_crn":"` + otherCRN + `"}`), want: ErrMalformed},

		// Signed, with a certificate of someone else.
		{name: "cert of another instance", token: foreign(otherCert), want: ErrForeignCertificate},
		{name: "cert of another account", token: foreign(otherAcctCert), want: ErrForeignCertificate},
		{name: "cert in another region", token: foreign(otherRegCert), want: ErrForeignCertificate},
		{name: "cert in staging", token: foreign(stagingCert), want: ErrForeignCertificate},
		{name: "cert with ../", token: foreign(srcPrefix + "certificate:../../" + otherGUID), want: ErrForeignCertificate},
		{name: "cert with %2F", token: foreign(srcPrefix + "certificate:abc%2F..%2F" + otherGUID), want: ErrForeignCertificate},
		{name: "cert with a space", token: foreign(srcPrefix + "certificate:abc def"), want: ErrForeignCertificate},
		{name: "cert with trailing space", token: foreign(srcCert + " "), want: ErrForeignCertificate},
		{name: "cert with newline", token: foreign(srcCert + "\n"), want: ErrForeignCertificate},
		{name: "cert with unicode look-alike", token: foreign(srcPrefix + "certificate:071dfc45f85442e0c840196317e1аfe6"), want: ErrForeignCertificate},
		{name: "cert with fullwidth colon", token: foreign(strings.Replace(srcCert, ":certificate:", "：certificate：", 1)), want: ErrForeignCertificate},
		{name: "cert is the instance CRN", token: foreign(srcCRN), want: ErrForeignCertificate},
		{name: "cert with an extra field", token: foreign(srcCert + ":x"), want: ErrForeignCertificate},
		{name: "cert upper case", token: foreign(strings.ToUpper(srcCert)), want: ErrForeignCertificate},
		{name: "cert second of two is foreign", token: signed(lifecycle(4, EventCertRenewed, certOf(4, srcCert), certOf(4, otherCert))), want: ErrForeignCertificate},
		{name: "cert foreign in an unknown event", token: signed(lifecycle(4, "cert_new_kind", certOf(4, otherCert))), want: ErrForeignCertificate},
		{name: "domain validation for a foreign cert", token: signed(with(domainValidation(EventCertDomainValidationRequired), "certificateCRN", otherCert)), want: ErrForeignCertificate},

		// Versions.
		{name: "version 1 template", token: signed(obj{
			"instance_crn": srcCRN, "certificate_manager_url": "x", "expiry_date": 1623283200000,
			"expiring_certificates": []any{certOf(2, srcCert)}, "version": 1, "latestVersion": 4,
		}), want: ErrUnsupportedVersion},
		{name: "version 1 with event type", token: signed(with(base, "version", 1)), want: ErrUnsupportedVersion},
		{name: "version 5", token: signed(with(base, "version", 5)), want: ErrUnsupportedVersion},
		{name: "version 0", token: signed(with(base, "version", 0)), want: ErrUnsupportedVersion},
		{name: "version missing", token: signed(with(base, "version", nil)), want: ErrUnsupportedVersion},
		{name: "version 4 with expiring_certificates", token: signed(with(base, "expiring_certificates", []any{})), want: ErrUnsupportedVersion},
		{name: "domain validation in version 3", token: signed(with(domainValidation(EventCertDomainValidationRequired), "version", 3)), want: ErrUnsupportedVersion},

		// Signed, malformed payload.
		{name: "payload not an object", token: signedRaw(`[` + baseJSON + `]`), want: ErrMalformed},
		{name: "payload null", token: signedRaw(`null`), want: ErrMalformed},
		{name: "payload string", token: signedRaw(`"` + srcCRN + `"`), want: ErrMalformed},
		{name: "payload empty object", token: signedRaw(`{}`), want: ErrMalformed},
		{name: "payload with trailing object", token: signedRaw(baseJSON + `{"instance_crn":"x"}`), want: ErrMalformed},
		{name: "missing instance_crn", token: signed(with(base, "instance_crn", nil)), want: ErrMalformed},
		{name: "missing event_type", token: signed(with(base, "event_type", nil)), want: ErrMalformed},
		{name: "instance_crn is a number", token: signed(with(base, "instance_crn", 1)), want: ErrMalformed},
		{name: "event_type is an array", token: signed(with(base, "event_type", []any{"cert_issued"})), want: ErrMalformed},
		{name: "version is a string", token: signed(with(base, "version", "4")), want: ErrMalformed},
		{name: "version is fractional", token: signed(with(base, "version", 4.5)), want: ErrMalformed},
		{name: "certificates is an object", token: signed(with(base, "certificates", certOf(4, srcCert))), want: ErrMalformed},
		{name: "certificates missing for a lifecycle event", token: signed(with(base, "certificates", nil)), want: ErrMalformed},
		{name: "certificate is a string", token: signed(with(base, "certificates", []any{srcCert})), want: ErrMalformed},
		{name: "cert_crn missing", token: signed(lifecycle(4, EventCertIssued, obj{"name": "x"})), want: ErrMalformed},
		{name: "domains is an array", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "domains", []any{"a.com"}))), want: ErrMalformed},
		{name: "expires_on is a bool", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "expires_on", true))), want: ErrMalformed},
		{name: "expires_on is not a date", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "expires_on", "next week"))), want: ErrMalformed},
		{name: "expires_on is fractional ms", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "expires_on", 1623293628000.5))), want: ErrMalformed},
		{name: "expires_on is negative", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "expires_on", -1))), want: ErrMalformed},
		{name: "expires_on is huge", token: signed(lifecycle(4, EventCertIssued, with(certOf(4, srcCert), "expires_on", 1e300))), want: ErrMalformed},
		{name: "auto_renewed is a string", token: signed(lifecycle(4, EventCertRenewed, with(certOf(4, srcCert), "auto_renewed", "true"))), want: ErrMalformed},
		{name: "duplicate cert_crn in a certificate", token: signedRaw(strings.Replace(baseJSON, `"cert_crn":`, `"cert_crn":"`+otherCert+`","cert_crn":`, 1)), want: ErrMalformed},
		{name: "duplicate cert_crn differing in case", token: signedRaw(strings.Replace(baseJSON, `"cert_crn":`, `"Cert_Crn":"`+otherCert+`","cert_crn":`, 1)), want: ErrMalformed},
		{name: "duplicate certificates", token: signedRaw(baseJSON[:len(baseJSON)-1] + `,"certificates":[]}`), want: ErrMalformed},
		{name: "duplicate key in challenge", token: func(tb testing.TB) string {
			dv := string(toJSON(tb, domainValidation(EventCertDomainValidationRequired)))
			return signPayload(tb, srcKey, []byte(strings.Replace(dv, `"txt_record_name":`, `"txt_record_name":"evil","txt_record_name":`, 1)))
		}, want: ErrMalformed},
		{name: "domain validation without certificateCRN", token: signed(with(domainValidation(EventCertDomainValidationRequired), "certificateCRN", nil)), want: ErrMalformed},
		{name: "challenge is a string", token: signed(with(domainValidation(EventCertDomainValidationRequired), "challenge", "x")), want: ErrMalformed},
		{name: "exp is a string", token: signed(with(base, "exp", "tomorrow")), want: ErrMalformed},

		// Signed, outside exp/nbf.
		{name: "exp in the past", token: signed(with(base, "exp", testNow.Add(-2*time.Minute).Unix())), want: ErrExpired},
		{name: "exp exactly now minus leeway", token: signed(with(base, "exp", testNow.Add(-time.Minute).Unix())), want: ErrExpired},
		{name: "nbf in the future", token: signed(with(base, "nbf", testNow.Add(2*time.Minute).Unix())), want: ErrExpired},
	}
}

func TestVerifyRejects(t *testing.T) {
	var hits atomic.Int64
	jkuSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(pemSPKI(t, &keys().attacker.PublicKey)))
	}))
	defer jkuSrv.Close()

	pemKey := pemSPKI(t, &keys().source.PublicKey)
	pemBody := strings.Join(strings.Split(pemKey, "\n")[1:3], "")

	for _, tc := range hostileCases(jkuSrv.URL) {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token(t)
			f := &fetcher{pem: pemKey}
			verifiers := map[string]*Verifier{"static": staticVerifier(t), "fetching": fetchingVerifier(t, f, newClock())}
			for kind, v := range verifiers {
				n, err := v.Verify(context.Background(), token)
				require.Error(t, err, kind)
				assert.Nil(t, n, kind)
				assert.ErrorIs(t, err, tc.want, "%s: %v", kind, err)
				assert.Equal(t, HTTPStatus(tc.want), HTTPStatus(err), kind)
				msg := err.Error()
				for _, seg := range strings.Split(token, ".") {
					if len(seg) >= 12 {
						assert.NotContains(t, msg, seg[:12], "%s: error message contains a token segment", kind)
					}
				}
				assert.NotContains(t, msg, pemBody[:32], "%s: error message contains the key", kind)
			}
			assert.LessOrEqual(t, f.calls.Load(), int64(2), "one fetch, at most one refetch")
		})
	}
	assert.Zero(t, hits.Load(), "kid/jku/x5u must never be fetched")
}

func TestKidJkuX5uIgnored(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	header := `{"alg":"RS256","typ":"JWT","kid":"other","jku":"` + srv.URL + `","x5u":"` + srv.URL + `"}`
	token := signRaw(t, jwt.SigningMethodRS256, keys().source, header, toJSON(t, lifecycle(4, EventCertIssued)))

	f := &fetcher{pem: pemSPKI(t, &keys().source.PublicKey)}
	for _, v := range []*Verifier{staticVerifier(t), fetchingVerifier(t, f, newClock())} {
		n, err := v.Verify(context.Background(), token)
		require.NoError(t, err, "a token signed with the pinned key verifies whatever its kid/jku/x5u say")
		assert.Equal(t, EventCertIssued, n.EventType)
	}
	assert.Zero(t, hits.Load())
	assert.Equal(t, int64(1), f.calls.Load())
}

func TestClassify(t *testing.T) {
	tests := map[string]Action{
		EventCertIssued: Replicate, EventCertRenewed: Replicate, EventCertReimported: Replicate,
		EventTestNotificationChannel:           Test,
		EventCertAboutToExpireReimportRequired: AcknowledgeOnly, EventCertExpiredReimportRequired: AcknowledgeOnly,
		EventCertOrderFailed: AcknowledgeOnly, EventCertRenewFailed: AcknowledgeOnly,
		EventCertAboutToExpireRenewRequired: AcknowledgeOnly, EventCertExpiredRenewRequired: AcknowledgeOnly,
		EventCertDomainValidationRequired: AcknowledgeOnly, EventCertDomainValidationCompleted: AcknowledgeOnly,
		EventCertIssuedNotDownloaded: AcknowledgeOnly, EventCertRenewedNotDownloaded: AcknowledgeOnly,
		"": Unknown, "cert_deleted": Unknown, "CERT_ISSUED": Unknown, "cert_issued ": Unknown,
	}
	for ev, want := range tests {
		assert.Equal(t, want, Classify(ev), "%q", ev)
	}
	assert.Equal(t, "replicate", Replicate.String())
	assert.Equal(t, "unknown", Action(42).String())
	var nilN *Notification
	assert.Nil(t, nilN.CertificatesToCopy())
}

func TestNotificationLogging(t *testing.T) {
	n := Notification{
		InstanceCRN: srcCRN, ManagerURL: "https://cloud.ibm.com/secret-ish", EventType: EventCertRenewed,
		Certificates: []Certificate{{CRN: srcCert, Name: "private-name", Domains: []string{"internal.example.com"}, AdditionalInfo: "details"}},
		DomainValidation: &DomainValidation{CertificateCRN: srcCert2, Domain: "dv.example.com",
			Challenge: Challenge{TXTRecordName: "_acme-challenge", TXTRecordValue: "challenge-value"}},
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("received", "notification", n, "ptr", &n)
	for _, out := range []string{n.String(), fmt.Sprintf("%v %+v", n, &n), buf.String()} {
		assert.Contains(t, out, EventCertRenewed)
		assert.Contains(t, out, srcCRN)
		assert.Contains(t, out, srcCert)
		assert.Contains(t, out, srcCert2)
		for _, secret := range []string{"private-name", "internal.example.com", "details", "challenge-value", "dv.example.com", "secret-ish"} {
			assert.NotContains(t, out, secret)
		}
	}
	var logged map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &logged))
	assert.Equal(t, []any{srcCert, srcCert2}, logged["notification"].(map[string]any)["certificate_crns"])
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{ErrMalformed, 400},
		{ErrUnsupportedVersion, 400},
		{ErrTooLarge, 413},
		{ErrBadSignature, 401},
		{ErrExpired, 401},
		{ErrWrongInstance, 403},
		{ErrForeignCertificate, 403},
		{ErrKeyUnavailable, 503},
		{fmt.Errorf("%w: fetch: %w", ErrKeyUnavailable, context.DeadlineExceeded), 503},
		{fmt.Errorf("wrapped: %w", ErrForeignCertificate), 403},
		{errors.New("something else"), 500},
		{context.Canceled, 500},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, HTTPStatus(tt.err), "%v", tt.err)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	k := keys()
	spki := pemSPKI(t, &k.source.PublicKey)
	fetch := (&fetcher{}).Fetch
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "static SPKI", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: spki}, ok: true},
		{name: "static PKCS#1", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: pemPKCS1(&k.source.PublicKey)}, ok: true},
		{name: "static with surrounding whitespace", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: "\n" + spki + "\n\n"}, ok: true},
		{name: "fetch only", cfg: Config{SourceInstanceCRN: srcCRN, Fetch: fetch}, ok: true},
		{name: "static and fetch", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: spki, Fetch: fetch}, ok: true},
		{name: "no key", cfg: Config{SourceInstanceCRN: srcCRN}},
		{name: "empty source", cfg: Config{StaticPublicKeyPEM: spki}},
		{name: "certificate CRN as source", cfg: Config{SourceInstanceCRN: srcCert, StaticPublicKeyPEM: spki}},
		{name: "malformed source", cfg: Config{SourceInstanceCRN: "crn:v1:bluemix:public:cloudcerts:us-south:" + srcGUID + "::", StaticPublicKeyPEM: spki}},
		{name: "source with spaces", cfg: Config{SourceInstanceCRN: " " + srcCRN, StaticPublicKeyPEM: spki}},
		{name: "not PEM", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}},
		{name: "EC key", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: pemSPKI(t, &k.ec.PublicKey)}},
		{name: "RSA-1024", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: pemSPKI(t, &k.small.PublicKey)}},
		{name: "certificate PEM type", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: strings.ReplaceAll(spki, "PUBLIC KEY", "CERTIFICATE")}},
		{name: "PKCS#1 bytes labelled SPKI", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: strings.ReplaceAll(pemPKCS1(&k.source.PublicKey), "RSA PUBLIC KEY", "PUBLIC KEY")}},
		{name: "two keys", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: spki + pemSPKI(t, &k.attacker.PublicKey)}},
		{name: "trailing data", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: spki + "junk"}},
		{name: "negative leeway", cfg: Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: spki, Leeway: -time.Second}},
		{name: "negative refetch interval", cfg: Config{SourceInstanceCRN: srcCRN, Fetch: fetch, RefetchInterval: -time.Second}},
	}
	keyBody := strings.Split(spki, "\n")[1]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if tt.ok {
				require.NoError(t, err)
				require.NotNil(t, v)
				return
			}
			require.Error(t, err)
			assert.NotContains(t, err.Error(), keyBody[:32])
		})
	}
}

// TestStaticKeyNeverFetches: with a static key, no token (valid, forged, rotated) makes
// the fetcher run.
func TestStaticKeyNeverFetches(t *testing.T) {
	f := &fetcher{pem: pemSPKI(t, &keys().rotated.PublicKey)}
	v, err := NewVerifier(Config{SourceInstanceCRN: srcCRN, StaticPublicKeyPEM: pemSPKI(t, &keys().source.PublicKey), Fetch: f.Fetch, Now: newClock().Now})
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), signPayload(t, keys().source, lifecycle(4, EventCertIssued)))
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), signPayload(t, keys().rotated, lifecycle(4, EventCertIssued)))
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Zero(t, f.calls.Load())
}
