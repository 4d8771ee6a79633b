// Package simulator is an in-process stand-in for IBM Cloud IAM and any number of IBM
// Cloud Certificate Manager instances in any regions. Both services have reached end of
// life, so every test, benchmark and the local demo run against this http.Handler. It
// follows docs/services/certificate-manager.md; where that document marks a behaviour
// UNVERIFIED, the simulator picks the stricter plausible one, so that code which passes
// here has not relied on the simulator being lenient.
//
// # URLs
//
// One server plays everything:
//
//	POST <server>/identity/token             IAM (core.IamAuthenticator.URL = <server>)
//	<server>/<region>/api/...                Certificate Manager of <region>
//
// so the service base URL of region r is RegionURL(<server>, r) = <server>/<r>, and a
// client appends /api/v3/... exactly as it would to https://<r>.certificate-manager.cloud.ibm.com.
// An instance asked for through another region's prefix is unknown there (404), as it
// would be at a different regional deployment.
//
// # What it must never do
//
// It never writes key material or tokens into an error body, a log line or a String
// method: error messages describe what is wrong without quoting the input.
//
// # Choices where the documentation is UNVERIFIED
//
//  1. Routing is exact: the documented method and path only, no trailing slash,
//     case-sensitive segments (publicKey, not publickey). A known path with another
//     method gets 405. Paths are routed on r.URL.EscapedPath(); each CRN is one segment,
//     unescaped by the simulator (%3A, %3a and a raw ':' all work; %2F never splits).
//  2. A malformed CRN in a path is 400; a well-formed CRN of another region or of no
//     instance is 404. Checks run in this order: 401 (token), 404 (instance in this
//     region), 403 (role on the instance), 404 (certificate), then the request itself.
//  3. 4xx bodies are {"message": "...", "code": "..."}; the code strings are the
//     simulator's own (see the code* constants). 5xx bodies from injected faults are
//     plain text, as from a gateway: a client must not need a JSON body to handle them.
//  4. Request bodies are decoded strictly: Content-Type must be application/json (415),
//     unknown fields are refused (400, catches "private_key" for "priv_key" and a "data"
//     wrapper on reimport), trailing data is refused, bodies over 1 MiB get 413.
//  5. name (required, at most 256) and description (at most 1024) are measured in UTF-16
//     code units, as JavaScript's String.length does, which is at least the rune count.
//  6. Import and reimport refuse a certificate that has already expired (400), and
//     download of an expired certificate is refused (400), as the UI documents. The
//     intermediate, when given, must sign the leaf (and each the one before).
//  7. Reimport keeps every earlier version (has_previous becomes true), keeps the CRN,
//     requires the same set of domains as the current version (400 otherwise) and is
//     refused for ordered certificates (400).
//  8. Rate limits (reimport, update and order policy update 5/min per certificate;
//     order, renew and channel create 5/min per instance; channel test 1/s per
//     instance) count every attempt that reaches an existing resource, including
//     attempts that then fail validation. The answer is 429 with Retry-After in whole
//     seconds (at least 1) and an error body. The Go API (Reimport, Order, Renew...) is
//     the test's own hand and is not rate limited.
//  9. Update (POST /api/v3/certificate/{cert}) answers 200 with an empty body (bluemix-go
//     expects none); an omitted description clears it. Delete answers 200, empty body.
//  10. The more than 1000 certificates limit answers 400 code certificate_limit_exceeded.
//  11. List: the default order is expires_on ascending, with _id as tie breaker; order
//     may be "expires_on" or "name" (400 otherwise); page_size is 1..200 (400
//     otherwise), default 100. The cursor is the last item's _id and its order value as
//     strings. A full page always carries a cursor, even when nothing follows, so the
//     last page may be empty; only a page shorter than page_size has empty-string
//     cursors. A cursor continues strictly after (value, _id), so items changed during a
//     listing may be skipped or seen twice, as with any keyset cursor. Only one cursor
//     parameter, or an empty one, is 400. page_number is ignored.
//  12. The public key needs keyFormat=pem (400 otherwise) and is an SPKI "PUBLIC KEY" PEM.
//  13. Channels: create (PUT .../notifications/channels) answers 200 with the channel
//     object; type must be "url"; the endpoint must be an absolute https URL unless
//     Options.AllowHTTPChannels; an omitted is_active means false. The test call is
//     POST /api/v1/instances/{instance}/notifications/channels/{id}/test (the path is a
//     guess); it answers 200 with an empty body whatever the delivery outcome, and tests
//     the channel even when it is inactive. Delete answers 200, empty body.
//  14. Deliveries are POSTs of {"data":"<JWT>"} with Content-Type application/json,
//     synchronous, one attempt, no redirects followed, 5 s timeout by default. A channel
//     receives an event only if its version is at least the event's minimum version
//     (cert_reimported v2, cert_issued/cert_renewed v4, ...). v2 and v1 payloads carry
//     expiry_date only for the about-to-expire events, like v3 and v4.
//  15. Order and renew issue at once from the simulator's own CA (the real service is
//     asynchronous). key_algorithm is "rsaEncryption 2048 bit" (also when absent, the
//     documented default) or "rsaEncryption 4096 bit"; algorithm is
//     "sha256WithRSAEncryption" (also when absent), the only value offered; any other
//     value of either is 400. The certificate gets an RSA key of that size and is signed
//     sha256WithRSAEncryption by the CA's RSA intermediate, as Let's Encrypt's were.
//     issuer and dns_provider_instance_crn are not checked. Renew issues the same kind
//     of key from the same intermediate and always makes a new key, rotate_keys false
//     included. Renewing an imported certificate is 400. The Go API's Order is the
//     test's shortcut: an ECDSA P-256 key from the default intermediate, which the
//     service never issued, because tests order many certificates and RSA keys are slow.
//  16. status is "valid" or "expired" from the dates.
//  17. IAM wants Content-Type application/x-www-form-urlencoded; errors other than the
//     documented unknown-key one use the IAM body shape with a guessed errorCode.
//     Access tokens are opaque.
//  18. A request delayed by SetLatency or a Fault is still carried out when the client
//     gives up while waiting, as by a server that has already accepted it: a timed-out
//     write may have happened. Fault.AfterOp goes further: the write happens and the
//     response is replaced or dropped. Faults act before authentication, like a gateway.
//  19. In notifications, domains is the certificate's domains joined with "," (no
//     space); the payloads on record show only single domains.
//  20. The order policy (PUT /api/v1/certificate/{cert}/order/policy) needs Manager, as
//     order and renew do (the role table does not list it). The body is
//     {"auto_renew_enabled": bool}: an absent value means false, because IBM's Go SDK
//     (bluemix-go) omits false from its model (omitempty) and so sends {} to disable;
//     null, another type, or any other field (the SDK model's "name" too) is 400. An
//     imported certificate has no order policy (400 not_ordered). The answer is 200 with
//     the policy, {"auto_renew_enabled": bool}; no event is sent and last_modified does
//     not change.
//  21. The download answer carries data_key_id, an opaque id (a UUID here) that is new
//     with every version; the metadata, list, import and reimport answers have none, as
//     in bluemix-go's models.
//
// # The Go API
//
// Tests and the demo set up and inspect state without HTTP: AddAPIKey/Grant,
// AddInstance, Seed (a first import, no event), Order/Renew/Reimport (with their events),
// SetAutoRenew (the order policy), SendEvent (the service's scheduled events), AddChannel
// (any payload version), Sign and RotateKey, Snapshot/Get/Delete,
// Inject/SetLatency/SetSeed, and the records Requests, Count, Writes, Deliveries and
// SentTokens. These calls are not logged and not rate
// limited; they run the same validation as the API where one exists.
package cmsim
