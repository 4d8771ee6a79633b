package smsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/simfault"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
)

// Role is an IAM service role on one Secrets Manager instance. Roles are ordered: each
// can do everything the one before it can.
type Role int

// The four service roles the engine needs (IBM docs, framework/iam.md).
const (
	// Reader lists secrets and reads metadata, versions' metadata and secret groups.
	Reader Role = iota + 1
	// SecretsReader also reads payloads (certificate, private key, chain).
	SecretsReader
	// Writer also creates secrets and versions and updates metadata.
	Writer
	// Manager also deletes secrets, creates and deletes secret groups, and manages locks.
	Manager
)

func (r Role) String() string {
	switch r {
	case Reader:
		return "Reader"
	case SecretsReader:
		return "SecretsReader"
	case Writer:
		return "Writer"
	case Manager:
		return "Manager"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// Regions are the regions that serve Secrets Manager (IBM docs, endpoints.md). An
// instance can only be added in one of them.
var Regions = []string{
	"us-south", "us-east", "ca-tor", "ca-mon", "br-sao", "eu-gb", "eu-de", "eu-es",
	"jp-tok", "jp-osa", "au-syd", "in-mum", "in-che",
}

// Options configure a Simulator. The zero value is usable.
type Options struct {
	// TokenLifetime of IAM access tokens; default one hour, like IAM. go-sdk-core treats
	// a token as expired 10 s before its expiration.
	TokenLifetime time.Duration
	// Now is the clock for tokens, timestamps and certificate expiry. Default time.Now.
	// The rate observer always uses the real clock.
	Now func() time.Time
	// Account is the account id in the CRNs made by AddInstance. Default: random.
	Account string
	// Seed of the random source that decides probabilistic faults. Default 1.
	Seed uint64
	// RateLimit, when above 0, answers 429 (Retry-After: 1) to a request that would be
	// the RateLimit+1-th to one instance within the last second. IBM publishes no limit,
	// only the advice to stay below 20 req/s; this is a test hook and is off by default.
	RateLimit int
}

// Simulator plays IAM and any number of Secrets Manager instances. It is an
// http.Handler and is safe for concurrent use.
type Simulator struct {
	*simfault.Set // faults and latency: Inject, RemoveFault, ClearFaults, SetLatency, SetSeed

	now           func() time.Time
	account       string
	tokenLifetime time.Duration
	rateLimit     int

	iam *simiam.Service

	mu        sync.Mutex
	keys      map[string]*apiKey // API key -> grants
	instances map[string]*instance
	byPrefix  map[string]*instance // "/<region>/<guid>" -> instance

	log      []logEntry
	arrivals map[string][]time.Time // instance CRN -> arrival times (real clock)
}

type apiKey struct {
	iamID  string
	grants map[string]Role // instance CRN -> role
}

// New makes a Simulator with no API keys and no instances.
func New(opts Options) *Simulator {
	s := &Simulator{
		now:       opts.Now,
		account:   opts.Account,
		rateLimit: opts.RateLimit,
		keys:      map[string]*apiKey{},
		instances: map[string]*instance{},
		byPrefix:  map[string]*instance{},
		arrivals:  map[string][]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.account == "" {
		s.account = randomHex(16)
	}
	s.iam = simiam.New(s.now, opts.TokenLifetime)
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s.Set = simfault.NewSet(seed)
	return s
}

// IAMURL is the value for core.IamAuthenticator.URL for a simulator served at base; the
// authenticator posts to IAMURL + "/identity/token".
func (s *Simulator) IAMURL(base string) string { return strings.TrimRight(base, "/") }

// InstanceURL is the base URL of the instance for a simulator served at base:
// base + "/<region>/<guid>". A client appends /api/v2/... to it, exactly as to
// https://<guid>.<region>.secrets-manager.appdomain.cloud. It is the value to give as
// the `endpoints` override keyed by the instance CRN.
func (s *Simulator) InstanceURL(base, instanceCRN string) (string, error) {
	c, err := ParseInstanceCRN(instanceCRN)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + c.pathPrefix(), nil
}

// AddAPIKey registers an IAM API key with no roles. Each key gets its own IAM id, shown
// as created_by of what it creates.
func (s *Simulator) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addKeyLocked(key)
}

func (s *Simulator) addKeyLocked(key string) *apiKey {
	k, ok := s.keys[key]
	if !ok {
		k = &apiKey{iamID: "iam-ServiceId-" + randomUUID(), grants: map[string]Role{}}
		s.keys[key] = k
		s.iam.AddKey(key)
	}
	return k
}

// RemoveAPIKey forgets key: it can get no new tokens, and tokens already issued for it
// lose every role.
func (s *Simulator) RemoveAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
	s.iam.RemoveKey(key)
}

// Grant gives key role on the instance (registering key if needed). Roles are evaluated
// on every request, so a grant or a revoke applies to tokens already issued.
func (s *Simulator) Grant(key, instanceCRN string, role Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addKeyLocked(key).grants[instanceCRN] = role
}

// Revoke removes key's role on the instance.
func (s *Simulator) Revoke(key, instanceCRN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[key]; ok {
		delete(k.grants, instanceCRN)
	}
}

// ExpireTokens makes every access token issued so far expired, to test refresh.
func (s *Simulator) ExpireTokens() {
	s.iam.ExpireAll()
}

// AddInstance creates an instance in region, in the simulator's account, and returns its
// CRN. It panics if region does not serve Secrets Manager: that is a bug in the test.
func (s *Simulator) AddInstance(region string) (instanceCRN string) {
	c := InstanceCRN{Region: region, Account: s.account, GUID: randomUUID()}
	if err := s.AddInstanceCRN(c.String()); err != nil {
		panic(fmt.Sprintf("smsim: AddInstance(%q): %v", region, err))
	}
	return c.String()
}

// AddInstanceCRN creates an instance with the given CRN.
func (s *Simulator) AddInstanceCRN(instanceCRN string) error {
	c, err := ParseInstanceCRN(instanceCRN)
	if err != nil {
		return fmt.Errorf("add instance: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.instances[instanceCRN]; ok {
		return fmt.Errorf("add instance: %s already exists", instanceCRN)
	}
	if _, ok := s.byPrefix[c.pathPrefix()]; ok {
		return fmt.Errorf("add instance: an instance with guid %s already exists in %s", c.GUID, c.Region)
	}
	inst := newInstance(c)
	s.instances[instanceCRN] = inst
	s.byPrefix[c.pathPrefix()] = inst
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

// InstanceCRN is a parsed Secrets Manager instance CRN:
//
//	crn:v1:bluemix:public:secrets-manager:<region>:a/<account>:<guid>::
type InstanceCRN struct {
	Region  string
	Account string
	GUID    string
}

// ErrInvalidCRN is wrapped by ParseInstanceCRN errors.
var ErrInvalidCRN = errors.New("invalid Secrets Manager instance CRN")

var (
	accountRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	guidRE    = regexp.MustCompile(`^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$`)
)

// ParseInstanceCRN parses a public-cloud Secrets Manager instance CRN in a region that
// serves Secrets Manager, with a lower-case UUID instance id.
func ParseInstanceCRN(s string) (InstanceCRN, error) {
	p := strings.Split(s, ":")
	if len(p) != 10 || p[0] != "crn" || p[1] != "v1" || p[2] != "bluemix" || p[3] != "public" ||
		p[4] != "secrets-manager" || p[8] != "" || p[9] != "" {
		return InstanceCRN{}, fmt.Errorf("%w: want crn:v1:bluemix:public:secrets-manager:<region>:a/<account>:<guid>::", ErrInvalidCRN)
	}
	c := InstanceCRN{Region: p[5], GUID: p[7]}
	if !slices.Contains(Regions, c.Region) {
		return InstanceCRN{}, fmt.Errorf("%w: region %q does not serve Secrets Manager", ErrInvalidCRN, c.Region)
	}
	acct, ok := strings.CutPrefix(p[6], "a/")
	if !ok || !accountRE.MatchString(acct) {
		return InstanceCRN{}, fmt.Errorf("%w: malformed account scope", ErrInvalidCRN)
	}
	c.Account = acct
	if !guidRE.MatchString(c.GUID) {
		return InstanceCRN{}, fmt.Errorf("%w: the instance id is not a lower-case UUID", ErrInvalidCRN)
	}
	return c, nil
}

func (c InstanceCRN) String() string {
	return fmt.Sprintf("crn:v1:bluemix:public:secrets-manager:%s:a/%s:%s::", c.Region, c.Account, c.GUID)
}

// SecretCRN is the CRN of secret id in the instance.
func (c InstanceCRN) SecretCRN(id string) string {
	return fmt.Sprintf("crn:v1:bluemix:public:secrets-manager:%s:a/%s:%s:secret:%s", c.Region, c.Account, c.GUID, id)
}

func (c InstanceCRN) pathPrefix() string { return "/" + c.Region + "/" + c.GUID }

// Server is a Simulator listening on a loopback address.
type Server struct {
	*Simulator
	url string
	srv *http.Server
	ln  net.Listener
}

// Start serves a new Simulator on 127.0.0.1 with a free port until Close.
func Start(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smsim: listen: %w", err)
	}
	s := &Server{Simulator: New(opts), url: "http://" + ln.Addr().String(), ln: ln}
	s.srv = &http.Server{Handler: s.Simulator, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL, http://127.0.0.1:<port>.
func (s *Server) URL() string { return s.url }

// IAMURL is the value for core.IamAuthenticator.URL.
func (s *Server) IAMURL() string { return s.Simulator.IAMURL(s.url) }

// InstanceURL is the base URL of the instance (see Simulator.InstanceURL). It panics on
// a malformed CRN: that is a bug in the test.
func (s *Server) InstanceURL(instanceCRN string) string {
	u, err := s.Simulator.InstanceURL(s.url, instanceCRN)
	if err != nil {
		panic(fmt.Sprintf("smsim: InstanceURL: %v", err))
	}
	return u
}

// Endpoints maps every instance CRN to its base URL: the `endpoints` parameter.
func (s *Server) Endpoints() map[string]string {
	out := map[string]string{}
	for _, c := range s.Instances() {
		out[c] = s.InstanceURL(c)
	}
	return out
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	_ = s.srv.Close()
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
