package replicate_test

import (
	"context"
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/enginetest"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The engine's rules, tested without HTTP against in-memory instances.

var fakeCA = testpki.MustNewCA("fake CA")

func material(domains ...string) engine.Material {
	i := fakeCA.MustIssue(domains...)
	return engine.Material{Certificate: i.CertPEM, PrivateKey: i.KeyPEM, Intermediate: i.Intermediate}
}

type fakeWorld struct {
	src     *enginetest.Instance
	backups []*enginetest.Instance
	eng     *replicate.Engine
}

func newFakeWorld(n int) *fakeWorld {
	w := &fakeWorld{src: enginetest.New("crn:src")}
	w.eng = &replicate.Engine{Source: w.src, Cache: replicate.NewCopyCache(), Owner: match.NewOwner("fake-test-key")}
	for i := range n {
		b := enginetest.New("crn:backup" + string(rune('a'+i)))
		w.backups = append(w.backups, b)
		w.eng.Targets = append(w.eng.Targets, b)
	}
	return w
}

func ops(calls []enginetest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Op)
	}
	return out
}

func fakeCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestFakeCopyLifecycle(t *testing.T) {
	w := newFakeWorld(1)
	b := w.backups[0]
	id := w.src.Put(engine.Labels{Name: "web", Description: "prod"}, material("www.example.com"))
	stranger := b.Put(engine.Labels{Name: "web"}, material("other.example.com"))

	steps := []struct {
		name    string
		change  func()
		want    replicate.Outcome
		backup  []string // the backup's calls, in order
		cleared bool     // the cache is cold (a new process)
	}{
		{name: "first copy: list, import, list for a racer, proof bound to the ID, read back", want: replicate.Conflict,
			backup: []string{"list", "import", "list", "update", "download"}},
		{name: "replay from a warm process: one read", want: replicate.Unchanged, backup: []string{"download"}},
		{name: "replay from a cold process: list and read", want: replicate.Unchanged, backup: []string{"list", "download"}, cleared: true},
		{name: "renewal: read, reimport, read back", change: func() { mustReimport(t, w.src, id, material("www.example.com")) },
			want: replicate.Reimported, backup: []string{"download", "reimport", "download"}},
		{name: "rename: read, update, read back", change: func() { mustRename(t, w.src, id, "web-2") },
			want: replicate.Updated, backup: []string{"download", "update", "download"}},
	}
	for _, st := range steps {
		if st.change != nil {
			st.change()
		}
		if st.cleared {
			w.eng.Cache = replicate.NewCopyCache()
		}
		b.Calls()
		res := w.eng.ReplicateCertificate(fakeCtx(t), id)
		require.Len(t, res, 1, st.name)
		assert.Equal(t, st.want, res[0].Outcome, "%s: %s", st.name, res[0].Message)
		assert.True(t, res[0].Verified, st.name)
		assert.Equal(t, st.backup, ops(b.Calls()), st.name)
		assert.Equal(t, []string{res[0].CopyCRN, stranger}, []string{b.IDs()[1], b.IDs()[0]}, "%s: one copy beside the stranger", st.name)
	}
	_, m, _ := b.Get(stranger)
	assert.Contains(t, m.Certificate, "BEGIN", "the stranger is untouched")
}

func mustReimport(t *testing.T, i *enginetest.Instance, id string, m engine.Material) {
	t.Helper()
	err := i.Reimport(context.Background(), id, m)
	require.NoError(t, err)
}

func mustRename(t *testing.T, i *enginetest.Instance, id, name string) {
	t.Helper()
	c, _, _ := i.Get(id)
	l := engine.LabelsOf(c)
	l.Name = name
	require.NoError(t, i.UpdateLabels(context.Background(), id, l))
}

// TestFakeImportAnswerLost: an import carried out whose answer is lost is never sent
// again blindly; the engine lists, finds the copy and verifies it.
func TestFakeImportAnswerLost(t *testing.T) {
	w := newFakeWorld(1)
	b := w.backups[0]
	lost := true
	b.AfterWrite = func(c enginetest.Call) error {
		if c.Op == "import" && lost {
			lost = false
			return &enginetest.Error{Msg: "connection reset", Classes: []error{engine.ErrRetryable, engine.ErrAmbiguous}}
		}
		return nil
	}
	id := w.src.Put(engine.Labels{Name: "api"}, material("api.example.com"))
	res := w.eng.ReplicateCertificate(fakeCtx(t), id)
	assert.Equal(t, replicate.Imported, res[0].Outcome, res[0].Message)
	assert.Len(t, b.IDs(), 1, "one copy")
	assert.Equal(t, []string{"list", "import", "list", "list", "update", "download"}, ops(b.Calls()))
}

// TestFakeErrorClasses: the result's class comes from the engine's classes, whatever
// the provider.
func TestFakeErrorClasses(t *testing.T) {
	tests := []struct {
		name    string
		classes []error
		want    string
	}{
		{name: "retryable", classes: []error{engine.ErrRetryable}, want: engine.ClassRetryable},
		{name: "locked", classes: []error{engine.ErrLocked}, want: engine.ClassLocked},
		{name: "forbidden", classes: []error{engine.ErrForbidden}, want: engine.ClassPermanent},
		{name: "deadline", want: engine.ClassRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorld(2)
			w.backups[0].Fail = func(c enginetest.Call) error {
				if c.Op != "import" {
					return nil
				}
				if tt.classes == nil {
					return context.DeadlineExceeded
				}
				return &enginetest.Error{Msg: "refused", Classes: tt.classes}
			}
			id := w.src.Put(engine.Labels{Name: "x"}, material("x.example.com"))
			res := w.eng.ReplicateCertificate(fakeCtx(t), id)
			assert.Equal(t, replicate.Failed, res[0].Outcome)
			assert.Equal(t, tt.want, res[0].ErrorClass)
			assert.Equal(t, replicate.Imported, res[1].Outcome, "the other backup is copied")
		})
	}
}

// TestFakeVerificationFailure: a copy that does not read back as written is a failure
// of class verification, and its location is not cached.
func TestFakeVerificationFailure(t *testing.T) {
	w := newFakeWorld(1)
	other := material("evil.example.com")
	b := w.backups[0]
	inside := false
	b.AfterWrite = func(c enginetest.Call) error {
		if inside || (c.Op != "import" && c.Op != "reimport") {
			return nil
		}
		// The service stores something else than what it was given, every time.
		inside = true
		defer func() { inside = false }()
		err := b.Reimport(context.Background(), c.ID, other)
		return err
	}
	id := w.src.Put(engine.Labels{Name: "x"}, material("x.example.com"))
	res := w.eng.ReplicateCertificate(fakeCtx(t), id)
	require.Equal(t, replicate.Failed, res[0].Outcome)
	assert.Equal(t, engine.ClassVerification, res[0].ErrorClass)
	assert.Equal(t, b.IDs()[0], res[0].CopyCRN)
	assert.Len(t, b.IDs(), 1, "one copy, never a second import")
}

// TestFakeSourceGone: a certificate that no longer exists is skipped, nothing written.
func TestFakeSourceGone(t *testing.T) {
	w := newFakeWorld(1)
	res := w.eng.ReplicateCertificate(fakeCtx(t), "crn:src:certificate:gone")
	assert.Equal(t, replicate.Skipped, res[0].Outcome)
	assert.Empty(t, w.backups[0].Calls())
}
