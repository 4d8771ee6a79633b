// Package smsim is an in-process stand-in for IBM Cloud IAM and any number of IBM Cloud
// Secrets Manager (API v2) instances, for the certificate secret types imported_cert,
// public_cert and private_cert. No machine here reaches IBM Cloud, so every test of the
// Secrets Manager provider runs against this http.Handler. It follows the facts in
// docs/services/secrets-manager.md; where IBM's documentation and SDK leave a behaviour
// open, the simulator picks the stricter plausible one (listed below), so that code
// which passes here has not relied on the simulator being lenient.
//
// # URLs
//
// One server plays everything:
//
//	POST <server>/identity/token           IAM (core.IamAuthenticator.URL = <server>)
//	<server>/<region>/<guid>/api/v2/...    the instance <guid> in <region>
//
// so InstanceURL(<server>, crn) = <server>/<region>/<guid> stands for
// https://<guid>.<region>.secrets-manager.appdomain.cloud and is the value of the
// `endpoints` override keyed by the instance CRN. Start serves a Simulator on 127.0.0.1.
//
// Routes (all under <instance>/api/v2), with the least role each needs:
//
//	GET    secrets                                  Reader         list, metadata only
//	POST   secrets                                  Writer         create an imported_cert
//	GET    secrets/{id}                             SecretsReader  with payload
//	DELETE secrets/{id}                             Manager        204
//	GET    secrets/{id}/metadata                    Reader
//	PATCH  secrets/{id}/metadata                    Writer         application/merge-patch+json
//	GET    secrets/{id}/versions                    Reader         metadata, no paging
//	POST   secrets/{id}/versions                    Writer         new imported_cert version
//	GET    secrets/{id}/versions/{id|current|previous}           SecretsReader  with payload
//	GET    secrets/{id}/versions/{id|current|previous}/metadata  Reader
//	GET    secret_groups                            Reader
//	POST   secret_groups                            Manager
//	GET    secret_groups/{id}                       Reader
//	DELETE secret_groups/{id}                       Manager        204, only when empty
//	GET    secret_groups/{group name}/secret_types/{type}/secrets/{name}  SecretsReader
//
// Checks run in this order: an injected fault, route (404, 405), Options.RateLimit
// (429), token (401), role (403), query parameters (400), then the request (404 for an
// unknown secret, 415, 400, 412, 409).
//
// # What it must never do
//
// It never writes key material, API keys or tokens into an error body, a log line or a
// String method; error messages describe what is wrong without quoting the input.
// Secret and SecretVersion print without their payloads.
//
// # Choices where IBM's facts are UNVERIFIED
//
//  1. Error bodies use the IBM API handbook shape
//     {"errors":[{"code","message","more_info"}],"status_code","trace"} (go-sdk-core
//     reads errors[0].message), with an X-Correlation-Id header equal to trace; the code
//     strings are the simulator's own. 5xx bodies from injected faults are plain text,
//     as from a gateway. IAM errors use IAM's {errorCode, errorMessage, context} shape.
//  2. Routing is exact: documented method and path only, no trailing slash; a known
//     path with another method is 405. Unknown and repeated query parameters are 400 (a
//     misspelt match_all_labels must not silently list everything). A secret, version or
//     group id that is not a lower-case UUID is 400 (versions also take current and
//     previous); GET secret_groups/default is 404 and the default group is not listed.
//  3. Request bodies are decoded strictly: Content-Type application/json (PATCH:
//     application/merge-patch+json), else 415; unknown fields, trailing data and wrong
//     types are 400; bodies over 1 MiB are 413. "" for intermediate or private_key is
//     400 (the 50-character minimum), not "absent".
//  4. Only imported_cert can be created through the API; a public_cert or private_cert
//     create is 400 (the real service orders or issues them from a configured CA), and
//     other secret types are 400. managed_csr is 400 (not simulated).
//  5. Names must match both the API's pattern (which allows underscores) and the rule
//     of IBM's limits page (letters, digits, dashes and dots only, a letter or digit
//     first and last): my_cert is refused. A description, when given, is 2–1024
//     characters as the limits page says (the API schema says 0–1024): "" is 400, omit
//     the field instead; PATCH null clears it. Secret and group names (2–256, 2–64),
//     descriptions and labels (2–64) are counted in UTF-16 code units, never fewer than
//     characters. The PEM pattern of the CLI reference is anchored: the field must be
//     PEM blocks and nothing else.
//  6. The certificate field of an imported_cert (and of a private_cert) must hold
//     exactly one certificate; the intermediate must be certificates each of which signed
//     the one before (the first signed the leaf); the private key, when given, must be
//     unencrypted and match. An already expired certificate is refused (400).
//  7. custom_metadata and version_custom_metadata must be JSON objects of at most 10 000
//     bytes (compact JSON). A PATCH replaces custom_metadata as a whole; null clears
//     description, labels and custom_metadata; null name, an empty patch and any other
//     field are 400. A new version's custom_metadata, when given, replaces the secret's.
//  8. A duplicate name of the same secret type in the instance is 409, compared
//     without regard to case; so is a second group of the same name, a group named
//     default, and deleting a group that still holds secrets. A secret_group_id that is
//     well formed but not a group of the instance is 400.
//  9. Locks (IBM: rotation is denied while the previous version is locked; modifying or
//     deleting a locked secret is 412): DELETE and PATCH metadata are 412 while any
//     version has a lock; a new version is 412 while the previous version has one. A
//     secret whose only locked version is the current one can still get a new version, as
//     IBM documents. The locks API itself is not served: tests lock through LockSecret,
//     LockVersion and Unlock.
//  10. Versions: two keep their payload (current and previous), metadata of at most 50
//     is kept and versions_total counts the kept ones (at most 50, as the Terraform
//     docs bound it); versions are listed newest first. GET of a version without payload
//     answers 200 with payload_available false and no payload fields. "previous" of a
//     secret with one version is 404.
//  11. Only an Active (1) secret returns a payload; Pre-activation, Suspended,
//     Deactivated and Destroyed answer without one. Destroyed deletes the payloads and
//     locks. A destroyed secret gets no new version (400).
//  12. downloaded is the current version's flag: set when a GET returns its payload,
//     false again after a new version. The create and new-version answers carry no
//     payload.
//  13. updated_at changes only on a metadata PATCH, not on a new version, so that a
//     client cannot find rotations by sort=-updated_at.
//  14. Listing: default order is by id (unrelated to creation); sort ties are broken by
//     id; expiration_date puts secrets without a certificate last. limit 1–1000
//     (default 200), offset 0–10 000 000, search 2–128 characters (case-sensitive
//     substring of id, name, description, labels, type), groups ≤201 UUIDs or default,
//     secret_types known types, match_all_labels ≤30 (exact, case-sensitive). Links are
//     absolute URLs on the request's host with the filters and limit; first never has
//     an offset, next/previous/last have one when it is not 0; next is omitted on the
//     last page, previous on the first. Offsets over a collection that changes between
//     pages may skip or repeat secrets, as with any offset paging.
//  15. Empty labels, custom_metadata, description and alt_names are left out of
//     answers, as the real service was seen to leave out labels and custom_metadata.
//  16. Certificate metadata: common_name is the subject CN; alt_names the DNS SANs
//     without the CN; issuer the issuer's CN (its full DN when it has none);
//     key_algorithm RSA<bits> or ECDSA<bits> (the API's enum style); signing_algorithm
//     Go's x509 name (SHA256-RSA, ECDSA-SHA256), which matches the one value seen from
//     the real service; serial_number lower-case colon hex; times RFC 3339 UTC with
//     milliseconds (2024-05-22T15:46:26.000Z), as seen from the real service.
//  17. A bundled public_cert holds leaf + chain in certificate and the chain again in
//     intermediate: a copier must split the bundle and not chain it twice. A
//     private_cert's ca_chain is what the test seeds (realistically the issuing CA
//     first, then its parents): issuing_ca + ca_chain concatenated repeats the issuing
//     CA.
//  18. Access tokens are opaque; roles are evaluated on every request, so a Grant or
//     Revoke applies to tokens already issued. IAM wants Content-Type
//     application/x-www-form-urlencoded.
//  19. A request delayed by SetLatency or a Fault is still carried out when the client
//     gives up while waiting, as by a server that has already accepted it. Fault.AfterOp
//     goes further: the change happens and the answer is replaced or dropped. Faults act
//     before authentication, like a gateway.
//  20. No request-rate limit is published (only the advice to stay under 20 req/s);
//     by default there is none. Options.RateLimit turns on a per-instance 429 with
//     Retry-After, and the rate observer (Arrivals, PeakRate) records every request.
//
// # The Go API
//
// Tests set up and inspect state without HTTP: AddAPIKey/Grant/Revoke/ExpireTokens,
// AddInstance, AddGroup, Seed (imported_cert, public_cert, private_cert), Rotate,
// SetState, LockSecret/LockVersion/Unlock, Get/List/FindByName/Groups/Delete,
// Inject/RemoveFault/ClearFaults/SetLatency/SetSeed, and the records Requests, Count,
// Writes, Arrivals and PeakRate. These calls are not logged, not faulted and not rate
// limited; they run the same validation as the API where one exists.
package smsim
