package eventnotifications

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Notification is a parsed notification whose every CRN has been checked: InstanceCRN
// is the configured source instance and every secret is one of its secrets.
type Notification struct {
	// ID is the CloudEvents id ("" when absent). A retried delivery may carry the same
	// id again: it correlates logs, it does not make an event unique.
	ID string
	// NotificationID is Event Notifications' notification_id ("" when absent).
	NotificationID string
	// InstanceCRN is the configured source instance, in its configured spelling.
	InstanceCRN string
	// EventType is the Secrets Manager event name, e.g. "secret_rotated".
	EventType string
	// EventSubType is e.g. "in_10_days" for secret_about_to_expire; "" when none.
	EventSubType string
	// SecretType is data.secret_type, e.g. "imported_cert"; "" when absent. Secrets
	// Manager groups a notification by event type and secret type, so one notification
	// has one secret type.
	SecretType string
	// Time is the CloudEvents time; zero when absent.
	Time time.Time
	// Secrets holds each distinct secret once, in the order first seen. Nothing in it
	// comes from a URL or an instance named by the payload: the CRN is built from the
	// configured instance and the secret's UUID.
	Secrets []Secret
}

// Secret is one entry of data.secrets, checked and normalised.
type Secret struct {
	// ID is the secret's UUID in lower case: the id of the Secrets Manager API.
	ID string
	// CRN is the secret's CRN in the configured source instance.
	CRN string
	// Name and GroupID are as sent: informational, never used to find the secret.
	Name    string
	GroupID string
}

// Action is Classify(n.EventType).
func (n *Notification) Action() Action { return Classify(n.EventType) }

// SecretsToCopy returns the secrets to copy: all of them for a Copy event whose
// secret type is a certificate type or absent, none otherwise. A secret_created of an
// arbitrary or key-value secret is thus acknowledged without reading it. The engine
// must still check the type and state of what it reads: this is a hint, not a proof.
func (n *Notification) SecretsToCopy() []Secret {
	if n == nil || n.Action() != Copy {
		return nil
	}
	if n.SecretType != "" && !IsCertificateType(n.SecretType) {
		return nil
	}
	return slices.Clone(n.Secrets)
}

// SecretCRNs returns the CRNs of the secrets, in order.
func (n Notification) SecretCRNs() []string {
	crns := make([]string, len(n.Secrets))
	for i, s := range n.Secrets {
		crns[i] = s.CRN
	}
	return crns
}

// String prints only the event, the instance and the secret CRNs, so that a
// notification can be logged with %v without names or other sender-chosen text.
func (n Notification) String() string {
	ev := n.EventType
	if n.EventSubType != "" {
		ev += ":" + n.EventSubType
	}
	return fmt.Sprintf("%s from %s secrets=[%s]", ev, n.InstanceCRN, strings.Join(n.SecretCRNs(), " "))
}

// LogValue implements slog.LogValuer with the same restriction as String, plus the
// two delivery ids (cut to 128 bytes: they are the sender's text) to correlate with
// Event Notifications' own logs.
func (n Notification) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", clip(n.ID)),
		slog.String("notification_id", clip(n.NotificationID)),
		slog.String("event_type", n.EventType),
		slog.String("event_sub_type", n.EventSubType),
		slog.String("secret_type", n.SecretType),
		slog.String("instance_crn", n.InstanceCRN),
		slog.Any("secret_crns", n.SecretCRNs()),
	)
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}
