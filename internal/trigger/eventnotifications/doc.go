// Package eventnotifications authenticates and decodes the webhooks that IBM Cloud Event
// Notifications (EN) delivers for Secrets Manager (SM) events, and decides what each
// event asks of certbackup. It is the second trigger beside cmcallback (Certificate
// Manager's Callback URL) and follows the same rules.
//
// The package is pure logic: no network, no engine. It never puts the body, a value
// taken from it, the Authorization header or the webhook secret into an error, and
// String/LogValue of a Notification print only event names and CRNs.
//
// # Trust
//
// EN has no documented signature format for webhooks, so the sender is authenticated
// by a shared secret that EN sends as a sensitive custom header:
// "Authorization: Bearer <webhook secret>" (Authenticate, constant time). After that,
// Parse binds the notification to configuration: the envelope's source (and
// data.source_instance_crn when present) must be the configured source instance, and
// every secret must be one of its secrets, else ErrWrongInstance / ErrForeignSecret
// (403) before anything is read. The notification is only a hint: the engine reads each
// secret again from the configured instance with its own credentials, and nothing here
// ever yields a URL from the payload (source_instance_api_public_url and
// source_instance_api_private_url are ignored).
//
// # What Parse accepts
//
// The structured CloudEvents JSON envelope EN delivers (docs/services/event-notifications.md
// §2 and §3 have the facts and their sources):
//
//	{"id":"...","source":"<SM instance CRN>","specversion":"1.0",
//	 "type":"com.ibm.cloud.secrets-manager.secret_rotated","time":"<RFC 3339>",
//	 "datacontenttype":"application/json","notification_id":"...","ibmen...":"...",
//	 "data":{"event_type":"secret_rotated","secret_type":"imported_cert",
//	         "secrets":[{"secret_id":"<secret CRN or UUID>","secret_name":"...","secret_group_id":"default"}],
//	         "source_instance_crn":"<SM instance CRN>"}}
//
// Strict everywhere (as cmcallback): the body is at most MaxBodySize and one JSON object
// with nothing after it; keys are exact and a key repeated (even in another case) is
// refused at every level; every field read has its documented JSON type (a number
// where a string is documented is ErrMalformed); null counts as absent.
//
// Liberal only where the sources say the service varies, each choice below:
//
//   - Unknown fields are ignored at every level. SM: "The properties that are sent ...
//     vary depending on the event type and type of secret"; EN adds its own extension
//     attributes (ibmensourceid, ibmenseverity, ibmendefaultshort, ibmendefaultlong,
//     notification_id). secret_task_* events carry tasks[], which is ignored with the
//     rest: they are acknowledged and read nothing.
//   - secret_id may be a secret CRN (what SM's documentation shows) or a bare UUID (how
//     IBM's own Code Engine sample uses it). A CRN must be a secret CRN of the configured
//     instance (compared by parsed identity, the instance GUID without regard to case),
//     else ErrForeignSecret, even when it is malformed: anything that starts with "crn:"
//     and is not ours is "another instance's". A bare UUID must have UUID syntax (else
//     ErrMalformed) and becomes a secret of the configured instance. IDs are
//     lower-cased; each distinct secret is kept once, in first-seen order.
//   - The event name comes from type ("com.ibm.cloud.secrets-manager.<name>[:<subtype>]",
//     EN's documented form) and/or data.event_type (and data.event_sub_type); either may
//     be absent, and when both are present they must agree (ErrMalformed otherwise). A
//     type that does not start with that prefix is ErrMalformed. An undocumented name is
//     accepted and classified Unknown.
//   - data may be an object, or a JSON string whose whole content is one object, decoded
//     with the same strict rules. EN's documentation says that for Code Engine
//     destinations "the structure of data and type of datacontenttype varies", and the
//     exact envelope SM events produce is not published; no source shows the string
//     form (UNVERIFIED), it is accepted because refusing it would lose every event if
//     it is real, and it grants nothing: the same checks apply to its content.
//     datacontenttype is type-checked but its value is not enforced, for the same reason.
//   - data.source_instance_crn is checked when present and tolerated when absent (it is
//     in SM's documented data, but the delivered envelope is UNVERIFIED); source, the
//     mandatory CloudEvents attribute, is required. specversion, when present, must be
//     "1.0"; id, time and notification_id are optional (time, when present, RFC 3339).
//
// Not accepted: CloudEvents binary mode (attributes in ce-* headers, data as the whole
// body), data_base64, an envelope nested inside another object, and bodies reshaped by
// an EN webhook template: the destination must send EN's default payload.
//
// Limits: data.secrets holds at most MaxSecrets (100, SM's documented maximum per
// notification) entries, counted before duplicates collapse; more is ErrTooLarge (413),
// like an oversized body, because it is a bound on work rather than a syntax error. A
// copy event (secret_created, secret_rotated) must name at least one secret.
package eventnotifications
