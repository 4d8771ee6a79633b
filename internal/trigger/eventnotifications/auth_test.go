package eventnotifications

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name   string
		values []string // Authorization header values; nil = no header
		secret string   // configured; webhookSecret when ""
		want   error
	}{
		{name: "bearer", values: []string{"Bearer " + webhookSecret}},
		{name: "scheme lower case", values: []string{"bearer " + webhookSecret}},
		{name: "scheme upper case", values: []string{"BEARER " + webhookSecret}},
		{name: "several spaces after the scheme", values: []string{"Bearer   " + webhookSecret}},

		{name: "missing", values: nil, want: ErrUnauthorized},
		{name: "empty", values: []string{""}, want: ErrUnauthorized},
		{name: "wrong token", values: []string{"Bearer " + strings.Repeat("x", len(webhookSecret))}, want: ErrUnauthorized},
		{name: "token in another case", values: []string{"Bearer " + strings.ToUpper(webhookSecret)}, want: ErrUnauthorized},
		{name: "short bearer: a prefix of the secret", values: []string{"Bearer " + webhookSecret[:len(webhookSecret)-1]}, want: ErrUnauthorized},
		{name: "short bearer: one character", values: []string{"Bearer X"}, want: ErrUnauthorized},
		{name: "secret plus one character", values: []string{"Bearer " + webhookSecret + "x"}, want: ErrUnauthorized},
		{name: "trailing space", values: []string{"Bearer " + webhookSecret + " "}, want: ErrUnauthorized},
		{name: "trailing tab", values: []string{"Bearer " + webhookSecret + "\t"}, want: ErrUnauthorized},
		{name: "trailing newline", values: []string{"Bearer " + webhookSecret + "\n"}, want: ErrUnauthorized},
		{name: "tab after the scheme", values: []string{"Bearer\t" + webhookSecret}, want: ErrUnauthorized},
		{name: "no separator", values: []string{"Bearer" + webhookSecret}, want: ErrUnauthorized},
		{name: "scheme only", values: []string{"Bearer"}, want: ErrUnauthorized},
		{name: "scheme and space only", values: []string{"Bearer "}, want: ErrUnauthorized},
		{name: "secret without scheme", values: []string{webhookSecret}, want: ErrUnauthorized},
		{name: "basic scheme", values: []string{"Basic " + webhookSecret}, want: ErrUnauthorized},
		{name: "token scheme", values: []string{"Token " + webhookSecret}, want: ErrUnauthorized},
		{name: "two headers, both right", values: []string{"Bearer " + webhookSecret, "Bearer " + webhookSecret}, want: ErrUnauthorized},
		{name: "two headers, one right", values: []string{"Bearer nope", "Bearer " + webhookSecret}, want: ErrUnauthorized},
		{name: "huge header", values: []string{"Bearer " + strings.Repeat(webhookSecret, 100000)}, want: ErrUnauthorized},

		{name: "configured secret empty, empty bearer", values: []string{"Bearer "}, secret: "-", want: ErrConfig},
		{name: "configured secret too short, right bearer", values: []string{"Bearer short-secret"}, secret: "short-secret", want: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := tt.secret
			switch secret {
			case "":
				secret = webhookSecret
			case "-":
				secret = ""
			}
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Authorization", v)
			}
			err := Authenticate(h, secret)
			check := func(err error) {
				if tt.want == nil {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, tt.want)
				assert.NotContains(t, err.Error(), webhookSecret[:8], "the error quotes the secret")
				if secret != "" {
					assert.NotContains(t, err.Error(), secret, "the error quotes the secret")
				}
				assert.Less(t, len(err.Error()), 200)
			}
			check(err)
			if len(tt.values) <= 1 {
				v := ""
				if len(tt.values) == 1 {
					v = tt.values[0]
				}
				check(AuthenticateValue(v, secret))
			}
		})
	}
}

// A header map built by hand with a lower-case key is not what net/http hands over;
// Authenticate reads canonical keys only, so such a header is missing, never trusted.
func TestAuthenticateNonCanonicalKey(t *testing.T) {
	h := http.Header{"authorization": {"Bearer " + webhookSecret}}
	require.ErrorIs(t, Authenticate(h, webhookSecret), ErrUnauthorized)
}

func TestValidateSecret(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		ok     bool
	}{
		{name: "32 characters", secret: strings.Repeat("a", 32), ok: true},
		{name: "base64 alphabet", secret: "abcdefghijklmnopqrstuvwxyzABCDEF0123456789+/==", ok: true},
		{name: "visible punctuation", secret: `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~` + "`0", ok: true},
		{name: "4096 characters", secret: strings.Repeat("a", 4096), ok: true},
		{name: "empty", secret: ""},
		{name: "31 characters", secret: strings.Repeat("a", 31)},
		{name: "4097 characters", secret: strings.Repeat("a", 4097)},
		{name: "space inside", secret: strings.Repeat("a", 20) + " " + strings.Repeat("a", 20)},
		{name: "trailing space", secret: strings.Repeat("a", 40) + " "},
		{name: "leading tab", secret: "\t" + strings.Repeat("a", 40)},
		{name: "trailing newline", secret: strings.Repeat("a", 40) + "\n"},
		{name: "control character", secret: strings.Repeat("a", 40) + "\x00"},
		{name: "DEL", secret: strings.Repeat("a", 40) + "\x7f"},
		{name: "non-ASCII", secret: strings.Repeat("a", 40) + "é"},
		{name: "non-breaking space", secret: strings.Repeat("a", 20) + "\u00a0" + strings.Repeat("a", 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSecret(tt.secret)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
			assert.Equal(t, 500, HTTPStatus(err))
			if tt.secret != "" {
				assert.NotContains(t, err.Error(), strings.TrimSpace(tt.secret)[:16], "the error quotes the secret")
			}
		})
	}
}
