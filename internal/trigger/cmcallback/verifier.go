package cmcallback

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/strictjson"
)

// KeyFunc fetches the PEM public key of the pinned source instance from that instance's
// own regional endpoint (docs/services/certificate-manager.md §8). The URL is derived
// from configuration, never from a token. It should honour ctx and have its own timeout.
// Its errors are wrapped into ErrKeyUnavailable and must not contain key material.
type KeyFunc func(ctx context.Context) (pemPublicKey string, err error)

// Config configures a Verifier.
type Config struct {
	// SourceInstanceCRN is the trust root: the only instance whose notifications are
	// accepted. It comes from configuration, never from the token.
	SourceInstanceCRN string
	// StaticPublicKeyPEM, when set, is the only key ever used and Fetch is ignored.
	StaticPublicKeyPEM string
	// Fetch is used when there is no static key: lazily on the first token that needs
	// it, then cached for the life of the Verifier (a warm container).
	Fetch KeyFunc
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed for exp and nbf when a token carries them.
	// Default (zero) 1 minute.
	Leeway time.Duration
	// RefetchInterval is the minimum time between two fetch attempts, so that a flood of
	// forged tokens (or a key endpoint that is down) cannot hammer the API. Default
	// (zero) 1 minute.
	RefetchInterval time.Duration
}

const (
	defaultLeeway          = time.Minute
	defaultRefetchInterval = time.Minute
)

// Verifier verifies and decodes notifications of one source instance. It is safe for
// concurrent use.
type Verifier struct {
	source          string
	static          *rsa.PublicKey
	fetch           KeyFunc
	now             func() time.Time
	refetchInterval time.Duration
	parser          *jwt.Parser
	validator       *jwt.Validator

	mu          sync.Mutex
	key         *rsa.PublicKey // last fetched key; nil until the first successful fetch
	gen         uint64         // bumped by every successful fetch; 0 = never fetched
	lastAttempt time.Time      // start of the last counted fetch attempt
	lastErr     error          // error of that attempt; nil if it succeeded
	inflight    chan struct{}  // closed when the running fetch ends; nil if none runs
}

// NewVerifier validates cfg: the source must parse as an instance CRN in canonical
// form; a static key must be a PEM RSA public key of at least 2048 bits; without a
// static key Fetch is required.
func NewVerifier(cfg Config) (*Verifier, error) {
	inst, err := crn.ParseInstance(cfg.SourceInstanceCRN)
	if err != nil {
		return nil, fmt.Errorf("notification: source instance: %w", err)
	}
	if inst.String() != cfg.SourceInstanceCRN {
		// Payloads are compared byte for byte with this string.
		return nil, fmt.Errorf("notification: source instance CRN is not in canonical form")
	}
	v := &Verifier{
		source:          cfg.SourceInstanceCRN,
		fetch:           cfg.Fetch,
		now:             cfg.Now,
		refetchInterval: cfg.RefetchInterval,
	}
	switch {
	case cfg.StaticPublicKeyPEM != "":
		if v.static, err = ParsePublicKeyPEM(cfg.StaticPublicKeyPEM); err != nil {
			return nil, fmt.Errorf("notification: static key: %w", err)
		}
		v.fetch = nil // documented: never used with a static key
	case cfg.Fetch == nil:
		return nil, errors.New("notification: neither a static public key nor a key fetcher is configured")
	}
	if cfg.Leeway < 0 || cfg.RefetchInterval < 0 {
		return nil, errors.New("notification: Leeway and RefetchInterval must not be negative")
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = defaultLeeway
	}
	if v.refetchInterval == 0 {
		v.refetchInterval = defaultRefetchInterval
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.parser = jwt.NewParser(
		// The algorithm allow-list is what stops alg=none, HS256-keyed-with-the-public-key
		// and every other algorithm, before the key function runs
		// (docs/services/go-libraries.md §3.1, §3.2).
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithStrictDecoding(),
		// exp/nbf are checked after our own strict decoding of the payload (below), so
		// that jwt's lenient json.Unmarshal never decides anything (§3.3).
		jwt.WithoutClaimsValidation(),
	)
	v.validator = jwt.NewValidator(jwt.WithLeeway(leeway), jwt.WithTimeFunc(v.now))
	return v, nil
}

// Verify checks token and returns the decoded notification, in this order: size,
// RS256 signature with the pinned key (refetching it once on a failure, to follow a key
// rotation), header, strict payload decoding, exp/nbf if present, instance, version,
// certificate CRNs and the documented shape. On error the Notification is nil and the
// error wraps one of the package's sentinels.
func (v *Verifier) Verify(ctx context.Context, token string) (*Notification, error) {
	if len(token) > MaxBodySize {
		return nil, fmt.Errorf("%w: token is %d bytes, the limit is %d", ErrTooLarge, len(token), MaxBodySize)
	}
	payload, err := v.verifySignature(ctx, token)
	if err != nil {
		return nil, err
	}
	// Only reached with a valid signature: the token is exactly what the key holder
	// signed, so decoding it is no longer parsing attacker input.
	if err := checkHeader(token); err != nil {
		return nil, err
	}
	p, err := decodePayload(payload)
	if err != nil {
		return nil, err
	}
	if err := v.validator.Validate(timeClaims{exp: p.exp, nbf: p.nbf}); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return nil, fmt.Errorf("%w: exp is in the past", ErrExpired)
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return nil, fmt.Errorf("%w: nbf is in the future", ErrExpired)
		default:
			return nil, fmt.Errorf("%w: exp/nbf do not validate", ErrExpired)
		}
	}
	return checkPayload(p, v.source)
}

// capture is the jwt.Claims handed to the parser: it keeps the payload bytes for our
// own decoder and decides nothing (claims validation is off).
type capture struct{ raw []byte }

func (c *capture) UnmarshalJSON(b []byte) error {
	c.raw = append(c.raw[:0], b...) // the decoder's buffer is not ours to keep
	return nil
}
func (*capture) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (*capture) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (*capture) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (*capture) GetIssuer() (string, error)                   { return "", nil }
func (*capture) GetSubject() (string, error)                  { return "", nil }
func (*capture) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// errKeyFunc marks an error from our key function, so that it is not mistaken for a
// jwt parsing error.
type errKeyFunc struct{ err error }

func (e errKeyFunc) Error() string { return e.err.Error() }
func (e errKeyFunc) Unwrap() error { return e.err }

// verifySignature returns the signed payload bytes of token.
func (v *Verifier) verifySignature(ctx context.Context, token string) ([]byte, error) {
	var usedGen uint64
	// The key is looked up inside the key function, which jwt calls only after the
	// token parsed and named RS256: garbage and other algorithms never cause a fetch.
	// The token's kid/jku/x5u are not looked at.
	keyFunc := func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodRS256 { // belt and braces: WithValidMethods already did this
			return nil, errKeyFunc{fmt.Errorf("%w: signing algorithm is not RS256", ErrBadSignature)}
		}
		k, gen, err := v.currentKey(ctx)
		if err != nil {
			return nil, errKeyFunc{err}
		}
		usedGen = gen
		return k, nil // *rsa.PublicKey only: RS256 verification refuses anything else
	}
	c := &capture{}
	_, err := v.parser.ParseWithClaims(token, c, keyFunc)
	if err == nil {
		return c.raw, nil
	}
	if v.static == nil && usedGen != 0 && errors.Is(err, rsa.ErrVerification) {
		// Well-formed RS256 token that the cached key rejects: either forged or signed
		// with a rotated key. Try a newer key once; refreshKey rate-limits fetching.
		k, gen, kerr := v.refreshKey(ctx, usedGen)
		switch {
		case kerr != nil:
			return nil, kerr
		case gen != 0:
			c = &capture{}
			_, err = v.parser.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return k, nil })
			if err == nil {
				return c.raw, nil
			}
		}
	}
	return nil, mapParseError(err)
}

// mapParseError turns a jwt error into one of ours with a message of our own: jwt's
// messages can carry parts of the decoded header.
func mapParseError(err error) error {
	var kf errKeyFunc
	switch {
	case errors.As(err, &kf):
		return kf.err
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: token is not a compact JWS (three base64url segments, JSON header and payload)", ErrMalformed)
	case errors.Is(err, rsa.ErrVerification):
		return fmt.Errorf("%w: RS256 signature does not verify with the source instance's key", ErrBadSignature)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: signing algorithm is not RS256", ErrBadSignature)
	default:
		return fmt.Errorf("%w: token does not verify", ErrBadSignature)
	}
}

// checkHeader decodes the (already verified) JOSE header strictly: a JSON object without
// duplicate keys, and without "crit", which RFC 7515 §4.1.11 says a recipient that does
// not understand the listed extensions must reject. Certificate Manager sends exactly
// {"alg":"RS256"}; other keys (kid, jku, x5u, typ) are ignored, never followed.
func checkHeader(token string) error {
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	dec := strictjson.NewDecoder(b)
	err = strictjson.WalkObject(dec, func(key string) error {
		if key == "crit" {
			return errors.New(`"crit" extensions are not supported`)
		}
		return strictjson.SkipValue(dec)
	})
	if err == nil {
		err = strictjson.ExpectEOF(dec)
	}
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	return nil
}

// currentKey returns the key to verify with and its generation (0 for the static key),
// fetching it on first use.
func (v *Verifier) currentKey(ctx context.Context) (*rsa.PublicKey, uint64, error) {
	if v.static != nil {
		return v.static, 0, nil
	}
	return v.keyNewerThan(ctx, 0, false)
}

// refreshKey returns a key newer than generation stale, fetching at most once. gen == 0
// with a nil error means no newer key may be fetched now (rate limit): the caller
// reports a bad signature.
func (v *Verifier) refreshKey(ctx context.Context, stale uint64) (*rsa.PublicKey, uint64, error) {
	return v.keyNewerThan(ctx, stale, true)
}

// keyNewerThan returns the cached key if its generation is above have, else fetches
// one. Concurrent callers share one fetch (they wait for the one in flight). Fetch
// attempts, failed or not, are spaced by refetchInterval; within it a first-key caller
// gets the last fetch error, a refresh caller (refresh) gets gen 0.
func (v *Verifier) keyNewerThan(ctx context.Context, have uint64, refresh bool) (*rsa.PublicKey, uint64, error) {
	for {
		v.mu.Lock()
		if v.gen > have {
			k, g := v.key, v.gen
			v.mu.Unlock()
			return k, g, nil
		}
		if ch := v.inflight; ch != nil {
			v.mu.Unlock()
			select {
			case <-ch:
				continue // look at what it produced
			case <-ctx.Done():
				return nil, 0, fmt.Errorf("%w: waiting for the key fetch: %w", ErrKeyUnavailable, ctx.Err())
			}
		}
		now := v.now()
		if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.refetchInterval {
			lastErr := v.lastErr
			v.mu.Unlock()
			switch {
			case lastErr != nil:
				// The key endpoint failed recently; we cannot tell a rotation from a
				// forgery, so say "try again later" rather than "forged".
				return nil, 0, fmt.Errorf("%w: last fetch failed less than %s ago: %w", ErrKeyUnavailable, v.refetchInterval, lastErr)
			case refresh:
				return nil, 0, nil
			default: // unreachable: a successful attempt bumps gen
				return nil, 0, fmt.Errorf("%w: no key", ErrKeyUnavailable)
			}
		}
		ch := make(chan struct{})
		v.inflight = ch
		v.mu.Unlock()
		return v.runFetch(ctx, now, ch)
	}
}

// runFetch performs one fetch and publishes its result to the cache and to the callers
// waiting on ch.
func (v *Verifier) runFetch(ctx context.Context, started time.Time, ch chan struct{}) (*rsa.PublicKey, uint64, error) {
	completed := false
	defer func() {
		if completed {
			return
		}
		// Fetch panicked: release the waiters (they would hang forever) and let the
		// panic go on.
		v.mu.Lock()
		defer v.mu.Unlock()
		v.inflight = nil
		close(ch)
		v.lastAttempt, v.lastErr = started, errors.New("key fetcher panicked")
	}()
	key, cause := v.fetchKey(ctx)
	completed = true

	v.mu.Lock()
	defer v.mu.Unlock()
	v.inflight = nil
	close(ch)
	switch {
	case cause == nil:
		v.gen++
		v.key = key
		v.lastAttempt, v.lastErr = started, nil
		return key, v.gen, nil
	case ctx.Err() != nil:
		// Our caller gave up (its context ended): not the endpoint's fault, so the attempt
		// does not count against the rate limit, and a waiter with a live context fetches
		// again.
	default:
		v.lastAttempt, v.lastErr = started, cause
	}
	return nil, 0, fmt.Errorf("%w: %w", ErrKeyUnavailable, cause)
}

func (v *Verifier) fetchKey(ctx context.Context) (*rsa.PublicKey, error) {
	pemKey, err := v.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	key, err := ParsePublicKeyPEM(pemKey)
	if err != nil {
		return nil, fmt.Errorf("fetched key: %w", err)
	}
	return key, nil
}
