package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/certbackup/certbackup/internal/config"
	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/certbackup/certbackup/internal/provider/ibmapi"
)

// ExitUnconfirmed is test-channel's exit status when Certificate Manager accepted the
// request for a test notification but nothing confirmed its delivery. test-channel exits
// ExitOK only when the service confirms the delivery, which its answer never does today;
// deploy.sh reports this status as "requested, not confirmed".
const ExitUnconfirmed = 3

// channel registers the web action as the source instance's Callback URL channel
// (register-channel), or asks Certificate Manager to send it a test notification
// (test-channel). Both find the channel by its endpoint, so running them again after a
// redeploy changes nothing.
func (r *runner) channel(name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(r.stderr)
	f := NewFlags(fs)
	endpoint := fs.String("url", "", "the web action's URL, ending in .http")
	timeout := fs.Duration("timeout", time.Minute, "give up after this")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(r.stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return ExitUsage
	}
	if err := checkCallbackURL(*endpoint); err != nil {
		fmt.Fprintf(r.stderr, "%s: --url: %v\n", name, err)
		return ExitUsage
	}
	f.WarnAPIKeyFlags(r.stderr)
	cfg, err := f.Config(config.ModeNotify, r.getenv)
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitUsage
	}
	c, err := r.client(cfg, cfg.APIKey, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	source := cfg.SourceInstanceCRN
	channels, err := c.ListChannels(ctx, source)
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitFail
	}
	var existing *cms.Channel
	for i := range channels {
		if channels[i].Endpoint == *endpoint {
			existing = &channels[i]
			break
		}
	}

	if name == "test-channel" {
		if existing == nil {
			fmt.Fprintf(r.stderr, "%s: no notification channel of %s has the endpoint %s; run register-channel first\n", name, source, *endpoint)
			return ExitFail
		}
		if err := c.TestChannel(ctx, source, existing.ID); err != nil {
			fmt.Fprintf(r.stderr, "%s: Certificate Manager did not accept the request to test channel %s (%s): %v\n", name, existing.ID, *endpoint, err)
			return ExitFail
		}
		// The answer to the test request carries no delivery result (the simulator
		// answers 200 whatever the delivery did; the real answer is undocumented), so
		// nothing here shows that the endpoint received the notification. Say exactly
		// that, and let the exit status say it too.
		fmt.Fprintf(r.stdout, "Certificate Manager accepted the request to send test_notification_channel to channel %s (%s); its answer does not say whether the endpoint received it.\n", existing.ID, *endpoint)
		if !existing.IsActive {
			fmt.Fprintf(r.stdout, "The channel is INACTIVE: Certificate Manager sends it no events until it is enabled (console: Notifications).\n")
		}
		fmt.Fprintf(r.stdout, "Delivery not confirmed: look for test_notification_channel in the endpoint's logs.\n")
		return ExitUnconfirmed
	}

	if existing != nil {
		state := "active"
		if !existing.IsActive {
			state = "INACTIVE: enable it in the console (Notifications) to receive events"
		}
		fmt.Fprintf(r.stdout, "Callback URL channel %s is already registered on %s (%s).\n", existing.ID, source, state)
		if !existing.IsActive {
			return ExitFail
		}
		return ExitOK
	}
	ch, err := c.CreateChannel(ctx, source, cms.Channel{Type: cms.ChannelTypeURL, Endpoint: *endpoint, IsActive: true})
	if err != nil {
		fmt.Fprintf(r.stderr, "%s: %v\n", name, err)
		return ExitFail
	}
	fmt.Fprintf(r.stdout, "Registered Callback URL channel %s on %s: %s (payload version %d).\n", ch.ID, source, *endpoint, ch.Version)
	return ExitOK
}

// checkCallbackURL: Certificate Manager only calls public https endpoints; http is let
// through on loopback for the local simulator.
func checkCallbackURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Scheme != "https" {
		if err := ibmapi.ValidateEndpoint(raw); err != nil {
			return fmt.Errorf("Certificate Manager calls only https endpoints: %w", err)
		}
	}
	if u.RawQuery != "" || u.User != nil {
		return errors.New("must not carry a query or credentials")
	}
	return nil
}
