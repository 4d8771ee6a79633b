package faults

import (
	"net/http"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// activationTimeout is the web activation's time limit in these tests. The action keeps
// max(10%, 2 s) of it as a margin (internal/action budget), so its own work must end
// by 6 s, and the platform kills it at 8 s.
const activationTimeout = 8 * time.Second

// What one backup must hold for the certificate right after the notification.
type holds int

const (
	current  holds = iota // exactly one copy, byte-equal to the source's current material
	nothing               // no copy at all (a first copy that failed)
	previous              // exactly one copy, byte-equal to the version before the renewal
)

func (h holds) String() string {
	return [...]string{"current", "nothing", "previous"}[h]
}

type faultCase struct {
	name string
	// fresh: the faults are in place before the stack's first notification (a cold
	// exec: no IAM token, no notification key yet). Otherwise a first certificate is
	// copied without faults first, so the process is warm.
	fresh bool
	// renew: the notification is cert_renewed for a certificate whose copies exist
	// (reimport path); otherwise cert_issued for a new certificate (import path).
	renew  bool
	faults func(s *harness.Stack) []cmsim.Fault
	status int
	want   [2]holds // per backup
	// Bounds on the answer time beyond "before the deadline", when the case says
	// something about time: a Retry-After was honoured (min), or a long one was not
	// waited for (max).
	min, max time.Duration
	// extra checks after the notification, before the reconcile.
	check func(t *testing.T, s *harness.Stack, src string, r notifyResult)
}

// TestFaultsDuringNotification injects each API failure class while a notification is
// handled and checks, for each:
//
//   - the action answers before its deadline (the answer time is measured and logged);
//   - with the right status: 200 when the client's retries absorbed the fault, 502 when
//     a copy failed, 503 when the notification key could not be fetched;
//   - every backup holds the whole certificate or nothing: at most one copy, byte-equal
//     to the source (or, for a renewal, to the version before it), never two copies;
//   - the next reconcile, faults cleared, makes every backup equal to the source.
func TestFaultsDuringNotification(t *testing.T) {
	t.Parallel()
	b0 := func(s *harness.Stack) string { return s.Backups[0] }
	b1 := func(s *harness.Stack) string { return s.Backups[1] }
	one := func(f func(s *harness.Stack) cmsim.Fault) func(s *harness.Stack) []cmsim.Fault {
		return func(s *harness.Stack) []cmsim.Fault { return []cmsim.Fault{f(s)} }
	}
	cases := []faultCase{
		// 429 with Retry-After.
		{name: "429 short Retry-After is waited for", status: 200, want: [2]holds{current, current}, min: 1900 * time.Millisecond,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b0(s), Status: 429, RetryAfter: "1", Times: 2}
			})},
		{name: "429 Retry-After past the deadline fails at once", status: 502, want: [2]holds{nothing, current}, max: 3 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b0(s), Status: 429, RetryAfter: "30"}
			}),
			check: failedRetryable(0, "429")},
		{name: "429 short Retry-After on a renewal", renew: true, status: 200, want: [2]holds{current, current}, min: 900 * time.Millisecond,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpReimport, Instance: b0(s), Status: 429, RetryAfter: "1", Times: 1}
			})},
		{name: "429 Retry-After past the deadline on a renewal", renew: true, status: 502, want: [2]holds{previous, current}, max: 3 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpReimport, Instance: b0(s), Status: 429, RetryAfter: "120"}
			}),
			check: failedRetryable(0, "429")},

		// 500 and 503.
		{name: "500 once is retried", status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Instance: b0(s), Status: 500, Times: 1}
			})},
		{name: "500 on every call of a backup", status: 502, want: [2]holds{nothing, current},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Instance: b0(s), Status: 500} }),
			check:  failedRetryable(0, "500")},
		{name: "503 once on import is retried", status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b1(s), Status: 503, Times: 1}
			})},
		{name: "503 on every import", status: 502, want: [2]holds{current, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b1(s), Status: 503}
			}),
			check: failedRetryable(1, "503")},
		{name: "503 on every reimport of a renewal", renew: true, status: 502, want: [2]holds{current, previous},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpReimport, Instance: b1(s), Status: 503}
			}),
			check: failedRetryable(1, "503")},
		{name: "503 from the source", status: 502, want: [2]holds{nothing, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpDownload, Instance: s.Source, Status: 503}
			}),
			check: func(t *testing.T, s *harness.Stack, _ string, _ notifyResult) {
				for _, b := range s.Backups {
					assert.Zero(t, s.Sim.Writes(b), "nothing written in %s without the source's material", b)
				}
			}},

		// Slow responses.
		{name: "slow backup within the deadline", status: 200, want: [2]holds{current, current}, min: 3 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Instance: b0(s), Delay: 1500 * time.Millisecond, Times: 2}
			})},
		{name: "backup slower than the deadline", status: 502, want: [2]holds{nothing, current}, min: 4 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Instance: b0(s), Delay: 20 * time.Second}
			}),
			check: failedRetryable(0, "deadline")},
		{name: "read-back slower than the deadline", status: 502, want: [2]holds{current, current}, min: 4 * time.Second,
			// The import is done, its read-back hangs: the backup holds the whole copy,
			// unverified, and the pair is reported failed.
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpDownload, Instance: b0(s), Delay: 20 * time.Second}
			}),
			check: failedRetryable(0, "deadline")},
		{name: "every call slow: the deadline falls between the steps", status: 502, want: [2]holds{current, current}, min: 4 * time.Second,
			// list (2.5 s), import (done at 5 s), then the listing after the import
			// crosses the 6 s budget: the copy is whole but unverified.
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Instance: b0(s), Delay: 2500 * time.Millisecond}
			}),
			check: failedRetryable(0, "")},
		{name: "renewal with a backup slower than the deadline", renew: true, status: 502, want: [2]holds{current, previous}, min: 4 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Instance: b1(s), Delay: 20 * time.Second}
			}),
			check: failedRetryable(1, "deadline")},
		{name: "source slower than the deadline", status: 502, want: [2]holds{nothing, nothing}, min: 4 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpDownload, Instance: s.Source, Delay: 20 * time.Second}
			})},

		// Connection resets.
		{name: "reset before the import, once", status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b0(s), Drop: true, Times: 1}
			}),
			check: importsIn(0, 1)},
		{name: "reset on every call of a backup", status: 502, want: [2]holds{nothing, current},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Instance: b0(s), Drop: true} }),
			check:  failedRetryable(0, "")},
		{name: "reset after the import: written, answer lost", status: 200, want: [2]holds{current, current},
			// Today the client retries the POST, which imports a second copy
			// (bugImportRetriedAfterWrite); the listing after the import finds both and
			// the engine deletes the one with the larger CRN. Either way: one copy.
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b0(s), Drop: true, AfterOp: true, Times: 1}
			}),
			check: importsIn(0, 0)},
		{name: "503 after the import: written, answer replaced", status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpImport, Instance: b1(s), Status: 503, AfterOp: true, Times: 1}
			}),
			check: importsIn(1, 0)},
		{name: "reset after the reimport of a renewal", renew: true, status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpReimport, Instance: b0(s), Drop: true, AfterOp: true, Times: 1}
			})},
		{name: "reset after a listing: a read, retried", status: 200, want: [2]holds{current, current},
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpList, Instance: b0(s), Drop: true, AfterOp: true, Times: 1}
			})},

		// IAM unavailable, on a cold exec that holds no token yet.
		{name: "IAM 503", fresh: true, status: 502, want: [2]holds{nothing, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Op: cmsim.OpIAMToken, Status: 503} }),
			check:  noWrites},
		{name: "IAM reset", fresh: true, status: 502, want: [2]holds{nothing, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Op: cmsim.OpIAMToken, Drop: true} }),
			check:  noWrites},
		{name: "IAM slower than the deadline", fresh: true, status: 502, want: [2]holds{nothing, nothing}, min: 4 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpIAMToken, Delay: activationTimeout}
			}),
			check: noWrites},

		// The public key endpoint down on the first notification: 503, nothing read or
		// written (the token cannot be trusted).
		{name: "key endpoint 503", fresh: true, status: 503, want: [2]holds{nothing, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Op: cmsim.OpPublicKey, Status: 503} }),
			check:  keyUnavailable},
		{name: "key endpoint reset", fresh: true, status: 503, want: [2]holds{nothing, nothing},
			faults: one(func(s *harness.Stack) cmsim.Fault { return cmsim.Fault{Op: cmsim.OpPublicKey, Drop: true} }),
			check:  keyUnavailable},
		{name: "key endpoint slower than the deadline", fresh: true, status: 503, want: [2]holds{nothing, nothing}, min: 4 * time.Second,
			faults: one(func(s *harness.Stack) cmsim.Fault {
				return cmsim.Fault{Op: cmsim.OpPublicKey, Delay: 20 * time.Second}
			}),
			check: keyUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runFaultCase(t, tc)
		})
	}
}

func runFaultCase(t *testing.T, tc faultCase) {
	s := newStack(t, harness.Options{Backups: 2, NoChannel: true, Timeout: activationTimeout})
	sink := addSink(t, s)

	if !tc.fresh {
		// Warm the exec: a first certificate copied without faults (IAM token, key,
		// connections, copy cache), as in a running deployment.
		_, err := s.Sim.Order(s.Source, "warm", "warm.example.com")
		require.NoError(t, err)
		r := notify(s, lastToken(t, s, sink, cmsim.EventCertIssued))
		require.NoError(t, r.Err)
		require.Equal(t, 200, r.Status, "warm-up: %v", r.Body)
	}

	var src string
	var before cmsim.StoredCertificate // the version before the renewal
	event := cmsim.EventCertIssued
	if tc.renew {
		var err error
		src, err = s.Sim.Order(s.Source, "shop", "shop.example.com", "www.shop.example.com")
		require.NoError(t, err)
		r := notify(s, lastToken(t, s, sink, cmsim.EventCertIssued))
		require.Equal(t, 200, r.Status, "first copy: %v", r.Body)
		before, _ = s.Sim.Get(src)
		harness.RegisterStack(s)
		s.Sim.ResetLog()
		for _, f := range tc.faults(s) {
			s.Sim.Inject(f)
		}
		require.NoError(t, s.Sim.Renew(src))
		event = cmsim.EventCertRenewed
	} else {
		harness.RegisterStack(s)
		s.Sim.ResetLog()
		for _, f := range tc.faults(s) {
			s.Sim.Inject(f)
		}
		var err error
		src, err = s.Sim.Order(s.Source, "shop", "shop.example.com", "www.shop.example.com")
		require.NoError(t, err)
	}
	now, ok := s.Sim.Get(src)
	require.True(t, ok)
	token := lastToken(t, s, sink, event)
	require.Contains(t, tokenCerts(t, token), src)

	r := notify(s, token)
	require.NoError(t, r.Err)
	t.Logf("answered %d in %s (deadline %s, the action's own budget ends at %s)",
		r.Status, fmtDur(r.Elapsed), activationTimeout, activationTimeout-2*time.Second)

	// Before the deadline, and the action's own answer: a killed activation would
	// be the controller's 400 "error processing your request".
	assert.Less(t, r.Elapsed, activationTimeout, "the action answered before its deadline")
	_, replicated := r.Body["event_type"]
	_, rejected := r.Body["error"]
	assert.True(t, replicated || rejected, "the action's own answer: %v", r.Body)
	if tc.status == http.StatusServiceUnavailable {
		assert.Equal(t, "key_unavailable", r.Body["error"])
	}
	assert.Equal(t, tc.status, r.Status, "status; body %v", r.Body)
	if tc.min > 0 {
		assert.GreaterOrEqual(t, r.Elapsed, tc.min, "the answer time shows the fault was waited for")
	}
	if tc.max > 0 {
		assert.Less(t, r.Elapsed, tc.max, "the answer came at once, without waiting")
	}

	// Whole or nothing, never two.
	for i, b := range s.Backups {
		cs := copiesOf(s, b, src)
		switch tc.want[i] {
		case nothing:
			assert.Empty(t, cs, "backup %d holds no copy", i)
		case current, previous:
			want := now.Data
			if tc.want[i] == previous {
				want = before.Data
			}
			if assert.Len(t, cs, 1, "backup %d holds exactly one copy", i) {
				assert.True(t, cs[0].Data == want, "backup %d holds the %s material byte for byte", i, tc.want[i])
				assert.Equal(t, now.Name, cs[0].Name)
			}
		}
	}
	if tc.check != nil {
		tc.check(t, s, src, r)
	}

	// The next reconcile, faults cleared, completes the job.
	s.Sim.ClearFaults()
	runReconcile(t, s, nil)
	requireMirror(t, s)
}

// failedRetryable checks that the pair of backup i failed with a retryable error whose
// message contains text, and that the other backup's pair did not fail.
func failedRetryable(i int, text string) func(t *testing.T, s *harness.Stack, _ string, r notifyResult) {
	return func(t *testing.T, s *harness.Stack, _ string, r notifyResult) {
		t.Helper()
		ps := pairs(r.Body)
		for j, b := range s.Backups {
			if !assert.Len(t, ps[b], 1, "one result for backup %d", j) {
				continue
			}
			p := ps[b][0]
			if j == i {
				assert.Equal(t, "failed", p["outcome"], "backup %d", j)
				assert.Equal(t, "retryable", p["error_class"], "backup %d", j)
				msg, _ := p["message"].(string)
				assert.Contains(t, msg, text, "backup %d", j)
			} else {
				assert.NotEqual(t, "failed", p["outcome"], "backup %d: %v", j, p["message"])
				assert.Equal(t, true, p["verified"], "backup %d", j)
			}
		}
	}
}

// importsIn checks what the fault made of backup i's imports: carried imports were
// carried out by the service (the ones a fault dropped before the handler are not),
// and however many there were, the backup ends with one copy, the one the activation
// reports, and the activation itself removed the others.
func importsIn(i, carried int) func(t *testing.T, s *harness.Stack, src string, r notifyResult) {
	return func(t *testing.T, s *harness.Stack, src string, r notifyResult) {
		t.Helper()
		b := s.Backups[i]
		deletes := 0
		for _, q := range s.Sim.Requests() {
			if q.Op == cmsim.OpDelete && q.Instance == b && q.Status == 200 {
				deletes++
			}
		}
		imports := s.Sim.Carried(cmsim.OpImport, b)
		if carried > 0 {
			assert.Equal(t, carried, imports, "imports carried out in backup %d", i)
		}
		assert.Positive(t, imports)
		t.Logf("backup %d: %d imports carried out, %d deleted", i, imports, deletes)
		p := pairs(r.Body)[b]
		cs := copiesOf(s, b, src)
		if assert.Len(t, p, 1) && assert.Len(t, cs, 1) {
			removed, _ := p[0]["removed_duplicates"].([]any)
			assert.Len(t, removed, imports-1, "the activation removed the copies its retries made")
			assert.Equal(t, cs[0].ID, p[0]["copy_crn"], "the reported copy is the one kept")
		}
	}
}

func noWrites(t *testing.T, s *harness.Stack, _ string, _ notifyResult) {
	t.Helper()
	for _, b := range s.Backups {
		assert.Zero(t, s.Sim.Writes(b), "nothing written in %s", b)
	}
}

func keyUnavailable(t *testing.T, s *harness.Stack, _ string, _ notifyResult) {
	t.Helper()
	noWrites(t, s, "", notifyResult{})
	assert.Zero(t, s.Sim.Count(cmsim.OpDownload, ""), "nothing downloaded for an unverified token")
	assert.Zero(t, s.Sim.Count(cmsim.OpList, ""), "nothing listed for an unverified token")
}
