package cmcallback

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyRotation(t *testing.T) {
	k := keys()
	f := &fetcher{pem: pemSPKI(t, &k.source.PublicKey)}
	c := newClock()
	v := fetchingVerifier(t, f, c)
	ctx := context.Background()

	_, err := v.Verify(ctx, signPayload(t, k.source, lifecycle(4, EventCertIssued)))
	require.NoError(t, err)
	assert.Equal(t, int64(1), f.calls.Load(), "first Verify fetches lazily")

	_, err = v.Verify(ctx, signPayload(t, k.source, lifecycle(4, EventCertRenewed)))
	require.NoError(t, err)
	assert.Equal(t, int64(1), f.calls.Load(), "the key is cached")

	// The instance rotates its key. The first token signed with the new key fails with
	// the cached key, the verifier refetches once and the retry succeeds.
	f.RotateKey(pemSPKI(t, &k.rotated.PublicKey))
	c.Advance(2 * time.Minute)
	n, err := v.Verify(ctx, signPayload(t, k.rotated, lifecycle(4, EventCertReimported)))
	require.NoError(t, err)
	assert.Equal(t, EventCertReimported, n.EventType)
	assert.Equal(t, int64(2), f.calls.Load())

	// A forged token within the minute does not refetch again.
	c.Advance(30 * time.Second)
	_, err = v.Verify(ctx, signPayload(t, k.attacker, lifecycle(4, EventCertIssued)))
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Equal(t, int64(2), f.calls.Load(), "refetch is rate limited")

	// A flood of forgeries within the interval: still no fetch.
	for range 20 {
		_, err = v.Verify(ctx, signPayload(t, k.attacker, lifecycle(4, EventCertIssued)))
		require.ErrorIs(t, err, ErrBadSignature)
	}
	assert.Equal(t, int64(2), f.calls.Load())

	// Once the interval has passed, one forged token may cause one refetch (same key
	// served), which still does not verify it.
	c.Advance(time.Minute)
	_, err = v.Verify(ctx, signPayload(t, k.attacker, lifecycle(4, EventCertIssued)))
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Equal(t, int64(3), f.calls.Load(), "at most one refetch per call")

	// The new key keeps working, the old one no longer does (and costs no fetch).
	_, err = v.Verify(ctx, signPayload(t, k.rotated, lifecycle(4, EventCertIssued)))
	require.NoError(t, err)
	_, err = v.Verify(ctx, signPayload(t, k.source, lifecycle(4, EventCertIssued)))
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Equal(t, int64(3), f.calls.Load())
}

func TestRotationWithinIntervalIsRefused(t *testing.T) {
	// The rate limit also applies right after the first fetch: a key rotated within the
	// interval is picked up only once it has passed. Documented trade-off.
	k := keys()
	f := &fetcher{pem: pemSPKI(t, &k.source.PublicKey)}
	c := newClock()
	v := fetchingVerifier(t, f, c)
	_, err := v.Verify(context.Background(), signPayload(t, k.source, lifecycle(4, EventCertIssued)))
	require.NoError(t, err)
	f.RotateKey(pemSPKI(t, &k.rotated.PublicKey))
	token := signPayload(t, k.rotated, lifecycle(4, EventCertIssued))
	_, err = v.Verify(context.Background(), token)
	require.ErrorIs(t, err, ErrBadSignature)
	c.Advance(time.Minute)
	_, err = v.Verify(context.Background(), token)
	require.NoError(t, err)
	assert.Equal(t, int64(2), f.calls.Load())
}

// TestNoFetchForUnverifiableTokens: only a well-formed RS256 token needs the key, so
// garbage and other algorithms never reach the key endpoint.
func TestNoFetchForUnverifiableTokens(t *testing.T) {
	f := &fetcher{pem: pemSPKI(t, &keys().source.PublicKey)}
	v := fetchingVerifier(t, f, newClock())
	for _, tok := range []string{
		"", "garbage", "a.b", "a.b.c",
		signRaw(t, jwt.SigningMethodHS256, []byte(pemSPKI(t, &keys().source.PublicKey)), `{"alg":"HS256"}`, toJSON(t, lifecycle(4, EventCertIssued))),
		b64([]byte(`{"alg":"none"}`)) + "." + b64(toJSON(t, lifecycle(4, EventCertIssued))) + ".",
		signRaw(t, jwt.SigningMethodPS256, keys().source, `{"alg":"PS256"}`, toJSON(t, lifecycle(4, EventCertIssued))),
	} {
		_, err := v.Verify(context.Background(), tok)
		require.Error(t, err)
	}
	assert.Zero(t, f.calls.Load())
}

func TestConcurrentVerifyFetchesOnce(t *testing.T) {
	k := keys()
	f := &fetcher{pem: pemSPKI(t, &k.source.PublicKey), delay: 50 * time.Millisecond}
	v := fetchingVerifier(t, f, newClock())
	token := signPayload(t, k.source, lifecycle(4, EventCertIssued))

	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			_, err := v.Verify(context.Background(), token)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), f.calls.Load())
}

func TestConcurrentRotationRefetchesOnce(t *testing.T) {
	k := keys()
	f := &fetcher{pem: pemSPKI(t, &k.source.PublicKey)}
	c := newClock()
	v := fetchingVerifier(t, f, c)
	_, err := v.Verify(context.Background(), signPayload(t, k.source, lifecycle(4, EventCertIssued)))
	require.NoError(t, err)

	f.RotateKey(pemSPKI(t, &k.rotated.PublicKey))
	f.mu.Lock()
	f.delay = 30 * time.Millisecond
	f.mu.Unlock()
	c.Advance(time.Hour)
	rotated := signPayload(t, k.rotated, lifecycle(4, EventCertRenewed))
	forged := signPayload(t, k.attacker, lifecycle(4, EventCertRenewed))

	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := v.Verify(context.Background(), rotated)
				assert.NoError(t, err)
			} else {
				_, err := v.Verify(context.Background(), forged)
				assert.ErrorIs(t, err, ErrBadSignature)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(2), f.calls.Load(), "one initial fetch, one shared refetch")
}

func TestFetchFailure(t *testing.T) {
	k := keys()
	endpointDown := errors.New("GET publicKey: 502 Bad Gateway")
	f := &fetcher{err: endpointDown}
	c := newClock()
	v := fetchingVerifier(t, f, c)
	token := signPayload(t, k.source, lifecycle(4, EventCertIssued))
	ctx := context.Background()

	_, err := v.Verify(ctx, token)
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorIs(t, err, endpointDown, "the cause is wrapped")
	assert.Equal(t, 503, HTTPStatus(err))
	assert.Equal(t, int64(1), f.calls.Load())

	// Within the interval, failures are not retried against the endpoint.
	_, err = v.Verify(ctx, token)
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorIs(t, err, endpointDown)
	assert.Equal(t, int64(1), f.calls.Load())

	// The endpoint recovers; after the interval the next token fetches.
	f.RotateKey(pemSPKI(t, &k.source.PublicKey))
	c.Advance(time.Minute)
	_, err = v.Verify(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, int64(2), f.calls.Load())

	// A failed refetch keeps the working key: valid tokens still verify, and a token
	// that does not verify is answered 503 (rotation or forgery cannot be told apart).
	f.Fail(endpointDown)
	c.Advance(time.Minute)
	_, err = v.Verify(ctx, signPayload(t, k.rotated, lifecycle(4, EventCertIssued)))
	require.ErrorIs(t, err, ErrKeyUnavailable)
	assert.Equal(t, int64(3), f.calls.Load())
	_, err = v.Verify(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, int64(3), f.calls.Load())
}

func TestFetchedKeyInvalid(t *testing.T) {
	for name, pem := range map[string]string{
		"empty":    "",
		"not PEM":  "publicKey",
		"EC key":   pemSPKI(t, &keys().ec.PublicKey),
		"RSA-1024": pemSPKI(t, &keys().small.PublicKey),
	} {
		t.Run(name, func(t *testing.T) {
			f := &fetcher{pem: pem}
			v := fetchingVerifier(t, f, newClock())
			_, err := v.Verify(context.Background(), signPayload(t, keys().source, lifecycle(4, EventCertIssued)))
			require.ErrorIs(t, err, ErrKeyUnavailable)
		})
	}
	t.Run("PKCS#1 accepted", func(t *testing.T) {
		f := &fetcher{pem: pemPKCS1(&keys().source.PublicKey)}
		v := fetchingVerifier(t, f, newClock())
		_, err := v.Verify(context.Background(), signPayload(t, keys().source, lifecycle(4, EventCertIssued)))
		require.NoError(t, err)
	})
}

// TestCanceledFetchDoesNotCount: a caller that gives up while fetching must not lock
// everyone else out for the refetch interval.
func TestCanceledFetchDoesNotCount(t *testing.T) {
	k := keys()
	f := &fetcher{pem: pemSPKI(t, &k.source.PublicKey), delay: time.Hour}
	v := fetchingVerifier(t, f, newClock())
	token := signPayload(t, k.source, lifecycle(4, EventCertIssued))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, token)
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	f.mu.Lock()
	f.delay = 0
	f.mu.Unlock()
	_, err = v.Verify(context.Background(), token)
	require.NoError(t, err)
	assert.Equal(t, int64(2), f.calls.Load())
}

// TestWaiterHonoursItsContext: a caller waiting for another caller's fetch returns when
// its own context ends.
func TestWaiterHonoursItsContext(t *testing.T) {
	k := keys()
	release := make(chan struct{})
	var calls int
	var mu sync.Mutex
	fetch := func(ctx context.Context) (string, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		<-release
		return pemSPKI(t, &k.source.PublicKey), nil
	}
	v, err := NewVerifier(Config{SourceInstanceCRN: srcCRN, Fetch: fetch})
	require.NoError(t, err)
	token := signPayload(t, k.source, lifecycle(4, EventCertIssued))

	first := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), token)
		first <- err
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 }, time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = v.Verify(ctx, token)
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	close(release)
	require.NoError(t, <-first)
	assert.Equal(t, 1, calls)
}

func TestFetcherPanicReleasesWaiters(t *testing.T) {
	v, err := NewVerifier(Config{SourceInstanceCRN: srcCRN, Fetch: func(context.Context) (string, error) {
		panic("boom")
	}})
	require.NoError(t, err)
	token := signPayload(t, keys().source, lifecycle(4, EventCertIssued))
	assert.Panics(t, func() { _, _ = v.Verify(context.Background(), token) })

	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), token)
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrKeyUnavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("Verify hangs after a fetcher panic")
	}
}

func BenchmarkVerify(b *testing.B) {
	v := staticVerifier(b)
	token := signPayload(b, keys().source, lifecycle(4, EventCertRenewed, with(certOf(4, srcCert), "auto_renewed", true)))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodePayloadTrailingData: jwt already refuses a payload with data after the JSON
// value, before the signature; the decoder refuses it too rather than rely on that.
func TestDecodePayloadTrailingData(t *testing.T) {
	_, err := decodePayload([]byte(`{"instance_crn":"x"} {"instance_crn":"y"}`))
	require.ErrorIs(t, err, ErrMalformed)
	_, err = decodePayload([]byte(`{"instance_crn":"x"}`))
	require.NoError(t, err)
}
