package eventnotifications

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse: whatever the body, Parse never panics, every error is one of the typed
// client errors, never long (no body quoted), and a success always means secrets of
// the configured instance only (checkInvariants).
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(f, err)
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, tc := range parseCases() {
		if b := tc.body(f); len(b) <= 64<<10 && tc.source == "" {
			f.Add(b) // the hostile table, except the megabyte bodies that only slow it down
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := Parse(body, srcCRN)
		if err != nil {
			require.Nil(t, n)
			status := HTTPStatus(err)
			require.Contains(t, []int{400, 403, 413}, status, "status %d for %v", status, err)
			require.Less(t, len(err.Error()), 300)
			return
		}
		checkInvariants(t, body, n)
	})
}

// FuzzAuthenticate: a value is accepted only if it is "Bearer" in any case, one or
// more spaces and exactly the secret.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{
		"Bearer " + webhookSecret, "bearer " + webhookSecret, "Bearer  " + webhookSecret,
		"Bearer " + webhookSecret + " ", "Bearer\t" + webhookSecret, "Basic " + webhookSecret,
		webhookSecret, "", "Bearer ", "Bearer " + webhookSecret[:31],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		err := AuthenticateValue(value, webhookSecret)
		scheme, token, _ := strings.Cut(value, " ")
		want := strings.EqualFold(scheme, "bearer") && strings.TrimLeft(token, " ") == webhookSecret
		if want {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ErrUnauthorized)
			require.NotContains(t, err.Error(), webhookSecret)
		}
	})
}
