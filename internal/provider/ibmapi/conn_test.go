package ibmapi

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateEndpoint(t *testing.T) {
	for _, ok := range []string{"https://eu-de.certificate-manager.cloud.ibm.com", "http://127.0.0.1:8080/x", "http://localhost:1", "http://[::1]:9"} {
		assert.NoError(t, ValidateEndpoint(ok), ok)
	}
	for _, bad := range []string{"http://example.com", "ftp://x", "https://u:p@x", "not a url", "http://10.0.0.1"} {
		assert.Error(t, ValidateEndpoint(bad), bad)
	}
}

// TestDialTLS: the connection's transport refuses anything below TLS 1.2, whether the
// caller gave a client or not, and keeps a stricter minimum.
func TestDialTLS(t *testing.T) {
	for name, tc := range map[string]struct {
		hc   *http.Client
		want uint16
	}{
		"default client":         {nil, tls.VersionTLS12},
		"caller's, no config":    {&http.Client{Transport: &http.Transport{}}, tls.VersionTLS12},
		"caller's, TLS 1.0":      {&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS10}}}, tls.VersionTLS12},
		"caller's, TLS 1.3 kept": {&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13}}}, tls.VersionTLS13},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Dial(Settings{APIKey: "k", HTTPClient: tc.hc})
			require.NoError(t, err)
			tr, ok := c.HTTP.Transport.(*http.Transport)
			require.True(t, ok)
			assert.Equal(t, tc.want, tr.TLSClientConfig.MinVersion)
		})
	}
}
