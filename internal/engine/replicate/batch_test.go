package replicate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/enginetest"
	"github.com/certbackup/certbackup/internal/engine/replicate"
)

func count(calls []enginetest.Call, op string) int {
	n := 0
	for _, c := range calls {
		if c.Op == op {
			n++
		}
	}
	return n
}

// TestBatchListsEachBackupOnce: a notification of six certificates a cold process has
// never copied, at once: with a batch, each backup's first look is one shared listing
// (the listings after each import, which check for a racing copy, stay one each);
// without, one listing per certificate more. Every copy is made and verified either way.
func TestBatchListsEachBackupOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch bool
		lists int
	}{
		{"batch", true, 1 + 6},
		{"no batch", false, 6 + 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWorld(2)
			var ids []string
			for i := range 6 {
				ids = append(ids, w.src.Put(engine.Labels{Name: fmt.Sprintf("c%d", i)}, material(fmt.Sprintf("c%d.example.com", i))))
			}
			eng := *w.eng
			if tc.batch {
				eng.Batch = replicate.NewBatch()
			}
			var wg sync.WaitGroup
			results := make([][]replicate.PairResult, len(ids))
			for i, id := range ids {
				wg.Go(func() { results[i] = eng.ReplicateCertificate(fakeCtx(t), id) })
			}
			wg.Wait()
			for _, rs := range results {
				for _, r := range rs {
					assert.Equal(t, replicate.Imported, r.Outcome, r.Message)
					assert.True(t, r.Verified)
				}
			}
			for _, b := range w.backups {
				assert.Equal(t, tc.lists, count(b.Calls(), "list"), b.CRN)
				assert.Len(t, b.IDs(), 6, "one copy of each, no more")
			}
		})
	}
}

// TestBatchListingMayBeStale: a copy made by another process after the batch listed
// the backup is found by the listing that follows the import, and the two converge on
// one copy: the shared listing costs nothing in correctness.
func TestBatchListingMayBeStale(t *testing.T) {
	w := newFakeWorld(1)
	b := w.backups[0]
	first := w.src.Put(engine.Labels{Name: "first"}, material("first.example.com"))
	late := w.src.Put(engine.Labels{Name: "late"}, material("late.example.com"))
	eng := *w.eng
	eng.Batch = replicate.NewBatch()
	require.True(t, eng.ReplicateCertificate(fakeCtx(t), first)[0].Verified, "the batch has listed the backup")

	racer := *w.eng // another process, its own cache, no batch
	racer.Cache = replicate.NewCopyCache()
	r := racer.ReplicateCertificate(fakeCtx(t), late)
	require.Equal(t, replicate.Imported, r[0].Outcome)

	got := eng.ReplicateCertificate(fakeCtx(t), late)
	assert.True(t, got[0].Verified, got[0].Message)
	assert.Len(t, b.IDs(), 2, "first and late, one copy each: the stale listing's import converged on the racer's copy")
	assert.Equal(t, r[0].CopyCRN, got[0].CopyCRN, "both processes name the same copy")
}

// TestBatchFailedListingIsNotKept: a listing that failed is not shared: the next
// certificate lists again and is copied.
func TestBatchFailedListingIsNotKept(t *testing.T) {
	w := newFakeWorld(1)
	b := w.backups[0]
	failed := false
	b.Fail = func(c enginetest.Call) error {
		if c.Op == "list" && !failed {
			failed = true
			return &enginetest.Error{Msg: "503", Classes: []error{engine.ErrRetryable}}
		}
		return nil
	}
	one := w.src.Put(engine.Labels{Name: "one"}, material("one.example.com"))
	two := w.src.Put(engine.Labels{Name: "two"}, material("two.example.com"))
	eng := *w.eng
	eng.Batch = replicate.NewBatch()
	assert.Equal(t, replicate.Failed, eng.ReplicateCertificate(context.Background(), one)[0].Outcome)
	assert.True(t, eng.ReplicateCertificate(fakeCtx(t), two)[0].Verified)
}
