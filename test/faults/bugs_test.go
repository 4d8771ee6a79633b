package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/owproxy"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bugs in non-test code that these tests found, now fixed. The tests that reproduce
// them keep running; a flag set back to true would turn a recurrence into a skip that
// names the bug instead of a failure (for triage only: keep them false).
const (
	// bugRepeatedListingEntry (fixed): a paged listing of a backup can return the same
	// certificate twice (keyset cursor on expires_on; the copy is reimported between
	// two pages). match.Find/NewIndex took the repeat for a second copy and the engine
	// deleted the copy as its own duplicate. Fixed in cms.ListCertificates (repeats
	// merged), match (a CRN counts once) and replicate.Engine.CopyTo (never deletes the
	// kept copy).
	bugRepeatedListingEntry = false

	// bugImportRetriedAfterWrite (fixed): go-sdk-core's retry policy resent Import, a
	// non-idempotent POST, after a 5xx or a lost answer, making one copy per attempt.
	// Fixed in cms (an import is retried only on 429) and replicate.Engine.importOnce
	// (after an ambiguous failure it lists the backup and takes the copy it finds).
	bugImportRetriedAfterWrite = false
)

// skipIfKnown skips, naming the bug, when the bug's flag is set and its symptom shows;
// otherwise the symptom is a test failure.
func skipIfKnown(t *testing.T, known bool, symptom bool, bug, format string, args ...any) {
	t.Helper()
	if !symptom {
		return
	}
	if known {
		t.Skipf("KNOWN BUG %s: "+format, append([]any{bug}, args...)...)
	}
	t.Errorf("%s: "+format, append([]any{bug}, args...)...)
}

// listingWorld sets up a backup whose listing takes two pages, with the only copy X of
// source certificate S first in the order (it expires soonest), and a source version
// newer than X, so that copying S reimports X.
type listingWorld struct {
	s       *harness.Stack
	sink    string
	src, cp string
}

func newListingWorld(t *testing.T) *listingWorld {
	t.Helper()
	s := newStack(t, harness.Options{Backups: 1, NoChannel: true})
	w := &listingWorld{s: s, sink: addSink(t, s)}
	ca := s.Sim.CA()
	first, err := ca.Issue(testpki.Options{Domains: []string{"shop.example.com"}, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)
	w.src = s.Sim.Seed(s.Source, "shop", "web shop", first)
	// A copy made earlier (by hand here, so that no exec has it in its cache).
	w.cp = s.Sim.Seed(s.Backups[0], "shop", "", first)
	require.NoError(t, s.Sim.SetName(w.cp, "shop", s.CopyDescription(s.Backups[0], w.cp, mustGet(t, s, w.src))))
	// 200 certificates that are not copies, expiring later: the listing (200 a page)
	// is two pages, X on the first.
	for i := range 200 {
		s.Sim.Seed(s.Backups[0], fmt.Sprintf("other-%03d", i), "", ca.MustIssue("other.example.com"))
	}
	harness.RegisterSecrets(nil, []string{first.KeyPEM}, nil)
	return w
}

// moveCopyDuringTheListing arranges that the backup's second listing page is answered
// 2 s late, waits until the first page was answered, then reimports X (as a racing
// activation copying the same renewal would) with a certificate expiring last, so that
// the second page holds X again.
func (w *listingWorld) moveCopyDuringTheListing(t *testing.T, started <-chan struct{}) {
	t.Helper()
	<-started
	deadline := time.Now().Add(20 * time.Second)
	for {
		pages := 0
		for _, q := range w.s.Sim.Requests() {
			if q.Op == cmsim.OpList && q.Instance == w.s.Backups[0] && q.Status == 200 {
				pages++
			}
		}
		if pages >= 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the first listing page never came")
		time.Sleep(5 * time.Millisecond)
	}
	// A certificate that expires later (so the copy moves in the listing's order) but is
	// not newer than the source's renewal: a copy is never given an older certificate,
	// and this one must still be replaced.
	later, err := w.s.Sim.CA().Issue(testpki.Options{Domains: []string{"shop.example.com"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(180 * 24 * time.Hour)})
	require.NoError(t, err)
	harness.RegisterSecrets(nil, []string{later.KeyPEM}, nil)
	require.NoError(t, w.s.Sim.Reimport(w.cp, later.CertPEM, later.KeyPEM, later.Intermediate))
}

func (w *listingWorld) delaySecondPage() {
	b := w.s.Backups[0]
	w.s.Sim.ResetLog()
	w.s.Sim.Inject(cmsim.Fault{Op: cmsim.OpList, Instance: b, Times: 1})                         // page 1: untouched
	w.s.Sim.Inject(cmsim.Fault{Op: cmsim.OpList, Instance: b, Delay: 2 * time.Second, Times: 1}) // page 2: late
}

// TestRepeatedListingEntryNotification: a renewal's notification lists the backup
// while a racing writer reimports the copy between the two pages. The copy appears on
// both pages; it is still one copy and must survive.
func TestRepeatedListingEntryNotification(t *testing.T) {
	t.Parallel()
	w := newListingWorld(t)
	s := w.s
	next := s.Sim.CA().MustIssue("shop.example.com")
	harness.RegisterSecrets(nil, []string{next.KeyPEM}, nil)
	require.NoError(t, s.Sim.Reimport(w.src, next.CertPEM, next.KeyPEM, next.Intermediate))
	token := lastToken(t, s, w.sink, cmsim.EventCertReimported)

	w.delaySecondPage()
	started := make(chan struct{})
	done := make(chan notifyResult, 1)
	go func() {
		close(started)
		done <- notify(s, token)
	}()
	w.moveCopyDuringTheListing(t, started)
	r := <-done
	require.NoError(t, r.Err)
	assert.Equal(t, 200, r.Status, "%v", r.Body)
	p := pairs(r.Body)[s.Backups[0]]
	require.Len(t, p, 1)
	removed, _ := p[0]["removed_duplicates"].([]any)
	copies := copiesOf(s, s.Backups[0], w.src)
	lost := len(copies) == 0

	// The next reconcile repairs it whatever happened.
	s.Sim.ClearFaults()
	runReconcile(t, s, nil)
	requireMirror(t, s)

	skipIfKnown(t, bugRepeatedListingEntry, lost, "bugRepeatedListingEntry (internal/engine/match Find; internal/engine/replicate Engine.CopyTo)",
		"the activation answered %d, reported copy %v verified and removed_duplicates %v: the backup was left with %d copies", r.Status, p[0]["copy_crn"], removed, len(copies))
	assert.Empty(t, removed, "a certificate seen twice in a listing is not a duplicate of itself")
	if assert.Len(t, copies, 1) {
		assert.True(t, copies[0].Data == mustGet(t, s, w.src).Data, "the copy holds the renewal")
	}
}

// TestRepeatedListingEntryReconcile: the same race during the reconcile's listing.
func TestRepeatedListingEntryReconcile(t *testing.T) {
	t.Parallel()
	w := newListingWorld(t)
	s := w.s
	next := s.Sim.CA().MustIssue("shop.example.com")
	harness.RegisterSecrets(nil, []string{next.KeyPEM}, nil)
	require.NoError(t, s.Sim.Reimport(w.src, next.CertPEM, next.KeyPEM, next.Intermediate))

	w.delaySecondPage()
	started := make(chan struct{})
	done := make(chan map[string]any, 1)
	go func() {
		close(started)
		done <- reconcileReport(s)
	}()
	w.moveCopyDuringTheListing(t, started)
	rep := <-done
	copies := copiesOf(s, s.Backups[0], w.src)
	lost := len(copies) == 0
	t.Logf("reconcile during the race: match=%v counts=%v; copies left %d", rep["match"], rep["counts"], len(copies))

	s.Sim.ClearFaults()
	runReconcile(t, s, nil)
	requireMirror(t, s)

	skipIfKnown(t, bugRepeatedListingEntry, lost, "bugRepeatedListingEntry (internal/engine/match NewIndex; internal/engine/reconcile, internal/engine/replicate Engine.CopyTo)",
		"the reconcile reported match=%v counts=%v and left the backup without a copy", rep["match"], rep["counts"])
	assert.Len(t, copies, 1)
}

// TestImportAnswerLostEveryTime: every import into a backup is carried out and its
// answer lost. The engine never sends an import again without looking first, finds the
// copy that was made, reads it back and verifies it: 200 before the deadline, exactly
// one whole copy; the next steps change nothing.
func TestImportAnswerLostEveryTime(t *testing.T) {
	t.Parallel()
	s := newStack(t, harness.Options{Backups: 2, NoChannel: true, Timeout: activationTimeout})
	sink := addSink(t, s)
	s.Sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: s.Backups[0], Drop: true, AfterOp: true})
	src, err := s.Sim.Order(s.Source, "shop", "shop.example.com")
	require.NoError(t, err)
	token := lastToken(t, s, sink, cmsim.EventCertIssued)

	r := notify(s, token)
	require.NoError(t, r.Err)
	t.Logf("answered %d in %s (deadline %s)", r.Status, fmtDur(r.Elapsed), activationTimeout)
	assert.Less(t, r.Elapsed, activationTimeout)
	assert.Equal(t, 200, r.Status, "the copy was made: the lost answer is found by looking")
	want := mustGet(t, s, src).Data
	copies := copiesOf(s, s.Backups[0], src)
	for _, c := range copies {
		assert.True(t, c.Data == want, "every copy written is whole")
	}
	assert.Len(t, copiesOf(s, s.Backups[1], src), 1)
	left := len(copies)

	// The next step, faults cleared: a replay finds the one copy, and the reconcile
	// finds the backups equal to the source.
	s.Sim.ClearFaults()
	r = notify(s, token)
	assert.Equal(t, 200, r.Status, "%v", r.Body)
	assert.Len(t, copiesOf(s, s.Backups[0], src), 1, "the replay converged on one copy")
	runReconcile(t, s, nil)
	requireMirror(t, s)

	skipIfKnown(t, bugImportRetriedAfterWrite, left > 1, "bugImportRetriedAfterWrite (internal/provider/cms Client.Import retried; internal/engine/replicate Engine.CopyTo)",
		"the activation left %d copies in the backup (one per attempt of the retried POST)", left)
	assert.LessOrEqual(t, left, 1, "never two copies")
}

// TestImportAnswerLostDuringReconcile: one import of the reconcile is carried out and
// its answer lost. The reconcile must not leave two copies behind while reporting that
// the backups match.
func TestImportAnswerLostDuringReconcile(t *testing.T) {
	t.Parallel()
	s := newStack(t, harness.Options{Backups: 1, NoChannel: true})
	issued := s.Sim.CA().MustIssue("api.example.com")
	harness.RegisterSecrets(nil, []string{issued.KeyPEM}, nil)
	src := s.Sim.Seed(s.Source, "api", "", issued)
	s.Sim.Inject(cmsim.Fault{Op: cmsim.OpImport, Instance: s.Backups[0], Drop: true, AfterOp: true, Times: 1})

	rep := reconcileReport(s)
	copies := copiesOf(s, s.Backups[0], src)
	want := mustGet(t, s, src).Data
	for _, c := range copies {
		assert.True(t, c.Data == want, "every copy written is whole")
	}
	s.Sim.ClearFaults()
	runReconcile(t, s, nil)
	requireMirror(t, s) // the next reconcile removes the duplicate

	skipIfKnown(t, bugImportRetriedAfterWrite, len(copies) > 1 && rep["match"] == true,
		"bugImportRetriedAfterWrite (internal/provider/cms Client.Import retried; internal/engine/replicate Engine.CopyTo without relisting for the reconcile)",
		"the reconcile reported match=%v counts=%v and left %d copies", rep["match"], rep["counts"], len(copies))
	if rep["match"] == true {
		assert.Len(t, copies, 1, "a reconcile that reports match leaves one copy")
	}
}

// reconcileReport runs a reconcile and returns its report (or its error object), for
// goroutines and for runs that are allowed to fail. It never stops the test.
func reconcileReport(s *harness.Stack) map[string]any {
	params := maps.Clone(s.Params)
	params["mode"] = "reconcile"
	_, body, err := s.Pool.Run(context.Background(), params, owproxy.RunMeta{ActionName: "/guest/certbackup/reconcile", Timeout: reconcileTimeout})
	harness.Collect(string(body))
	if err != nil {
		return map[string]any{"run_error": err.Error()}
	}
	var rep map[string]any
	_ = json.Unmarshal(body, &rep)
	if e, ok := rep["error"].(map[string]any); ok {
		return e
	}
	return rep
}

func mustGet(t *testing.T, s *harness.Stack, crn string) cmsim.StoredCertificate {
	t.Helper()
	c, ok := s.Sim.Get(crn)
	require.True(t, ok, "%s exists", crn)
	return c
}
