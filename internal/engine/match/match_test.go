package match

import (
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	srcInst = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src::"
	bkInst  = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct:inst-bk::"
	srcA    = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:aaaa"
	srcB    = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:bbbb"
)

var owner = NewOwner("match-test-key-0123456789abcdef0123")

func cert(id, name, serial string) engine.Certificate {
	return engine.Certificate{ID: id, Name: name, SerialNumber: serial, NotAfter: time.Unix(2000000000, 0)}
}

// proven marks c as certbackup's copy of source in instance.
func proven(instance string, c engine.Certificate, source, origin string) engine.Certificate {
	m := engine.Marker{Source: source, Origin: origin}
	m.Proof = owner.Proof(instance, m, c.ID)
	c.Marker = &m
	return c
}

func claimed(c engine.Certificate, source string) engine.Certificate {
	c.Marker = &engine.Marker{Source: source}
	return c
}

func subject(c engine.Certificate) Subject { return owner.Subject(srcInst, c) }

func TestProof(t *testing.T) {
	c := proven(bkInst, cert("b1", "web", "0a"), srcA, "")
	assert.True(t, owner.Proven(bkInst, c))
	assert.False(t, NewOwner("another key of at least 32 characters").Proven(bkInst, c), "another key proves nothing")

	tests := []struct {
		name   string
		change func(c *engine.Certificate, inst *string)
	}{
		{"marker copied onto another certificate", func(c *engine.Certificate, _ *string) { c.ID = "b2" }},
		{"marker copied into another instance", func(_ *engine.Certificate, inst *string) { *inst = srcInst }},
		{"source rewritten", func(c *engine.Certificate, _ *string) { c.Marker.Source = srcB }},
		{"origin added", func(c *engine.Certificate, _ *string) { c.Marker.Origin = srcB }},
		{"proof truncated", func(c *engine.Certificate, _ *string) { c.Marker.Proof = c.Marker.Proof[:10] }},
		{"no proof", func(c *engine.Certificate, _ *string) { c.Marker.Proof = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := proven(bkInst, cert("b1", "web", "0a"), srcA, "")
			inst := bkInst
			tt.change(&x, &inst)
			assert.False(t, owner.Proven(inst, x))
		})
	}
	renewed := c
	renewed.SerialNumber, renewed.Name = "0c", "renamed"
	assert.True(t, owner.Proven(bkInst, renewed), "the proof binds the copy's ID: it survives renewals and renames")

	imp := cert("b7", "web", "0a")
	m := engine.Marker{Source: srcA}
	m.Proof = owner.ImportProof(bkInst, m, imp)
	imp.Marker = &m
	assert.True(t, owner.Proven(bkInst, imp), "an import's proof binds the certificate it holds")
	other := imp
	other.ID, other.SerialNumber = "b8", "0b"
	assert.False(t, owner.Proven(bkInst, other), "an import's proof copied onto another certificate proves nothing")
}

func TestLookup(t *testing.T) {
	a := cert(srcA, "web", "0a")
	winner := proven(bkInst, cert("b1", "web-renamed", "0a"), srcA, "")
	backup := []engine.Certificate{
		proven(bkInst, cert("b3", "web", "0a"), srcA, ""),
		winner,
		proven(bkInst, cert("b2", "web", "0b"), srcB, ""),
		{ID: "b4", Name: "web", Description: "made by hand"},
		claimed(cert("b5", "other", "77"), srcA), // a Writer's marker on someone else's certificate
	}
	f := Find(owner, bkInst, backup, subject(a))
	require.NotNil(t, f.Copy)
	assert.Equal(t, "b1", f.Copy.ID, "smallest ID wins, whatever the name (rename)")
	assert.False(t, f.Adopt)
	assert.Equal(t, []string{"b3"}, IDs(f.Extra))
	assert.Equal(t, []string{"b4", "b5"}, IDs(f.Conflicts), "the copy of another source with the same name is not a conflict; an unproven marker is")

	g := Find(owner, bkInst, backup, subject(cert(srcB, "web", "0b")))
	require.NotNil(t, g.Copy)
	assert.Equal(t, "b2", g.Copy.ID)

	// Only forged markers: a candidate for adoption, never a proven copy.
	h := Find(owner, bkInst, backup[3:], subject(a))
	require.NotNil(t, h.Copy)
	assert.True(t, h.Adopt)
	assert.Equal(t, "b5", h.Copy.ID)

	none := Find(owner, bkInst, backup, subject(cert(srcA+"c", "new", "0c")))
	assert.Nil(t, none.Copy)
	assert.Empty(t, none.Conflicts)
}

// TestLineage: after a failover the source is itself a copy; its copies, the copies
// of its original and the original itself stand for the same certificate.
func TestLineage(t *testing.T) {
	const (
		newInst = "crn:v1:bluemix:public:cloudcerts:eu-gb:a/acct:inst-new::"
		s1      = srcA                                                                   // the original, in the old primary
		b1      = "crn:v1:bluemix:public:cloudcerts:eu-de:a/acct:inst-bk:certificate:b1" // its copy in the backup
		n1      = "crn:v1:bluemix:public:cloudcerts:eu-gb:a/acct:inst-new:certificate:n1"
	)
	// N holds n1, restored from B's b1: its marker names b1 and the original s1.
	n := proven(newInst, cert(n1, "web", "0a"), b1, s1)
	subj := owner.Subject(newInst, n)
	assert.Equal(t, s1, subj.Origin)

	// Redeploy with N as the source: B's b1 (a copy of s1) is n1's copy; no new copy.
	inB := []engine.Certificate{proven(bkInst, cert(b1, "web", "0a"), s1, "")}
	f := Find(owner, bkInst, inB, subj)
	require.NotNil(t, f.Copy)
	assert.Equal(t, b1, f.Copy.ID)
	assert.False(t, f.Original)

	// Failback into the old primary: s1 itself is the copy, as the original.
	inS := []engine.Certificate{cert(s1, "web", "09")}
	f = Find(owner, srcInst, inS, subj)
	require.NotNil(t, f.Copy)
	assert.Equal(t, s1, f.Copy.ID)
	assert.True(t, f.Original)
	assert.Equal(t, engine.Marker{}, owner.Want(fit{srcInst}, subj, true, s1).Marker, "the original is never marked")

	// An unproven marker on the source gives its text back to the description.
	forged := cert(srcB, "x", "01")
	forged.Description = "user text"
	forged.Marker = &engine.Marker{Source: "crn:elsewhere", Raw: "\n[certbackup source=crn:elsewhere]"}
	s := owner.Subject(srcInst, forged)
	assert.Equal(t, srcB, s.Origin)
	assert.Equal(t, "user text\n[certbackup source=crn:elsewhere]", s.UserDescription)
}

type fit struct{ inst string }

func (f fit) Instance() string                  { return f.inst }
func (f fit) Fit(l engine.Labels) engine.Labels { return l }

func TestRepeatedListingEntryIsNotADuplicate(t *testing.T) {
	cp := proven(bkInst, cert("b1", "web", "0a"), srcA, "")
	moved := cp
	moved.Name = "renamed between two pages"
	f := Find(owner, bkInst, []engine.Certificate{cp, {ID: "b2", Name: "x"}, moved}, subject(cert(srcA, "web", "0a")))
	require.NotNil(t, f.Copy)
	assert.Empty(t, f.Extra, "a certificate listed twice is not its own duplicate")
}

func TestSameCertificate(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	a := engine.Certificate{SerialNumber: "01", Issuer: "CA", NotBefore: at(1000), NotAfter: at(2000), Domains: []string{"a"}}
	b := a
	assert.True(t, engine.SameCertificate(a, b))
	b.SerialNumber = "00:01"
	assert.True(t, engine.SameCertificate(a, b), "serial numbers compare as numbers")
	b.SerialNumber = "02"
	assert.False(t, engine.SameCertificate(a, b))
	b = a
	b.Domains = []string{"a", "b"}
	assert.False(t, engine.SameCertificate(a, b))
	b = a
	b.NotAfter = at(3000)
	assert.False(t, engine.SameCertificate(a, b))
}
