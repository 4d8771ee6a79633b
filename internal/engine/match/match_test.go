package match

import (
	"testing"
	"time"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	srcA = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	srcB = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func copyOf(id, name, src string) engine.Certificate {
	return engine.Certificate{ID: id, Name: name, Marker: &engine.Marker{Source: src}}
}

func TestFind(t *testing.T) {
	backup := []engine.Certificate{
		copyOf("b3", "web", srcA),
		copyOf("b1", "web-renamed", srcA),
		copyOf("b2", "web", srcB),
		{ID: "b4", Name: "web", Description: "made by hand"},
		{ID: "b5", Name: "other", Description: "[certbackup source=" + srcA + "] trailing"},
	}
	f := Find(backup, srcA, "web")
	require.NotNil(t, f.Copy)
	assert.Equal(t, "b1", f.Copy.ID, "smallest ID wins, whatever the name (rename)")
	require.Len(t, f.Extra, 1)
	assert.Equal(t, "b3", f.Extra[0].ID)
	require.Len(t, f.Conflicts, 1, "the copy of another source with the same name is not a conflict")
	assert.Equal(t, "b4", f.Conflicts[0].ID)

	g := Find(backup, srcB, "web")
	require.NotNil(t, g.Copy)
	assert.Equal(t, "b2", g.Copy.ID)

	ix := NewIndex(backup)
	assert.Equal(t, f, ix.Lookup(srcA, "web"))
	none := Find(backup, "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:cccccccccccccccccccccccccccccccc", "new")
	assert.Nil(t, none.Copy)
	assert.Empty(t, none.Conflicts)
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

func TestRepeatedListingEntryIsNotADuplicate(t *testing.T) {
	cp := copyOf("b1", "web", srcA)
	moved := cp
	moved.NotAfter = time.UnixMilli(99) // renewed between two pages of the listing
	f := Find([]engine.Certificate{cp, {ID: "b2", Name: "x"}, moved}, srcA, "web")
	require.NotNil(t, f.Copy)
	assert.Empty(t, f.Extra, "a certificate listed twice is not its own duplicate")
	assert.Empty(t, NewIndex([]engine.Certificate{cp, moved}).Lookup(srcA, "web").Extra)
}
