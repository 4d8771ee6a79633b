package secretsmanager_test

import (
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/provider/secretsmanager"
)

const rootCRN = "crn:v1:bluemix:public:secrets-manager:us-south:a/acct:0d8a1c6e-3b1f-4b8e-9f1a-2c3d4e5f6a7b:secret:11111111-2222-4333-8444-555555555555"

func TestFitName(t *testing.T) {
	marker := engine.Marker{Source: rootCRN}
	suffix := "-" + secretsmanager.NameSuffix(marker)
	tests := []struct {
		name   string
		in     string
		marker engine.Marker
		want   string
	}{
		{"valid name kept", "shop.example.com", engine.Marker{}, "shop.example.com"},
		{"spaces", "my shop cert", engine.Marker{}, "my-shop-cert"},
		{"underscores", "my_shop__cert", engine.Marker{}, "my-shop-cert"},
		{"leading and trailing junk", "  --.my cert.-- ", engine.Marker{}, "my-cert"},
		{"runs collapse", "a -_ b", engine.Marker{}, "a-b"},
		{"dots kept", "a..b", engine.Marker{}, "a..b"},
		{"unicode letters", "ünïcödé cert", engine.Marker{}, "n-c-d-cert"},
		{"only unicode", "証明書", engine.Marker{}, "certificate"},
		{"empty", "", engine.Marker{}, "certificate"},
		{"one character", "a", engine.Marker{}, "a-certificate"},
		{"one character of a copy", "a", marker, "a" + suffix},
		{"300 characters", strings.Repeat("a", 300), engine.Marker{}, strings.Repeat("a", 256)},
		{"300 characters of a copy", strings.Repeat("b", 300), marker, strings.Repeat("b", 256-len(suffix)) + suffix},
		{"cut ending on a dash", strings.Repeat("a", 255) + " b", engine.Marker{}, strings.Repeat("a", 255)},
		{"copy", "shop", marker, "shop" + suffix},
		{"copy of a copy keeps the name", "shop" + suffix, engine.Marker{Source: "crn:other", Origin: rootCRN}, "shop" + suffix},
		{"control characters", "a\x00b\nc", engine.Marker{}, "a-b-c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := secretsmanager.FitName(tc.in, tc.marker)
			assert.Equal(t, tc.want, got)
			assert.GreaterOrEqual(t, len(got), secretsmanager.MinNameLength)
			assert.LessOrEqual(t, len(got), secretsmanager.MaxNameLength)
			assert.Regexp(t, apiNameRE, got)
			assert.Regexp(t, docNameRE, got)
			assert.Equal(t, got, secretsmanager.FitName(got, tc.marker), "FitName is idempotent")
		})
	}
}

func TestFitNameUnique(t *testing.T) {
	a := engine.Marker{Source: rootCRN}
	b := engine.Marker{Source: strings.Replace(rootCRN, "11111111", "99999999", 1)}
	// Two sources of the same name get different names in one backup.
	assert.NotEqual(t, secretsmanager.FitName("shop", a), secretsmanager.FitName("shop", b))
	// The copy of a copy (after a failover) descends from the same root: same name.
	cc := engine.Marker{Source: "crn:v1:bluemix:public:secrets-manager:eu-de:a/acct:x:secret:y", Origin: rootCRN}
	assert.Equal(t, secretsmanager.FitName("shop", a), secretsmanager.FitName("shop", cc))
	// The proof does not change the name (import proof, then ID proof).
	p := a
	p.Proof = "proof"
	assert.Equal(t, secretsmanager.FitName("shop", a), secretsmanager.FitName("shop", p))
	assert.Len(t, secretsmanager.NameSuffix(a), 8)
	assert.Empty(t, secretsmanager.NameSuffix(engine.Marker{}))
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

func TestFitDescription(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty stays empty (left out)", "", ""},
		{"one character is padded", "x", "x."},
		{"two characters kept", "ab", "ab"},
		{"1024 kept", strings.Repeat("d", 1024), strings.Repeat("d", 1024)},
		{"1500 cut to 1024", strings.Repeat("d", 1500), strings.Repeat("d", 1024)},
		{"cut by UTF-16 units, not splitting a pair", strings.Repeat("😀", 600), strings.Repeat("😀", 512)},
		{"odd budget leaves the pair out", "a" + strings.Repeat("😀", 600), "a" + strings.Repeat("😀", 511)},
		{"invalid UTF-8 byte by byte", "a\xff\xfeb", "a\uFFFD\uFFFDb"},
		{"multi-line kept", "line one\nline two", "line one\nline two"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := secretsmanager.FitDescription(tc.in)
			require.Equal(t, tc.want, got)
			assert.LessOrEqual(t, utf16Len(got), secretsmanager.MaxDescriptionLength)
			if got != "" {
				assert.GreaterOrEqual(t, utf16Len(got), secretsmanager.MinDescriptionLength)
			}
			assert.Equal(t, got, secretsmanager.FitDescription(got), "FitDescription is idempotent")
		})
	}
}
