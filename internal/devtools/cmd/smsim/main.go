// Command smsim serves the Secrets Manager simulator as a standalone process for local
// runs: IAM and one instance per region on one loopback address. It prints one JSON
// object on stdout (URLs, instance CRNs, the `endpoints` map keyed by instance CRN, and a
// test API key with Manager on every instance) and serves until it is killed.
//
// The API key it prints is a throwaway credential for this simulator only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/simserve"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

// Info is the JSON object smsim prints once it is listening.
type Info struct {
	IAMURL    string            `json:"iam_url"`   // core.IamAuthenticator.URL
	TokenURL  string            `json:"token_url"` // IAMURL + /identity/token
	Endpoints map[string]string `json:"endpoints"` // instance CRN -> base URL
	Instances map[string]string `json:"instances"` // region -> instance CRN
	APIKey    string            `json:"api_key"`   // Manager on every instance
}

type config struct {
	listen        string
	regions       []string
	tokenLifetime time.Duration
	rateLimit     int
}

func main() {
	var cfg config
	var regions string
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8081", "loopback address to listen on (port 0 picks a free port)")
	flag.StringVar(&regions, "regions", "us-south,eu-de", "comma-separated regions, one instance each")
	flag.DurationVar(&cfg.tokenLifetime, "token-lifetime", time.Hour, "IAM access token lifetime")
	flag.IntVar(&cfg.rateLimit, "rate-limit", 0, "answer 429 above this many requests per second per instance (0: off)")
	flag.Parse()
	for _, r := range strings.Split(regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.regions = append(cfg.regions, r)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "smsim:", err)
		os.Exit(1)
	}
}

// run listens, prints Info to out and serves until ctx ends.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if len(cfg.regions) == 0 {
		return errors.New("no regions")
	}
	for i, r := range cfg.regions {
		if !slices.Contains(smsim.Regions, r) {
			return fmt.Errorf("region %q does not serve Secrets Manager (one of %s)", r, strings.Join(smsim.Regions, ", "))
		}
		if slices.Contains(cfg.regions[:i], r) {
			return fmt.Errorf("region %q is given twice", r)
		}
	}
	host, _, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return fmt.Errorf("listen address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("listen address %s is not a loopback address", cfg.listen)
	}
	sim := smsim.New(smsim.Options{TokenLifetime: cfg.tokenLifetime, RateLimit: cfg.rateLimit})
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	key, err := simserve.NewAPIKey("smsim-")
	if err != nil {
		_ = ln.Close()
		return err
	}
	info := Info{
		IAMURL: sim.IAMURL(base), TokenURL: sim.IAMURL(base) + "/identity/token",
		Endpoints: map[string]string{}, Instances: map[string]string{}, APIKey: key,
	}
	sim.AddAPIKey(key)
	for _, r := range cfg.regions {
		inst := sim.AddInstance(r)
		sim.Grant(key, inst, smsim.Manager)
		u, err := sim.InstanceURL(base, inst)
		if err != nil {
			_ = ln.Close()
			return err
		}
		info.Endpoints[inst] = u
		info.Instances[r] = inst
	}
	if err := json.NewEncoder(out).Encode(info); err != nil {
		_ = ln.Close()
		return fmt.Errorf("print info: %w", err)
	}

	return simserve.Serve(ctx, ln, sim)
}
