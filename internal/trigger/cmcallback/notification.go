// Package notification verifies and decodes the callback notifications of IBM Cloud
// Certificate Manager: a body {"data":"<JWT>"} whose JWT is signed RS256 with the
// per-instance key of the instance that sent it.
//
// The trust root is configuration: the source instance CRN and either its public key or
// a function that fetches that instance's key from its own regional endpoint. Nothing
// in the token (instance_crn, kid, jku, x5u) ever chooses a key or a URL. After the
// signature, the payload must name the configured instance and only certificates of
// that instance.
//
// The package is pure logic (no HTTP client) and never puts the token, a part of it or
// the key into an error or a log line.
package cmcallback

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Event types of Certificate Manager notifications (docs/services/certificate-manager.md
// §12, the complete documented list).
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
	EventCertDomainValidationRequired      = "cert_domain_validation_required"
	EventCertDomainValidationCompleted     = "cert_domain_validation_completed"
	EventCertIssuedNotDownloaded           = "cert_issued_not_downloaded"
	EventCertRenewedNotDownloaded          = "cert_renewed_not_downloaded"
)

// Action is what a backup mirror does with an event type.
type Action int

const (
	// Unknown: an event type that is not documented. Acknowledge it and report it; it is
	// never an error, so that a new event type in the service cannot break delivery.
	Unknown Action = iota
	// Replicate: a certificate's content changed; copy it to the backups.
	Replicate
	// Test: the channel test. Its certificate is a dummy that does not exist.
	Test
	// AcknowledgeOnly: a documented event that changes nothing to copy (expiry
	// warnings, failures, domain validation, not-downloaded reminders).
	AcknowledgeOnly
)

func (a Action) String() string {
	switch a {
	case Replicate:
		return "replicate"
	case Test:
		return "test"
	case AcknowledgeOnly:
		return "acknowledge-only"
	default:
		return "unknown"
	}
}

// Classify maps an event type to the Action of a backup mirror. Only the three events
// that mean "the certificate content is new" replicate (docs/services/certificate-manager.md
// §12, with the HA/DR doc it quotes: reimport, order, renewal).
func Classify(eventType string) Action {
	switch eventType {
	case EventCertIssued, EventCertRenewed, EventCertReimported:
		return Replicate
	case EventTestNotificationChannel:
		return Test
	case EventCertAboutToExpireReimportRequired, EventCertExpiredReimportRequired,
		EventCertOrderFailed, EventCertRenewFailed,
		EventCertAboutToExpireRenewRequired, EventCertExpiredRenewRequired,
		EventCertDomainValidationRequired, EventCertDomainValidationCompleted,
		EventCertIssuedNotDownloaded, EventCertRenewedNotDownloaded:
		return AcknowledgeOnly
	default:
		return Unknown
	}
}

// isDomainValidation reports the two events whose payload is the domain-validation
// shape (certificateCRN, domain, challenge) instead of a certificates array.
func isDomainValidation(eventType string) bool {
	return eventType == EventCertDomainValidationRequired || eventType == EventCertDomainValidationCompleted
}

// Notification is a verified, decoded notification. Every CRN in it has been checked to
// be the configured source instance or one of its certificates.
type Notification struct {
	InstanceCRN string
	ManagerURL  string // certificate_manager_url: the instance's dashboard
	EventType   string
	// ExpiryDate is midnight UTC of the expiry day, sent with the *_about_to_expire_*
	// events; zero if absent.
	ExpiryDate    time.Time
	Certificates  []Certificate
	Version       int
	LatestVersion int // 0 when absent (added to payloads in Feb 2020)
	// DomainValidation is set for the cert_domain_validation_* events only.
	DomainValidation *DomainValidation
}

// Certificate is one entry of the payload's certificates array.
type Certificate struct {
	CRN     string
	Name    string
	Domains []string // the payload's comma-separated "domains", split
	// ExpiresOn is zero if absent (v2 payloads do not carry it).
	ExpiresOn time.Time
	// AutoRenewed is nil if absent; sent with cert_renewed, cert_renew_failed and
	// cert_renewed_not_downloaded.
	AutoRenewed *bool
	// AdditionalInfo is the error text of cert_order_failed and cert_renew_failed.
	AdditionalInfo    string
	PreviousExpiresOn time.Time // cert_renewed_not_downloaded only; zero if absent
}

// DomainValidation is the DNS-01 challenge of a domain-validation event.
type DomainValidation struct {
	CertificateCRN string
	Domain         string // may be a wildcard, e.g. *.example.com
	Method         string // domain_validation_method, e.g. dns-01
	Challenge      Challenge
}

// Challenge is the TXT record to add (validation required) or remove (completed).
type Challenge struct {
	TXTRecordName  string
	TXTRecordValue string
}

// CertificatesToCopy returns the certificates to replicate: each distinct certificate
// of a Replicate event once (a genuine token may list one certificate many times),
// none otherwise. In particular the test event's certificate is a dummy (certificate
// ID 12345678-9012-3456-7890-123456789012) and must never be downloaded.
func (n *Notification) CertificatesToCopy() []Certificate {
	if n == nil || Classify(n.EventType) != Replicate {
		return nil
	}
	seen := make(map[string]bool, len(n.Certificates))
	out := make([]Certificate, 0, len(n.Certificates))
	for _, c := range n.Certificates {
		if !seen[c.CRN] {
			seen[c.CRN] = true
			out = append(out, c)
		}
	}
	return out
}

// CertificateCRNs returns the CRNs of the certificates the notification names,
// including the certificate of a domain-validation event.
func (n Notification) CertificateCRNs() []string {
	crns := make([]string, 0, len(n.Certificates)+1)
	for _, c := range n.Certificates {
		crns = append(crns, c.CRN)
	}
	if n.DomainValidation != nil {
		crns = append(crns, n.DomainValidation.CertificateCRN)
	}
	return crns
}

// String prints only the event type and the CRNs, so that a notification can be logged
// with %v without leaking names, domains or challenge values.
func (n Notification) String() string {
	return fmt.Sprintf("%s from %s certificates=[%s]", n.EventType, n.InstanceCRN, strings.Join(n.CertificateCRNs(), " "))
}

// LogValue implements slog.LogValuer with the same restriction as String.
func (n Notification) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("event_type", n.EventType),
		slog.String("instance_crn", n.InstanceCRN),
		slog.Any("certificate_crns", n.CertificateCRNs()),
	)
}
