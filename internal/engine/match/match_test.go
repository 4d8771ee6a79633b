package match

import (
	"strings"
	"testing"

	"github.com/certbackup/certbackup/internal/provider/cms"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	srcA = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	srcB = "crn:v1:bluemix:public:cloudcerts:us-south:a/acct:inst-src:certificate:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestCopyDescription(t *testing.T) {
	tests := []struct {
		name string
		desc string
		want string
	}{
		{name: "empty", desc: "", want: Marker(srcA)},
		{name: "plain", desc: "prod web", want: "prod web\n" + Marker(srcA)},
		{name: "restore strips the old marker", desc: "prod web\n" + Marker(srcB), want: "prod web\n" + Marker(srcA)},
		{name: "only an old marker", desc: Marker(srcB), want: Marker(srcA)},
		{name: "bracket text that is not a marker stays", desc: "see [ticket]", want: "see [ticket]\n" + Marker(srcA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CopyDescription(tt.desc, srcA)
			assert.Equal(t, tt.want, got)
			src, ok := SourceOf(got)
			require.True(t, ok)
			assert.Equal(t, srcA, src)
		})
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	got := CopyDescription(long, srcA)
	assert.LessOrEqual(t, len(got), MaxDescription)
	assert.True(t, strings.HasSuffix(got, Marker(srcA)))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(got, "\n"+Marker(srcA))), "cut on a rune boundary")
}

func TestFind(t *testing.T) {
	backup := []cms.Certificate{
		{ID: "b3", Name: "web", Description: "x\n" + Marker(srcA)},
		{ID: "b1", Name: "web-renamed", Description: Marker(srcA)},
		{ID: "b2", Name: "web", Description: Marker(srcB)},
		{ID: "b4", Name: "web", Description: "made by hand"},
		{ID: "b5", Name: "other", Description: "[certbackup source=" + srcA + "] trailing"},
	}
	f := Find(backup, srcA, "web")
	require.NotNil(t, f.Copy)
	assert.Equal(t, "b1", f.Copy.ID, "smallest CRN wins, whatever the name (rename)")
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
	a := cms.Certificate{SerialNumber: "01", Issuer: "CA", BeginsOn: 1, ExpiresOn: 2, Domains: []string{"a"}}
	b := a
	assert.True(t, SameCertificate(a, b))
	b.SerialNumber = "02"
	assert.False(t, SameCertificate(a, b))
	b = a
	b.Domains = []string{"a", "b"}
	assert.False(t, SameCertificate(a, b))
}

func TestRepeatedListingEntryIsNotADuplicate(t *testing.T) {
	cp := cms.Certificate{ID: "b1", Name: "web", Description: Marker(srcA)}
	moved := cp
	moved.ExpiresOn = 99 // renewed between two pages of the listing
	f := Find([]cms.Certificate{cp, {ID: "b2", Name: "x"}, moved}, srcA, "web")
	require.NotNil(t, f.Copy)
	assert.Empty(t, f.Extra, "a certificate listed twice is not its own duplicate")
	assert.Empty(t, NewIndex([]cms.Certificate{cp, moved}).Lookup(srcA, "web").Extra)
}
