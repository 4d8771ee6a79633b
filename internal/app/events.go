package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/trigger/eventnotifications"
)

// Event Notifications waits 10 s for a webhook's answer, then retries (3 times) and
// then drops the notification. The answer is sent before EventsBudget has passed;
// what was not started by then is left for EN's retry and the next reconcile.
const (
	EventsBudget = 8 * time.Second
	// eventsConcurrency is how many secrets of one notification are copied at once;
	// the provider's per-instance request ceiling paces the calls.
	eventsConcurrency = 8
	// minPerSecret is the time a secret's copy needs at least (a read, a listing or
	// a cached read, a write, a read-back) to be worth starting.
	minPerSecret = 1500 * time.Millisecond
)

// events answers an Event Notifications webhook: bearer first, then the envelope,
// then the copy of each distinct secret it names. The notification is only a hint:
// every secret is read again from the configured source.
func (a *App) events(ctx context.Context, log *slog.Logger, req Request) Response {
	start := a.now()
	if a.cfg.WebhookSecret == "" {
		log.Error("an Event Notifications request came, but webhook_secret is not configured")
		return Misconfigured()
	}
	if err := eventnotifications.Authenticate(req.Headers, a.cfg.WebhookSecret); err != nil {
		return eventsRejected(log, err)
	}
	n, err := eventnotifications.Parse(req.Body, a.cfg.SourceInstanceCRN)
	if err != nil {
		return eventsRejected(log, err)
	}
	log = log.With(slog.String("event_type", n.EventType), slog.String("instance_crn", n.InstanceCRN), slog.String("event_id", n.ID))
	body := map[string]any{"event_type": n.EventType, "instance_crn": n.InstanceCRN}
	switch n.Action() {
	case eventnotifications.Test:
		log.Info("test event received")
		body["action"], body["message"] = "test", "test event authenticated; nothing read"
		return respond(http.StatusOK, body)
	case eventnotifications.Copy:
	default:
		log.Info("event acknowledged; nothing to copy")
		body["action"], body["message"] = "acknowledged", "this event does not call for a copy; nothing read"
		return respond(http.StatusOK, body)
	}
	ids := n.SecretCRNs()
	if len(n.SecretsToCopy()) == 0 {
		ids = nil
	}

	ctx, cancel := context.WithTimeout(ctx, EventsBudget)
	defer cancel()
	pairs, left := a.replicateBatch(ctx, log, ids)
	body["action"] = "replicate"
	status := summarize(pairs, body)
	if len(left) > 0 {
		// Answer so that Event Notifications retries; a retry of what is already
		// copied costs listings and reads only.
		status = http.StatusServiceUnavailable
		body["left_for_retry"] = left
		body["message"] = "not every secret could be copied within Event Notifications' time; it retries, and the next reconcile copies whatever is still missing"
		log.Warn("secrets left for the retry and the next reconcile", slog.Any("secret_crns", left))
	}
	body["duration_ms"] = a.now().Sub(start).Milliseconds()
	log.Info("event handled", slog.Int("status", status), slog.Int("secrets", len(ids)), slog.Int("left", len(left)))
	return respond(status, body)
}

// replicateBatch copies the secrets, a few at once, each to every backup, and returns
// the results and the secrets it did not start because the budget was running out.
func (a *App) replicateBatch(ctx context.Context, log *slog.Logger, ids []string) ([]replicate.PairResult, []string) {
	eng := *a.checkedEngine(ctx)
	eng.Logger = log
	if len(ids) > 1 {
		eng.Batch = replicate.NewBatch() // one listing of each backup for the whole batch
	}
	results := make([][]replicate.PairResult, len(ids))
	started := make([]bool, len(ids))
	sem := make(chan struct{}, eventsConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(dl) < minPerSecret {
			<-sem
			break
		}
		started[i] = true
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = eng.ReplicateCertificate(ctx, id)
		})
	}
	wg.Wait()
	var pairs []replicate.PairResult
	var left []string
	for i, id := range ids {
		if !started[i] {
			left = append(left, id)
		}
		pairs = append(pairs, results[i]...)
	}
	return pairs, left
}

func eventsRejected(log *slog.Logger, err error) Response {
	status := eventnotifications.HTTPStatus(err)
	class := "rejected"
	switch {
	case errors.Is(err, eventnotifications.ErrUnauthorized):
		class = "unauthorized"
	case errors.Is(err, eventnotifications.ErrTooLarge):
		class = "too_large"
	case errors.Is(err, eventnotifications.ErrWrongInstance), errors.Is(err, eventnotifications.ErrForeignSecret):
		class = "forbidden"
	case errors.Is(err, eventnotifications.ErrMalformed):
		class = "malformed"
	case errors.Is(err, eventnotifications.ErrConfig):
		return Misconfigured()
	}
	log.Warn("event rejected", slog.Int("status", status), slog.String("reason", class), slog.String("error", err.Error()))
	return respond(status, map[string]any{"error": class, "message": err.Error()})
}
