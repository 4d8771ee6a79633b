package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/trigger/cmcallback"
)

// Request is one HTTP-like request from a trigger, whatever runtime carried it.
type Request struct {
	Method  string
	Path    string // PathNotify or PathEvents
	Headers http.Header
	Body    []byte
	// ID identifies the request in logs (an activation id, a request id).
	ID string
}

// Response is the answer: a status, headers, and a JSON object body.
type Response struct {
	Status  int
	Headers map[string]string
	Body    map[string]any
}

// Paths a request may have.
const (
	// PathNotify is the Certificate Manager Callback URL channel: {"data":"<JWT>"}.
	PathNotify = "/notify"
	// PathEvents is the Event Notifications webhook (Secrets Manager events).
	PathEvents = "/events"
)

func respond(status int, body map[string]any) Response {
	return Response{Status: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: body}
}

// Misconfigured is the answer to any request when the configuration is invalid. It
// says nothing more: the caller may be anyone who knows the URL; the operator finds
// the parameter and the rule it broke in the logs.
func Misconfigured() Response {
	return respond(http.StatusInternalServerError, map[string]any{"error": "configuration", "message": "the action is misconfigured; its logs say which parameter"})
}

// Internal is the answer when the handler itself failed. It is never a success: a
// notification answered 2xx would be taken for delivered.
func Internal() Response {
	return respond(http.StatusInternalServerError, map[string]any{"error": "internal", "message": "internal error in the action; see its logs"})
}

// Handle answers one request. Only POST to a known path is served.
func (a *App) Handle(ctx context.Context, req Request) Response {
	log := a.log.With(slog.String("activation_id", req.ID))
	switch req.Path {
	case PathNotify, "":
		return a.notify(ctx, log, req)
	case PathEvents:
		return a.events(ctx, log, req)
	default:
		return respond(http.StatusNotFound, map[string]any{"error": "not_found", "message": "no such path"})
	}
}

// notify verifies a Certificate Manager notification and copies the certificates it
// names. The notification is only a hint: every certificate is read again from the
// configured source.
func (a *App) notify(ctx context.Context, log *slog.Logger, req Request) Response {
	start := a.now()
	if a.verifier == nil {
		return respond(http.StatusNotFound, map[string]any{"error": "not_found", "message": "the source instance is not a Certificate Manager instance: it sends no callback notifications"})
	}
	token, err := cmcallback.ExtractToken(req.Body)
	if err != nil {
		return rejected(log, err)
	}
	n, err := a.verifier.Verify(ctx, token)
	if err != nil {
		return rejected(log, err)
	}
	log = log.With(slog.String("event_type", n.EventType), slog.String("instance_crn", n.InstanceCRN))
	body := map[string]any{"event_type": n.EventType, "instance_crn": n.InstanceCRN}
	switch cmcallback.Classify(n.EventType) {
	case cmcallback.Test:
		log.Info("test notification received")
		body["action"] = "test"
		body["message"] = "test notification verified; nothing to copy"
		return respond(http.StatusOK, body)
	case cmcallback.AcknowledgeOnly:
		log.Info("notification acknowledged; no copy needed")
		body["action"] = "acknowledged"
		body["message"] = "this event does not change certificate material; nothing copied"
		return respond(http.StatusOK, body)
	case cmcallback.Unknown:
		log.Warn("unknown event type acknowledged")
		body["action"] = "acknowledged"
		body["message"] = "unknown event type; acknowledged so that delivery never breaks, nothing copied"
		return respond(http.StatusOK, body)
	}
	certs := n.CertificatesToCopy()
	ids := make([]string, len(certs))
	for i, c := range certs {
		ids[i] = c.CRN
	}
	body["action"] = "replicate"
	status := a.replicateAll(ctx, log, ids, body)
	body["duration_ms"] = a.now().Sub(start).Milliseconds()
	log.Info("notification handled", slog.Int("status", status), slog.Int("certificates", len(ids)))
	return respond(status, body)
}

// MaxDetailedResults bounds the per-pair results an answer lists; the summary counts
// them all. An answer must stay far below a runtime's result limit (OpenWhisk: 1 MB)
// whatever a notification lists.
const MaxDetailedResults = 50

// replicateAll copies each certificate to every backup, one certificate after the
// other (each one to the backups at once), and fills body with the results, the
// summary and the message; it returns the answer's status.
func (a *App) replicateAll(ctx context.Context, log *slog.Logger, ids []string, body map[string]any) int {
	// The engine's own lines carry this request's id and event too; the copy shares
	// the process's cache of copy locations.
	eng := *a.checkedEngine(ctx)
	eng.Logger = log
	if len(ids) > 1 {
		eng.Batch = replicate.NewBatch() // one listing of each backup for the whole notification
	}
	var pairs []replicate.PairResult
	for _, id := range ids {
		log.Info("replicating", slog.String("source_crn", id))
		pairs = append(pairs, eng.ReplicateCertificate(ctx, id)...)
	}
	return summarize(pairs, body)
}

// summarize is the one rule that turns pair results into an answer: 502 when a copy
// failed (the sender may retry; the reconcile repairs it anyway), else 200, with a
// message that says what happened.
func summarize(pairs []replicate.PairResult, body map[string]any) int {
	summary := map[string]int{}
	for _, p := range pairs {
		summary[string(p.Outcome)]++
	}
	body["summary"] = summary
	if len(pairs) > MaxDetailedResults {
		body["results"] = pairs[:MaxDetailedResults]
		body["results_omitted"] = len(pairs) - MaxDetailedResults
	} else {
		body["results"] = pairs
	}
	skipped := summary[string(replicate.Skipped)]
	switch {
	case summary[string(replicate.Failed)] > 0:
		body["message"] = "at least one copy failed; the periodic reconcile will retry it"
		return http.StatusBadGateway
	case len(pairs) > 0 && skipped == len(pairs):
		body["message"] = "none of the certificates exists in the source any more; nothing was copied"
	case skipped > 0:
		body["message"] = "every certificate that still exists in the source is in every backup; the others were skipped"
	default:
		body["message"] = "every certificate is in every backup"
	}
	return http.StatusOK
}

// rejected answers a notification that was refused, with the status of its error class.
func rejected(log *slog.Logger, err error) Response {
	status := cmcallback.HTTPStatus(err)
	class := "rejected"
	switch {
	case errors.Is(err, cmcallback.ErrTooLarge):
		class = "too_large"
	case errors.Is(err, cmcallback.ErrBadSignature):
		class = "bad_signature"
	case errors.Is(err, cmcallback.ErrExpired):
		class = "expired"
	case errors.Is(err, cmcallback.ErrWrongInstance), errors.Is(err, cmcallback.ErrForeignCertificate):
		class = "forbidden"
	case errors.Is(err, cmcallback.ErrUnsupportedVersion):
		class = "unsupported_version"
	case errors.Is(err, cmcallback.ErrKeyUnavailable):
		class = "key_unavailable"
	case errors.Is(err, cmcallback.ErrMalformed):
		class = "malformed"
	}
	log.Warn("notification rejected", slog.Int("status", status), slog.String("reason", class), slog.String("error", err.Error()))
	return respond(status, map[string]any{"error": class, "message": err.Error()})
}
