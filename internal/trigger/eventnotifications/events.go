package eventnotifications

// EventTypePrefix starts the CloudEvents type of every Secrets Manager event; the full
// type is EventTypePrefix + <event>[:<subtype>], for example
// "com.ibm.cloud.secrets-manager.secret_about_to_expire:in_10_days".
const EventTypePrefix = "com.ibm.cloud.secrets-manager."

// Secrets Manager event names: the complete list of the Secrets Manager documentation
// ("Events for Secrets Manager", framework/event-notifications.md), as they appear in
// data.event_type and after EventTypePrefix.
const (
	EventSecretCreated            = "secret_created"
	EventSecretCreationFailed     = "secret_creation_failed"
	EventSecretRotated            = "secret_rotated"
	EventSecretRotationFailed     = "secret_rotation_failed"
	EventSecretAboutToExpire      = "secret_about_to_expire" // subtypes in_90_days ... in_0_days
	EventSecretExpired            = "secret_expired"
	EventSecretRevoked            = "secret_revoked" // private certificates only
	EventSecretDeleted            = "secret_deleted"
	EventSecretDeletionFailed     = "secret_deletion_failed"
	EventSecretDeletionBlocked    = "secret_deletion_blocked"
	EventSecretRevocationBlocked  = "secret_revocation_blocked"
	EventSecretRotationBlocked    = "secret_rotation_blocked"
	EventSecretExpirationBlocked  = "secret_expiration_blocked"
	EventSecretDataRemoved        = "secret_data_removed"
	EventSecretVersionDataDeleted = "secret_version_data_deleted"
	EventSecretTaskCreated        = "secret_task_created" // custom credentials only
	EventSecretTaskSucceeded      = "secret_task_succeeded"
	EventSecretTaskFailed         = "secret_task_failed"
	EventSecretTaskDeleted        = "secret_task_deleted"
	EventTest                     = "test_event"
)

// Action is what certbackup does with an event.
type Action int

const (
	// Unknown: an event name that is not documented. It is acknowledged (200) and
	// reported, never refused, so that a new event of the service cannot break delivery.
	Unknown Action = iota
	// Copy: a secret is new or has a new version; copy it to every backup.
	Copy
	// Test: the test event of the Secrets Manager connection; answer 200, read nothing.
	Test
	// Acknowledge: a documented event that gives nothing to copy (failures, expiry
	// warnings, deletion, revocation, locks, tasks). Deletions are never propagated
	// from a notification.
	Acknowledge
)

func (a Action) String() string {
	switch a {
	case Copy:
		return "copy"
	case Test:
		return "test"
	case Acknowledge:
		return "acknowledge"
	default:
		return "unknown"
	}
}

// Classify maps an event name (data.event_type, without EventTypePrefix or subtype) to
// its Action. Only the two events that mean "the certificate has new content" copy:
// ordering a certificate shows up as secret_created and renewal or re-import as
// secret_rotated; Secrets Manager has no separate "issued" or "renewed" event.
func Classify(eventType string) Action {
	switch eventType {
	case EventSecretCreated, EventSecretRotated:
		return Copy
	case EventTest:
		return Test
	case EventSecretCreationFailed, EventSecretRotationFailed, EventSecretAboutToExpire,
		EventSecretExpired, EventSecretRevoked, EventSecretDeleted, EventSecretDeletionFailed,
		EventSecretDeletionBlocked, EventSecretRevocationBlocked, EventSecretRotationBlocked,
		EventSecretExpirationBlocked, EventSecretDataRemoved, EventSecretVersionDataDeleted,
		EventSecretTaskCreated, EventSecretTaskSucceeded, EventSecretTaskFailed,
		EventSecretTaskDeleted:
		return Acknowledge
	default:
		return Unknown
	}
}

// Secret types whose secrets are certificates (data.secret_type).
const (
	SecretTypeImportedCert = "imported_cert"
	SecretTypePublicCert   = "public_cert"
	SecretTypePrivateCert  = "private_cert"
)

// IsCertificateType reports whether secretType is one of the three certificate types.
func IsCertificateType(secretType string) bool {
	switch secretType {
	case SecretTypeImportedCert, SecretTypePublicCert, SecretTypePrivateCert:
		return true
	default:
		return false
	}
}
