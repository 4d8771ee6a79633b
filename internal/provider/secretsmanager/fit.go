package secretsmanager

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/certbackup/certbackup/internal/engine"
)

// Limits of a secret's name and description (docs/services/secrets-manager.md §6).
// Lengths are counted in UTF-16 code units, which is never fewer than characters.
const (
	MinNameLength        = 2
	MaxNameLength        = 256
	MinDescriptionLength = 2
	MaxDescriptionLength = 1024
)

// suffixHexLen is the length of the name suffix that tells copies of different
// sources apart: 8 hex characters of SHA-256, 32 bits.
const suffixHexLen = 8

// fallbackName stands in for a name with no letter or digit at all, and pads a
// one-character name.
const fallbackName = "certificate"

// FitLabels is l as a Secrets Manager instance stores it (see Instance.Fit).
func FitLabels(l engine.Labels) engine.Labels {
	l.Name = FitName(l.Name, l.Marker)
	l.Description = FitDescription(l.Description)
	return l
}

// FitName makes name a valid secret name, unique to the logical certificate m names.
//
// Secrets Manager allows 2–256 characters, only letters, digits, dashes and dots, a
// letter or digit first and last; and no two secrets of one type may share a name in
// an instance (compared without regard to case). So every other character (space,
// underscore, any non-ASCII letter) becomes '-', runs of '-' become one, and dashes and
// dots are trimmed from both ends. A name left empty becomes "certificate"; a
// one-character name gets "-certificate".
//
// A copy (m is not zero) then ends in "-" and the first 8 hex characters of
// SHA-256(m.Root()): two sources of the same name get different copies' names, and
// every copy of one logical certificate (copies of copies after a failover share their
// root) gets the same name. A name that already ends in its suffix keeps it without a
// second one, so that the copy of a copy is named like the copy, and FitName is
// idempotent.
func FitName(name string, m engine.Marker) string {
	base := sanitizeName(name)
	if base == "" {
		base = fallbackName
	}
	if m == (engine.Marker{}) {
		if len(base) < MinNameLength {
			base += "-" + fallbackName
		}
		return cutName(base, MaxNameLength)
	}
	suffix := "-" + NameSuffix(m)
	if strings.HasSuffix(base, suffix) && len(base) > len(suffix) && len(base) <= MaxNameLength {
		return base
	}
	return cutName(base, MaxNameLength-len(suffix)) + suffix
}

// NameSuffix is the hash that FitName appends to a copy's name ("" for the zero
// marker): the first 8 hex characters of SHA-256 of the marker's root.
func NameSuffix(m engine.Marker) string {
	if m == (engine.Marker{}) {
		return ""
	}
	sum := sha256.Sum256([]byte(m.Root()))
	return hex.EncodeToString(sum[:])[:suffixHexLen]
}

func sanitizeName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.')) {
			r = '-'
		}
		if r == '-' && dash {
			continue
		}
		dash = r == '-'
		b.WriteRune(r)
	}
	return strings.Trim(b.String(), "-.")
}

// cutName cuts an ASCII name to n characters and trims what the cut left at its end.
func cutName(s string, n int) string {
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-.")
	}
	return s
}

// FitDescription makes d a valid description: at most 1024 UTF-16 code units, cut at
// a character boundary; invalid UTF-8 becomes U+FFFD, byte by byte, as encoding/json
// sends it; a description of one unit gets a '.' (the service wants 2 when there is
// one). "" stays "": the field is then left out (an empty description is refused).
func FitDescription(d string) string {
	if d == "" {
		return ""
	}
	var b strings.Builder
	units := 0
	for _, r := range d { // an invalid byte is utf8.RuneError, written as U+FFFD
		n := utf16.RuneLen(r)
		if n < 0 {
			n = 1
		}
		if units+n > MaxDescriptionLength {
			break
		}
		units += n
		b.WriteRune(r)
	}
	if units < MinDescriptionLength {
		b.WriteByte('.')
	}
	return b.String()
}
