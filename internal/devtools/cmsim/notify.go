package cmsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
)

// Event types of docs/services/certificate-manager.md §12.
const (
	EventTestNotificationChannel           = "test_notification_channel"
	EventCertAboutToExpireReimportRequired = "cert_about_to_expire_reimport_required"
	EventCertExpiredReimportRequired       = "cert_expired_reimport_required"
	EventCertReimported                    = "cert_reimported"
	EventCertIssued                        = "cert_issued"
	EventCertRenewed                       = "cert_renewed"
	EventCertOrderFailed                   = "cert_order_failed"
	EventCertRenewFailed                   = "cert_renew_failed"
	EventCertAboutToExpireRenewRequired    = "cert_about_to_expire_renew_required"
	EventCertExpiredRenewRequired          = "cert_expired_renew_required"
	EventCertIssuedNotDownloaded           = "cert_issued_not_downloaded"
	EventCertRenewedNotDownloaded          = "cert_renewed_not_downloaded"
)

// minVersion is the lowest Callback URL channel version that receives each lifecycle
// event (docs/services/certificate-manager.md §12). Domain-validation events have another
// payload and are not simulated.
var minVersion = map[string]int{
	EventTestNotificationChannel:           1,
	EventCertAboutToExpireReimportRequired: 1,
	EventCertExpiredReimportRequired:       1,
	EventCertReimported:                    2,
	EventCertIssued:                        4,
	EventCertRenewed:                       4,
	EventCertOrderFailed:                   4,
	EventCertRenewFailed:                   4,
	EventCertAboutToExpireRenewRequired:    4,
	EventCertExpiredRenewRequired:          4,
	EventCertIssuedNotDownloaded:           4,
	EventCertRenewedNotDownloaded:          4,
}

const (
	latestChannelVersion = 4
	dashboardPrefix      = "https://cloud.ibm.com/services/cloudcerts/"
	// jwtHeader is base64url(`{"alg":"RS256"}`): exactly the real header, no "typ", no "kid".
	jwtHeader = "eyJhbGciOiJSUzI1NiJ9"
	// The dummy certificate of the real test notification
	// (docs/services/certificate-manager.md §11.4).
	testCertID        = "12345678-9012-3456-7890-123456789012"
	testCertDomains   = "notification.test.com"
	testCertExpiresOn = "2021-07-03T12:00:00.000Z"
	testCertName      = "certificate name"
	// The simulator's additional_info for failure events.
	simulatedFailureInfo = "simulated failure"
)

// Channel is a notification channel as the list call returns it.
type Channel struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
	IsActive bool   `json:"is_active"`
	Version  int    `json:"version"`
}

// Delivery records one notification POST to one channel.
type Delivery struct {
	InstanceCRN string
	EventType   string
	ChannelID   string
	Endpoint    string
	Version     int
	Status      int // HTTP status from the endpoint; 0 when no response came
	Err         string
	Duration    time.Duration
}

// SentToken is one signed notification JWT, kept so tests can replay it.
type SentToken struct {
	InstanceCRN string
	EventType   string
	ChannelID   string
	Version     int
	Token       string
}

type pendingDelivery struct {
	instance, event, channelID, endpoint string
	version                              int
	token                                string
}

// eventCert is one entry of certificates[] before it is shaped for a channel version.
type eventCert struct {
	crn, name         string
	domains           string
	expiresOn         any // int64 ms, or the test event's ISO string
	previousExpiresOn int64
}

func eventCertOf(c *certificate) eventCert {
	v := c.current()
	e := eventCert{crn: c.id, name: c.name, domains: strings.Join(v.meta.Domains, ","), expiresOn: v.meta.ExpiresOn}
	e.previousExpiresOn = v.meta.ExpiresOn
	if n := len(c.versions); n > 1 {
		e.previousExpiresOn = c.versions[n-2].meta.ExpiresOn
	}
	return e
}

func testEventCert(instanceCRN string) eventCert {
	return eventCert{
		crn:       strings.TrimSuffix(instanceCRN, ":") + "certificate:" + testCertID,
		name:      testCertName,
		domains:   testCertDomains,
		expiresOn: testCertExpiresOn,
	}
}

// Payload shapes per channel version, fields in the order of the documented templates
// and captured tokens. Entries of certificates[] are maps, which encoding/json writes in
// alphabetical key order, as the captured tokens have them.
type payloadV3V4 struct {
	InstanceCRN           string           `json:"instance_crn"`
	CertificateManagerURL string           `json:"certificate_manager_url"`
	EventType             string           `json:"event_type"`
	ExpiryDate            *int64           `json:"expiry_date,omitempty"`
	Certificates          []map[string]any `json:"certificates"`
	Version               int              `json:"version"`
	LatestVersion         int              `json:"latestVersion"`
}

type payloadV2 struct {
	InstanceCRN           string           `json:"instance_crn"`
	CertificateManagerURL string           `json:"certificate_manager_url"`
	ExpiryDate            *int64           `json:"expiry_date,omitempty"`
	EventType             string           `json:"event_type"`
	Certificates          []map[string]any `json:"certificates"`
	Version               int              `json:"version"`
	LatestVersion         int              `json:"latestVersion"`
}

type payloadV1 struct {
	InstanceCRN           string           `json:"instance_crn"`
	CertificateManagerURL string           `json:"certificate_manager_url"`
	ExpiryDate            *int64           `json:"expiry_date,omitempty"`
	ExpiringCertificates  []map[string]any `json:"expiring_certificates"`
	Version               int              `json:"version"`
	LatestVersion         int              `json:"latestVersion"`
}

// buildPayload shapes one event for a channel of the given version.
func buildPayload(instanceCRN, event string, version int, certs []eventCert) ([]byte, error) {
	entries := make([]map[string]any, 0, len(certs))
	for _, c := range certs {
		e := map[string]any{"cert_crn": c.crn, "name": c.name, "domains": c.domains}
		if version >= 3 {
			e["expires_on"] = c.expiresOn
		}
		if version >= 4 {
			switch event {
			case EventCertRenewed, EventCertRenewFailed, EventCertRenewedNotDownloaded:
				e["auto_renewed"] = false
			}
			switch event {
			case EventCertOrderFailed, EventCertRenewFailed:
				e["additional_info"] = simulatedFailureInfo
			}
			if event == EventCertRenewedNotDownloaded {
				e["previous_expires_on"] = c.previousExpiresOn
			}
		}
		entries = append(entries, e)
	}
	var expiry *int64
	if (event == EventCertAboutToExpireReimportRequired || event == EventCertAboutToExpireRenewRequired) && len(certs) > 0 {
		if ms, ok := certs[0].expiresOn.(int64); ok {
			day := time.UnixMilli(ms).UTC().Truncate(24 * time.Hour).UnixMilli()
			expiry = &day
		}
	}
	url := dashboardPrefix + crn.PathEscape(instanceCRN)
	var v any
	switch version {
	case 1:
		v = payloadV1{instanceCRN, url, expiry, entries, 1, latestChannelVersion}
	case 2:
		v = payloadV2{instanceCRN, url, expiry, event, entries, 2, latestChannelVersion}
	default:
		v = payloadV3V4{instanceCRN, url, event, expiry, entries, version, latestChannelVersion}
	}
	return marshalNoHTMLEscape(v)
}

// marshalNoHTMLEscape writes JSON as JavaScript's JSON.stringify does: '<', '>' and '&'
// stay as they are.
func marshalNoHTMLEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// signJWT makes an RS256 JWS over payload with the exact header of the real service.
// golang-jwt would add "typ" (docs/services/go-libraries.md §3.4); the header is built
// here so it is byte-for-byte the real one.
func signJWT(key *rsa.PrivateKey, payload []byte) (string, error) {
	signingInput := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign notification: %w", err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// prepareEventLocked signs the event for every channel that should get it: only
// channelID when given (the channel test), else every active channel whose version is
// high enough. The tokens are recorded now; delivery happens without the lock, because
// the receiver may call back into the simulator.
func (s *Simulator) prepareEventLocked(inst *instance, event string, certs []*certificate, channelID string) []pendingDelivery {
	entries := make([]eventCert, 0, len(certs))
	if event == EventTestNotificationChannel {
		entries = append(entries, testEventCert(inst.crn))
	}
	for _, c := range certs {
		entries = append(entries, eventCertOf(c))
	}
	var out []pendingDelivery
	for _, ch := range inst.channels {
		if channelID != "" && ch.ID != channelID {
			continue
		}
		if channelID == "" && !ch.IsActive {
			continue
		}
		if ch.Version < minVersion[event] {
			continue
		}
		payload, err := buildPayload(inst.crn, event, ch.Version, entries)
		if err != nil {
			panic(fmt.Sprintf("simulator: build payload: %v", err)) // only simulator-built values
		}
		tok, err := signJWT(inst.key, payload)
		if err != nil {
			panic(fmt.Sprintf("simulator: %v", err))
		}
		s.sent = append(s.sent, SentToken{InstanceCRN: inst.crn, EventType: event, ChannelID: ch.ID, Version: ch.Version, Token: tok})
		out = append(out, pendingDelivery{instance: inst.crn, event: event, channelID: ch.ID, endpoint: ch.Endpoint, version: ch.Version, token: tok})
	}
	return out
}

// deliver POSTs each notification in turn and records the outcome. It is synchronous so
// that a test sees the delivery (and whatever the receiver did) when the triggering call
// returns.
func (s *Simulator) deliver(pending []pendingDelivery) {
	for _, p := range pending {
		d := s.deliverOne(p)
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
	}
}

func (s *Simulator) deliverOne(p pendingDelivery) Delivery {
	d := Delivery{InstanceCRN: p.instance, EventType: p.event, ChannelID: p.channelID, Endpoint: p.endpoint, Version: p.version}
	body, err := json.Marshal(map[string]string{"data": p.token})
	if err != nil {
		d.Err = err.Error()
		return d
	}
	// The triggering request may be cancelled by its client; the service delivers anyway.
	ctx, cancel := context.WithTimeout(context.Background(), s.deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		d.Err = err.Error()
		return d
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := s.client.Do(req)
	d.Duration = time.Since(start)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	d.Status = resp.StatusCode
	return d
}

// ---- HTTP handlers ----

func (s *Simulator) handlePublicKey(r *http.Request, rt *route) response {
	s.mu.Lock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	var pub *rsa.PublicKey
	if aerr == nil {
		pub = &inst.key.PublicKey
	}
	s.mu.Unlock()
	if aerr != nil {
		return aerr.response()
	}
	q, aerr := parseQuery(r.URL.RawQuery)
	if aerr != nil {
		return aerr.response()
	}
	if q["keyFormat"] != "pem" {
		return errorf(http.StatusBadRequest, codeBadRequest, "keyFormat=pem is required").response()
	}
	p, err := publicKeyPEM(pub)
	if err != nil {
		return response{status: http.StatusInternalServerError, header: http.Header{}}
	}
	return jsonResponse(http.StatusOK, map[string]string{"publicKey": p})
}

func publicKeyPEM(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func (s *Simulator) handleChannelsList(_ *http.Request, rt *route) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr != nil {
		return aerr.response()
	}
	out := make([]Channel, 0, len(inst.channels))
	for _, ch := range inst.channels {
		out = append(out, *ch)
	}
	return jsonResponse(http.StatusOK, out)
}

type channelRequest struct {
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
	IsActive *bool  `json:"is_active"`
}

func (s *Simulator) checkEndpoint(endpoint string) *apiError {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && s.allowHTTP) {
		return errorf(http.StatusBadRequest, codeBadRequest, "endpoint must be an absolute https URL")
	}
	return nil
}

func (s *Simulator) handleChannelsCreate(r *http.Request, rt *route) response {
	var req channelRequest
	bodyErr := decodeJSON(r, &req)
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr == nil {
		aerr = perMinute(&inst.channelCreates, s.now(), perInstPerMinute, "at most 5 notification channels created per minute")
	}
	if aerr == nil {
		aerr = bodyErr
	}
	if aerr == nil && req.Type != "url" {
		aerr = errorf(http.StatusBadRequest, codeBadRequest, `type must be "url"`)
	}
	if aerr == nil {
		aerr = s.checkEndpoint(req.Endpoint)
	}
	if aerr != nil {
		return aerr.response()
	}
	ch := &Channel{ID: randomUUID(), Type: "url", Endpoint: req.Endpoint, IsActive: req.IsActive != nil && *req.IsActive, Version: latestChannelVersion}
	inst.channels = append(inst.channels, ch)
	return jsonResponse(http.StatusOK, *ch)
}

func (s *Simulator) handleChannelsTest(_ *http.Request, rt *route) response {
	s.mu.Lock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr == nil && inst.channel(rt.channel) == nil {
		aerr = notFound("notification channel")
	}
	if aerr == nil {
		if ok, wait := inst.channelTests.Allow(s.now(), 1, time.Second); !ok {
			aerr = rateLimited(wait, "at most 1 channel test per second")
		}
	}
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	pending := s.prepareEventLocked(inst, EventTestNotificationChannel, nil, rt.channel)
	s.mu.Unlock()
	s.deliver(pending)
	return emptyResponse(http.StatusOK)
}

func (s *Simulator) handleChannelsDelete(_ *http.Request, rt *route) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr != nil {
		return aerr.response()
	}
	for i, ch := range inst.channels {
		if ch.ID == rt.channel {
			inst.channels = append(inst.channels[:i], inst.channels[i+1:]...)
			return emptyResponse(http.StatusOK)
		}
	}
	return notFound("notification channel").response()
}

func (inst *instance) channel(id string) *Channel {
	for _, ch := range inst.channels {
		if ch.ID == id {
			return ch
		}
	}
	return nil
}

// ---- Go API ----

// AddChannel adds an active Callback URL channel of the given payload version (1-4) to
// the instance, as one created when that version was current. Any http(s) URL is
// accepted: this is the test's own hand.
func (s *Simulator) AddChannel(instanceCRN, endpoint string, version int) (channelID string, err error) {
	if version < 1 || version > latestChannelVersion {
		return "", fmt.Errorf("add channel: %w: version %d is not 1 to %d", ErrRejected, version, latestChannelVersion)
	}
	if u, err := url.Parse(endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("add channel: %w: endpoint is not an absolute http(s) URL", ErrRejected)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return "", fmt.Errorf("add channel to %s: %w", instanceCRN, ErrNotFound)
	}
	ch := &Channel{ID: randomUUID(), Type: "url", Endpoint: endpoint, IsActive: true, Version: version}
	inst.channels = append(inst.channels, ch)
	return ch.ID, nil
}

// SetChannelActive switches a channel on or off.
func (s *Simulator) SetChannelActive(instanceCRN, channelID string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return fmt.Errorf("set channel state: instance %s: %w", instanceCRN, ErrNotFound)
	}
	ch := inst.channel(channelID)
	if ch == nil {
		return fmt.Errorf("set channel state: channel %s: %w", channelID, ErrNotFound)
	}
	ch.IsActive = active
	return nil
}

// Channels lists the instance's channels in creation order.
func (s *Simulator) Channels(instanceCRN string) []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return nil
	}
	out := make([]Channel, 0, len(inst.channels))
	for _, ch := range inst.channels {
		out = append(out, *ch)
	}
	return out
}

// SendEvent sends a lifecycle event about certCRNs (certificates of the instance) to
// every active channel whose version receives it, as the service's own schedulers do
// (expiry warnings, failures, not-downloaded reminders). For
// test_notification_channel the certificates are ignored and the dummy test
// certificate is sent. Failure events carry additional_info "simulated failure";
// renewal events carry auto_renewed false.
func (s *Simulator) SendEvent(instanceCRN, eventType string, certCRNs ...string) error {
	if _, ok := minVersion[eventType]; !ok {
		return fmt.Errorf("send event: %w: %q is not a simulated lifecycle event", ErrRejected, eventType)
	}
	s.mu.Lock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("send event to %s: %w", instanceCRN, ErrNotFound)
	}
	var certs []*certificate
	if eventType != EventTestNotificationChannel {
		if len(certCRNs) == 0 {
			s.mu.Unlock()
			return fmt.Errorf("send event %s: %w: at least one certificate is required", eventType, ErrRejected)
		}
		for _, id := range certCRNs {
			c, ok := inst.certs[id]
			if !ok {
				s.mu.Unlock()
				return fmt.Errorf("send event %s: certificate %s: %w", eventType, id, ErrNotFound)
			}
			certs = append(certs, c)
		}
	}
	pending := s.prepareEventLocked(inst, eventType, certs, "")
	s.mu.Unlock()
	s.deliver(pending)
	return nil
}

// Sign signs payload with the instance's notification key exactly as a notification is
// signed, for tests that craft payloads. []byte and json.RawMessage are used verbatim
// (so malformed JSON can be signed); anything else is marshalled. It panics on an
// unknown instance or a payload that cannot be marshalled: bugs in the test.
func (s *Simulator) Sign(instanceCRN string, payload any) string {
	var raw []byte
	switch p := payload.(type) {
	case []byte:
		raw = p
	case json.RawMessage:
		raw = p
	default:
		b, err := marshalNoHTMLEscape(p)
		if err != nil {
			panic(fmt.Sprintf("simulator: Sign: %v", err))
		}
		raw = b
	}
	s.mu.Lock()
	inst, ok := s.instances[instanceCRN]
	var key *rsa.PrivateKey
	if ok {
		key = inst.key
	}
	s.mu.Unlock()
	if !ok {
		panic(fmt.Sprintf("simulator: Sign: unknown instance %s", instanceCRN))
	}
	tok, err := signJWT(key, raw)
	if err != nil {
		panic(fmt.Sprintf("simulator: Sign: %v", err))
	}
	return tok
}

// PublicKeyPEM is what the public-key endpoint serves for the instance.
func (s *Simulator) PublicKeyPEM(instanceCRN string) (string, error) {
	s.mu.Lock()
	inst, ok := s.instances[instanceCRN]
	var pub *rsa.PublicKey
	if ok {
		pub = &inst.key.PublicKey
	}
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("public key of %s: %w", instanceCRN, ErrNotFound)
	}
	p, err := publicKeyPEM(pub)
	if err != nil {
		return "", fmt.Errorf("public key of %s: %w", instanceCRN, err)
	}
	return p, nil
}
