package cmsim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simfault"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/simrate"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// Role is an IAM service role on one Certificate Manager instance. Roles are ordered:
// Manager can do everything Writer can, Writer everything Reader can.
type Role int

// The three service roles of Certificate Manager (docs/services/certificate-manager.md
// §4.3).
const (
	Reader Role = iota + 1
	Writer
	Manager
)

func (r Role) String() string {
	switch r {
	case Reader:
		return "Reader"
	case Writer:
		return "Writer"
	case Manager:
		return "Manager"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// Options configure a Simulator. The zero value is usable.
type Options struct {
	// TokenLifetime of IAM access tokens; default one hour, like IAM. go-sdk-core treats
	// a token as expired 10 s before its expiration, so lifetimes under ~11 s make every
	// call fetch a new token (docs/services/go-libraries.md §2.1).
	TokenLifetime time.Duration
	// DeliveryTimeout bounds one notification delivery; default 5 s.
	DeliveryTimeout time.Duration
	// HTTPClient delivers notifications (for example one that trusts an
	// httptest.NewTLSServer). Default: a client that follows no redirects.
	HTTPClient *http.Client
	// AllowHTTPChannels lets the channel-create API accept http:// endpoints. The real
	// service wants https; the local demo and tests usually have no TLS.
	AllowHTTPChannels bool
	// Now is the clock for token expiry, certificate status and rate limits. Default
	// time.Now. go-sdk-core compares "expiration" with the real clock.
	Now func() time.Time
	// CA issues ordered and renewed certificates. Default: a new testpki CA.
	CA *testpki.CA
	// Account is the account id in the CRNs made by AddInstance. Default: random.
	Account string
	// Seed of the random source that decides probabilistic faults. Default 1, so runs
	// are reproducible.
	Seed uint64
}

// Simulator plays IAM and Certificate Manager instances. It is an http.Handler and is
// safe for concurrent use.
type Simulator struct {
	*simfault.Set // faults and latency: Inject, RemoveFault, ClearFaults, SetLatency, SetSeed

	now             func() time.Time
	ca              *testpki.CA
	account         string
	deliveryTimeout time.Duration
	client          *http.Client
	allowHTTP       bool

	iam *simiam.Service

	mu        sync.Mutex
	keys      map[string]map[string]Role // API key -> instance CRN -> role
	instances map[string]*instance
	placeID   func(*instance) string // set by seed for one addLocked; see nextIDLocked

	log        []logEntry
	deliveries []Delivery
	sent       []SentToken
}

// instance is one Certificate Manager instance.
type instance struct {
	crn      string
	region   string
	key      *rsa.PrivateKey
	certs    map[string]*certificate
	channels []*Channel

	// rate-limit windows of instance-wide operations
	orders, renews, channelCreates, channelTests simrate.Window
}

// New makes a Simulator with no API keys and no instances.
func New(opts Options) (*Simulator, error) {
	s := &Simulator{
		now:             opts.Now,
		ca:              opts.CA,
		account:         opts.Account,
		deliveryTimeout: opts.DeliveryTimeout,
		client:          opts.HTTPClient,
		allowHTTP:       opts.AllowHTTPChannels,
		keys:            map[string]map[string]Role{},
		instances:       map[string]*instance{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ca == nil {
		ca, err := testpki.NewCA("Certificate Manager Simulator")
		if err != nil {
			return nil, fmt.Errorf("simulator CA: %w", err)
		}
		s.ca = ca
	}
	if s.account == "" {
		s.account = randomHex(16)
	}
	s.iam = simiam.New(s.now, opts.TokenLifetime)
	if s.deliveryTimeout <= 0 {
		s.deliveryTimeout = 5 * time.Second
	}
	if s.client == nil {
		s.client = &http.Client{
			// A redirect is not a delivery: the real endpoint must answer 2xx itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s.Set = simfault.NewSet(seed)
	return s, nil
}

// CA is the authority that issues ordered and renewed certificates; tests use it to mint
// certificates to import.
func (s *Simulator) CA() *testpki.CA { return s.ca }

// RegionURL is the Certificate Manager base URL of region for a simulator served at
// base (for example an httptest.Server URL): base + "/" + region. A client appends
// /api/... to it.
func (s *Simulator) RegionURL(base, region string) string {
	return strings.TrimRight(base, "/") + "/" + region
}

// IAMURL is the value for core.IamAuthenticator.URL for a simulator served at base; the
// authenticator posts to IAMURL + "/identity/token".
func (s *Simulator) IAMURL(base string) string { return strings.TrimRight(base, "/") }

// AddAPIKey registers an IAM API key with no roles.
func (s *Simulator) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; !ok {
		s.keys[key] = map[string]Role{}
	}
	s.iam.AddKey(key)
}

// RemoveAPIKey forgets key: it can get no new tokens, and tokens already issued for it
// lose all roles.
func (s *Simulator) RemoveAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
	s.iam.RemoveKey(key)
}

// Grant gives key role on the instance instanceCRN (registering key if needed). Roles are
// evaluated on every request, so a grant or revoke applies to tokens already issued.
func (s *Simulator) Grant(key, instanceCRN string, role Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.keys[key]
	if !ok {
		g = map[string]Role{}
		s.keys[key] = g
	}
	s.iam.AddKey(key)
	g[instanceCRN] = role
}

// Revoke removes key's role on instanceCRN.
func (s *Simulator) Revoke(key, instanceCRN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys[key], instanceCRN)
}

// ExpireTokens makes every access token issued so far expired, to test refresh.
func (s *Simulator) ExpireTokens() {
	s.iam.ExpireAll()
}

// AddInstance creates an instance in region, in the simulator's account, and returns its
// CRN. It panics if region is not a well-formed region name: that is a bug in the test.
func (s *Simulator) AddInstance(region string) (instanceCRN string) {
	c := crn.CRN{CName: "bluemix", CType: "public", Region: region, Account: s.account, Instance: randomUUID()}
	if err := s.AddInstanceCRN(c.String()); err != nil {
		panic(fmt.Sprintf("simulator: AddInstance(%q): %v", region, err))
	}
	return c.String()
}

// AddInstanceCRN creates an instance with the given CRN (for example one from a captured
// notification).
func (s *Simulator) AddInstanceCRN(instanceCRN string) error {
	c, err := crn.ParseInstance(instanceCRN)
	if err != nil {
		return fmt.Errorf("add instance: %w", err)
	}
	if c.String() != instanceCRN {
		return fmt.Errorf("add instance: %q is not in canonical form", instanceCRN)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("add instance: notification key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.instances[instanceCRN]; ok {
		return fmt.Errorf("add instance: %s already exists", instanceCRN)
	}
	s.instances[instanceCRN] = &instance{crn: instanceCRN, region: c.Region, key: key, certs: map[string]*certificate{}}
	return nil
}

// Instances lists the instance CRNs, sorted.
func (s *Simulator) Instances() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.instances))
	for c := range s.instances {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// RotateKey gives the instance a new notification key pair. Tokens signed before no
// longer verify with the key the public-key endpoint serves.
func (s *Simulator) RotateKey(instanceCRN string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("rotate key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[instanceCRN]
	if !ok {
		return fmt.Errorf("rotate key of %s: %w", instanceCRN, ErrNotFound)
	}
	inst.key = key
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}
