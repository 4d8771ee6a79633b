package cmsim

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/crn"
)

// The instance of the captured 2021 notifications (docs/services/certificate-manager.md
// §10.3, §11.4).
const capturedInstance = "crn:v1:bluemix:public:cloudcerts:us-south:a/30f0a21f77994b9eb414b37300e2ced1:91a17928-da3c-4465-9c4b-f1a6b4dce684::"

// capturedTestToken is the real test_notification_channel JWT of
// docs/services/certificate-manager.md §10.3.
const capturedTestToken = "eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YW5jZV9jcm4iOiJjcm46djE6Ymx1ZW1peDpwdWJsaWM6Y2xvdWRjZXJ0czp1cy1zb3V0aDphLzMwZjBhMjFmNzc5OTRiOWViNDE0YjM3MzAwZTJjZWQxOjkxYTE3OTI4LWRhM2MtNDQ2NS05YzRiLWYxYTZiNGRjZTY4NDo6IiwiY2VydGlmaWNhdGVfbWFuYWdlcl91cmwiOiJodHRwczovL2Nsb3VkLmlibS5jb20vc2VydmljZXMvY2xvdWRjZXJ0cy9jcm4lM0F2MSUzQWJsdWVtaXglM0FwdWJsaWMlM0FjbG91ZGNlcnRzJTNBdXMtc291dGglM0FhJTJGMzBmMGEyMWY3Nzk5NGI5ZWI0MTRiMzczMDBlMmNlZDElM0E5MWExNzkyOC1kYTNjLTQ0NjUtOWM0Yi1mMWE2YjRkY2U2ODQlM0ElM0EiLCJldmVudF90eXBlIjoidGVzdF9ub3RpZmljYXRpb25fY2hhbm5lbCIsImNlcnRpZmljYXRlcyI6W3siY2VydF9jcm4iOiJjcm46djE6Ymx1ZW1peDpwdWJsaWM6Y2xvdWRjZXJ0czp1cy1zb3V0aDphLzMwZjBhMjFmNzc5OTRiOWViNDE0YjM3MzAwZTJjZWQxOjkxYTE3OTI4LWRhM2MtNDQ2NS05YzRiLWYxYTZiNGRjZTY4NDpjZXJ0aWZpY2F0ZToxMjM0NTY3OC05MDEyLTM0NTYtNzg5MC0xMjM0NTY3ODkwMTIiLCJkb21haW5zIjoibm90aWZpY2F0aW9uLnRlc3QuY29tIiwiZXhwaXJlc19vbiI6IjIwMjEtMDctMDNUMTI6MDA6MDAuMDAwWiIsIm5hbWUiOiJjZXJ0aWZpY2F0ZSBuYW1lIn1dLCJ2ZXJzaW9uIjo0LCJsYXRlc3RWZXJzaW9uIjo0fQ.nhkBTGGuXt0ZH28x8EKKuFG8sVJAFx-FosKAPjW_hlRK1u0thTV6JMN3bxNQXrRWDHZ1Mktu2h-ojtbmDag33ftd_SKMEMhZVEy-xcBCh5Cv2WEbC0WTqeZV26irvNr2q8NhL53QK3VmyRYr8Kf1BYHfigJ8QWF--ZRtyvwDHO4hMkVsJd_f-fEK7StaCySShgl8Rrv0GlddZLsJnTu6_dz1orZjmoQLkhtYQzG5NQLTj6O8khO9hJF5k2L514tQx1QFw-mIqvZ3pK7BPM-Mi9eRoUn3GFyfQcKH47_JKnxwqMLgRq9Vcskk5kZna_MmsqqzcZ9ORRasvxuiT5Lsrg"

// servedKey fetches the instance's public key the way IBM's samples do: no token.
func servedKey(t *testing.T, f *fixture, region, inst string) *rsa.PublicKey {
	t.Helper()
	res := call(t, http.MethodGet, f.api(region, "/api/v1/instances/{}/notifications/publicKey?keyFormat=pem", inst), "", nil)
	require.Equal(t, 200, res.status, "%s", res)
	var body map[string]string
	res.json(t, &body)
	require.Len(t, body, 1)
	require.True(t, strings.HasPrefix(body["publicKey"], "-----BEGIN PUBLIC KEY-----\n"))
	key, err := jwt.ParseRSAPublicKeyFromPEM([]byte(body["publicKey"]))
	require.NoError(t, err)
	return key
}

// verify checks tok like a strict consumer does and returns its claims.
func verify(t *testing.T, tok string, key *rsa.PublicKey) map[string]any {
	t.Helper()
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return key, nil }, jwt.WithValidMethods([]string{"RS256"}))
	require.NoError(t, err)
	require.True(t, parsed.Valid)
	claims := parsed.Claims.(jwt.MapClaims)
	for _, reg := range []string{"iat", "exp", "nbf", "iss", "aud", "sub", "jti"} {
		assert.NotContains(t, claims, reg, "the real service sends no registered claims")
	}
	return claims
}

func TestPublicKey(t *testing.T) {
	f := newFixture(t, Options{}, "us-south", "eu-de")
	inst := f.inst["us-south"]
	servedKey(t, f, "us-south", inst)
	tests := []struct {
		name, url string
		status    int
	}{
		{"no keyFormat", f.api("us-south", "/api/v1/instances/{}/notifications/publicKey", inst), 400},
		{"keyFormat der", f.api("us-south", "/api/v1/instances/{}/notifications/publicKey?keyFormat=der", inst), 400},
		{"other region", f.api("eu-de", "/api/v1/instances/{}/notifications/publicKey?keyFormat=pem", inst), 404},
		{"unknown instance", f.api("us-south", "/api/v1/instances/{}/notifications/publicKey?keyFormat=pem", strings.Replace(inst, ":a/", ":a/q", 1)), 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.status, call(t, http.MethodGet, tc.url, "", nil).status)
		})
	}
	t.Run("an Authorization header is ignored", func(t *testing.T) {
		res := call(t, http.MethodGet, f.api("us-south", "/api/v1/instances/{}/notifications/publicKey?keyFormat=pem", inst), "garbage", nil)
		assert.Equal(t, 200, res.status)
	})
}

func TestChannelsOverHTTP(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	tok := f.token(managerKey)
	rcv := newReceiver(t)
	chURL := f.api("us-south", "/api/v1/instances/{}/notifications/channels", inst)

	tests := []struct {
		name   string
		body   any
		status int
	}{
		{"http endpoint refused", map[string]any{"type": "url", "endpoint": rcv.srv.URL, "is_active": true}, 400},
		{"slack type refused", map[string]any{"type": "slack", "endpoint": "https://hooks.slack.com/x", "is_active": true}, 400},
		{"relative endpoint", map[string]any{"type": "url", "endpoint": "/hook", "is_active": true}, 400},
		{"unknown field", map[string]any{"type": "url", "endpoint": "https://example.com/", "enabled": true}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.status, call(t, http.MethodPut, chURL, tok, tc.body).status)
		})
	}
	assert.Equal(t, 405, call(t, http.MethodPost, chURL, tok, map[string]any{"type": "url"}).status, "create is PUT (2018 docs)")
	f.clock.Advance(time.Minute) // refused attempts count against the 5 creates a minute

	// The same simulator, but one that accepts the local receiver.
	f.sim.mu.Lock()
	f.sim.allowHTTP = true
	f.sim.mu.Unlock()
	res := call(t, http.MethodPut, chURL, tok, map[string]any{"type": "url", "endpoint": rcv.srv.URL + "/hook", "is_active": true})
	require.Equal(t, 200, res.status, "%s", res)
	var created Channel
	res.json(t, &created)
	assert.Equal(t, Channel{ID: created.ID, Type: "url", Endpoint: rcv.srv.URL + "/hook", IsActive: true, Version: 4}, created)

	res = call(t, http.MethodPut, chURL, tok, map[string]any{"type": "url", "endpoint": rcv.srv.URL + "/off"})
	require.Equal(t, 200, res.status)
	var off Channel
	res.json(t, &off)
	assert.False(t, off.IsActive, "an omitted is_active means inactive")

	res = call(t, http.MethodGet, chURL, tok, nil)
	require.Equal(t, 200, res.status)
	var list []map[string]any
	res.json(t, &list)
	require.Len(t, list, 2)
	assert.Equal(t, map[string]any{"id": created.ID, "type": "url", "endpoint": rcv.srv.URL + "/hook", "is_active": true, "version": float64(4)}, list[0])

	testURL := f.api("us-south", "/api/v1/instances/{}/notifications/channels/"+created.ID+"/test", inst)
	res = call(t, http.MethodPost, testURL, tok, nil)
	require.Equal(t, 200, res.status, "%s", res)
	toks := rcv.tokens(t)
	require.Len(t, toks, 1, "only the tested channel")
	assert.Equal(t, []string{"POST application/json"}, rcv.ctypes)
	claims := verify(t, toks[0], servedKey(t, f, "us-south", inst))
	assert.Equal(t, EventTestNotificationChannel, claims["event_type"])

	assert.Equal(t, 429, call(t, http.MethodPost, testURL, tok, nil).status, "1 test per second")
	f.clock.Advance(time.Second)
	assert.Equal(t, 404, call(t, http.MethodPost, f.api("us-south", "/api/v1/instances/{}/notifications/channels/nope/test", inst), tok, nil).status)

	// An inactive channel can still be tested.
	f.clock.Advance(time.Second)
	require.Equal(t, 200, call(t, http.MethodPost, f.api("us-south", "/api/v1/instances/{}/notifications/channels/"+off.ID+"/test", inst), tok, nil).status)
	assert.Len(t, rcv.tokens(t), 2)

	del := f.api("us-south", "/api/v1/instances/{}/notifications/"+created.ID, inst)
	assert.Equal(t, 200, call(t, http.MethodDelete, del, tok, nil).status)
	assert.Equal(t, 404, call(t, http.MethodDelete, del, tok, nil).status)
	assert.Len(t, f.sim.Channels(inst), 1)
}

func TestNotificationMatchesCapturedToken(t *testing.T) {
	f := newFixture(t, Options{})
	require.NoError(t, f.sim.AddInstanceCRN(capturedInstance))
	rcv := newReceiver(t)
	_, err := f.sim.AddChannel(capturedInstance, rcv.srv.URL, 4)
	require.NoError(t, err)
	require.NoError(t, f.sim.SendEvent(capturedInstance, EventTestNotificationChannel))

	toks := rcv.tokens(t)
	require.Len(t, toks, 1)
	got := strings.Split(toks[0], ".")
	want := strings.Split(capturedTestToken, ".")
	assert.Equal(t, want[0], got[0], "header segment")
	assert.Equal(t, want[1], got[1], "payload segment, byte for byte")
	header, _ := decodeJWT(t, toks[0])
	assert.Equal(t, `{"alg":"RS256"}`, string(header))
	assert.Len(t, got[2], len(want[2]), "RSA-2048 signature")

	// The captured token is not signed by our key.
	_, err = jwt.Parse(capturedTestToken, func(*jwt.Token) (any, error) { return servedKey(t, f, "us-south", capturedInstance), nil },
		jwt.WithValidMethods([]string{"RS256"}))
	assert.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
}

func TestNotificationPayloadVersions(t *testing.T) {
	f := newFixture(t, Options{})
	inst := f.inst["us-south"]
	rcv := map[int]*receiver{}
	for v := 1; v <= 4; v++ {
		rcv[v] = newReceiver(t)
		_, err := f.sim.AddChannel(inst, rcv[v].srv.URL, v)
		require.NoError(t, err)
	}
	key := servedKey(t, f, "us-south", inst)
	dash := "https://cloud.ibm.com/services/cloudcerts/" + crn.PathEscape(inst)
	iss := issue(t, "a.example.com", "b.example.com")
	id := f.sim.Seed(inst, "A & <B>", "", iss)

	// payloads drains each receiver and returns the decoded payload bytes per version.
	payloads := func(t *testing.T) map[int]string {
		t.Helper()
		out := map[int]string{}
		for v, r := range rcv {
			toks := r.tokens(t)
			r.mu.Lock()
			r.bodies, r.ctypes = nil, nil
			r.mu.Unlock()
			if len(toks) == 0 {
				continue
			}
			require.Len(t, toks, 1)
			verify(t, toks[0], key)
			header, p := decodeJWT(t, toks[0])
			require.Equal(t, `{"alg":"RS256"}`, string(header))
			out[v] = string(p)
		}
		return out
	}

	t.Run("cert_reimported reaches v2 and later", func(t *testing.T) {
		again := issue(t, "a.example.com", "b.example.com")
		require.NoError(t, f.sim.Reimport(id, again.CertPEM, again.KeyPEM, again.Intermediate))
		exp := again.Cert.NotAfter.UnixMilli()
		got := payloads(t)
		entryV3 := fmt.Sprintf(`{"cert_crn":%q,"domains":"a.example.com,b.example.com","expires_on":%d,"name":"A & <B>"}`, id, exp)
		assert.Equal(t, map[int]string{
			4: fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"cert_reimported","certificates":[%s],"version":4,"latestVersion":4}`, inst, dash, entryV3),
			3: fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"cert_reimported","certificates":[%s],"version":3,"latestVersion":4}`, inst, dash, entryV3),
			2: fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"cert_reimported","certificates":[{"cert_crn":%q,"domains":"a.example.com,b.example.com","name":"A & <B>"}],"version":2,"latestVersion":4}`, inst, dash, id),
		}, got)
	})

	t.Run("cert_about_to_expire_reimport_required reaches every version, with expiry_date", func(t *testing.T) {
		require.NoError(t, f.sim.SendEvent(inst, EventCertAboutToExpireReimportRequired, id))
		got := payloads(t)
		require.Len(t, got, 4)
		cur, _ := f.sim.Get(id)
		midnight := time.UnixMilli(cur.ExpiresOn).UTC().Truncate(24 * time.Hour).UnixMilli()
		assert.Equal(t, fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"cert_about_to_expire_reimport_required","expiry_date":%d,"certificates":[{"cert_crn":%q,"domains":"a.example.com,b.example.com","expires_on":%d,"name":"A & <B>"}],"version":4,"latestVersion":4}`,
			inst, dash, midnight, id, cur.ExpiresOn), got[4])
		assert.Equal(t, fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"expiry_date":%d,"event_type":"cert_about_to_expire_reimport_required","certificates":[{"cert_crn":%q,"domains":"a.example.com,b.example.com","name":"A & <B>"}],"version":2,"latestVersion":4}`,
			inst, dash, midnight, id), got[2])
		assert.Equal(t, fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"expiry_date":%d,"expiring_certificates":[{"cert_crn":%q,"domains":"a.example.com,b.example.com","name":"A & <B>"}],"version":1,"latestVersion":4}`,
			inst, dash, midnight, id), got[1])
	})

	t.Run("test event, every version", func(t *testing.T) {
		require.NoError(t, f.sim.SendEvent(inst, EventTestNotificationChannel))
		got := payloads(t)
		dummy := strings.TrimSuffix(inst, ":") + "certificate:12345678-9012-3456-7890-123456789012"
		assert.Equal(t, fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"test_notification_channel","certificates":[{"cert_crn":%q,"domains":"notification.test.com","expires_on":"2021-07-03T12:00:00.000Z","name":"certificate name"}],"version":3,"latestVersion":4}`,
			inst, dash, dummy), got[3])
		assert.Contains(t, got[4], `"expires_on":"2021-07-03T12:00:00.000Z"`)
		assert.NotContains(t, got[2], "expires_on")
	})

	t.Run("ordered and renewed reach v4 only", func(t *testing.T) {
		oid, err := f.sim.Order(inst, "shop", "shop.example.com")
		require.NoError(t, err)
		got := payloads(t)
		require.Len(t, got, 1)
		var p struct {
			EventType    string           `json:"event_type"`
			Certificates []map[string]any `json:"certificates"`
		}
		require.NoError(t, json.Unmarshal([]byte(got[4]), &p))
		assert.Equal(t, EventCertIssued, p.EventType)
		assert.Equal(t, oid, p.Certificates[0]["cert_crn"])
		assert.NotContains(t, p.Certificates[0], "auto_renewed")

		require.NoError(t, f.sim.Renew(oid))
		got = payloads(t)
		require.Len(t, got, 1)
		cur, _ := f.sim.Get(oid)
		assert.Equal(t, fmt.Sprintf(`{"instance_crn":%q,"certificate_manager_url":%q,"event_type":"cert_renewed","certificates":[{"auto_renewed":false,"cert_crn":%q,"domains":"shop.example.com","expires_on":%d,"name":"shop"}],"version":4,"latestVersion":4}`,
			inst, dash, oid, cur.ExpiresOn), got[4])
	})

	t.Run("failure events carry additional_info", func(t *testing.T) {
		require.NoError(t, f.sim.SendEvent(inst, EventCertRenewFailed, id))
		assert.Contains(t, payloads(t)[4], `{"additional_info":"simulated failure","auto_renewed":false,"cert_crn":`)
	})

	t.Run("inactive channels get nothing", func(t *testing.T) {
		for _, ch := range f.sim.Channels(inst) {
			require.NoError(t, f.sim.SetChannelActive(inst, ch.ID, false))
		}
		require.NoError(t, f.sim.SendEvent(inst, EventCertExpiredReimportRequired, id))
		assert.Empty(t, payloads(t))
	})

	t.Run("SendEvent refuses what it cannot send", func(t *testing.T) {
		assert.ErrorIs(t, f.sim.SendEvent(inst, "cert_domain_validation_required", id), ErrRejected)
		assert.ErrorIs(t, f.sim.SendEvent(inst, EventCertReimported), ErrRejected)
		assert.ErrorIs(t, f.sim.SendEvent(inst, EventCertReimported, certOf(inst, zeroID)), ErrNotFound)
	})
}

func TestDeliveriesAndTokens(t *testing.T) {
	f := newFixture(t, Options{DeliveryTimeout: 200 * time.Millisecond})
	inst := f.inst["us-south"]
	ok := newReceiver(t)
	failing := newReceiver(t)
	failing.status = http.StatusInternalServerError
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	redirect := httptest.NewServer(http.RedirectHandler(ok.srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	ids := map[string]string{}
	for name, u := range map[string]string{"ok": ok.srv.URL, "failing": failing.srv.URL, "slow": slow.URL, "redirect": redirect.URL} {
		id, err := f.sim.AddChannel(inst, u, 4)
		require.NoError(t, err)
		ids[id] = name
	}
	iss := issue(t, "d.example.com")
	cert := f.sim.Seed(inst, "d", "", iss)
	start := time.Now()
	require.NoError(t, f.sim.Reimport(cert, iss.CertPEM, iss.KeyPEM, ""))
	assert.Less(t, time.Since(start), 2*time.Second, "the delivery timeout bounds the slow endpoint")

	got := map[string]Delivery{}
	for _, d := range f.sim.Deliveries() {
		got[ids[d.ChannelID]] = d
		assert.Equal(t, EventCertReimported, d.EventType)
		assert.Equal(t, inst, d.InstanceCRN)
	}
	require.Len(t, got, 4)
	assert.Equal(t, 200, got["ok"].Status)
	assert.Equal(t, 500, got["failing"].Status)
	assert.Equal(t, 0, got["slow"].Status)
	assert.NotEmpty(t, got["slow"].Err)
	assert.GreaterOrEqual(t, got["slow"].Duration, 200*time.Millisecond)
	assert.Equal(t, 302, got["redirect"].Status, "redirects are not followed")
	assert.Len(t, ok.tokens(t), 1)

	sent := f.sim.SentTokens()
	require.Len(t, sent, 4)
	assert.Equal(t, ok.tokens(t)[0], func() string {
		for _, s := range sent {
			if ids[s.ChannelID] == "ok" {
				return s.Token
			}
		}
		return ""
	}())

	t.Run("Sign uses the instance key and the real header", func(t *testing.T) {
		tok := f.sim.Sign(inst, map[string]any{"instance_crn": inst, "event_type": "x"})
		header, payload := decodeJWT(t, tok)
		assert.Equal(t, `{"alg":"RS256"}`, string(header))
		assert.JSONEq(t, fmt.Sprintf(`{"instance_crn":%q,"event_type":"x"}`, inst), string(payload))
		verify(t, tok, servedKey(t, f, "us-south", inst))
		raw := f.sim.Sign(inst, []byte("not json"))
		_, payload = decodeJWT(t, raw)
		assert.Equal(t, "not json", string(payload))
		assert.Panics(t, func() { f.sim.Sign(certOf(inst, zeroID), "x") })
	})

	t.Run("RotateKey invalidates earlier tokens", func(t *testing.T) {
		old := sent[0].Token
		require.NoError(t, f.sim.RotateKey(inst))
		_, err := jwt.Parse(old, func(*jwt.Token) (any, error) { return servedKey(t, f, "us-south", inst), nil }, jwt.WithValidMethods([]string{"RS256"}))
		assert.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
	})
}
