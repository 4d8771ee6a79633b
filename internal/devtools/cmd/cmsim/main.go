// Command cmsim serves the Certificate Manager simulator as a standalone process for the
// local demo: IAM and one instance per region on one address. It prints one JSON object
// on stdout (URLs, instance CRNs, a test API key with Manager on every instance) and
// serves until it is killed.
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
	"strings"
	"syscall"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/simserve"
)

// Info is the JSON object cmsim prints once it is listening.
type Info struct {
	IAMURL    string            `json:"iam_url"`   // core.IamAuthenticator.URL
	TokenURL  string            `json:"token_url"` // IAMURL + /identity/token
	Endpoints map[string]string `json:"endpoints"` // region -> Certificate Manager base URL
	Instances map[string]string `json:"instances"` // region -> instance CRN
	APIKey    string            `json:"api_key"`   // Manager on every instance
}

type config struct {
	listen        string
	regions       []string
	allowHTTP     bool
	tokenLifetime time.Duration
}

func main() {
	var cfg config
	var regions string
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	flag.StringVar(&regions, "regions", "us-south,eu-de", "comma-separated regions, one instance each")
	flag.BoolVar(&cfg.allowHTTP, "allow-http-channels", true, "let the channel API accept http:// endpoints (the local demo has no TLS)")
	flag.DurationVar(&cfg.tokenLifetime, "token-lifetime", time.Hour, "IAM access token lifetime")
	flag.Parse()
	for _, r := range strings.Split(regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.regions = append(cfg.regions, r)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cmsim:", err)
		os.Exit(1)
	}
}

// run listens, prints Info to out and serves until ctx ends.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if len(cfg.regions) == 0 {
		return errors.New("no regions")
	}
	for _, r := range cfg.regions {
		// AddInstance panics on a malformed region; refuse it here with an error instead.
		if _, err := crn.ParseInstance("crn:v1:bluemix:public:cloudcerts:" + r + ":a/check:check::"); err != nil {
			return fmt.Errorf("region %q: %w", r, err)
		}
	}
	sim, err := cmsim.New(cmsim.Options{AllowHTTPChannels: cfg.allowHTTP, TokenLifetime: cfg.tokenLifetime})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	key, err := simserve.NewAPIKey("cmsim-")
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
		sim.Grant(key, inst, cmsim.Manager)
		info.Endpoints[r] = sim.RegionURL(base, r)
		info.Instances[r] = inst
	}
	if err := json.NewEncoder(out).Encode(info); err != nil {
		_ = ln.Close()
		return fmt.Errorf("print info: %w", err)
	}

	return simserve.Serve(ctx, ln, sim)
}
