package safeerr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

const pasted = "Zx9-pasted_APIkey_0123456789abcdef"

// TestNetworkNeverQuotesTheAddress: a key pasted as an endpoint's host comes back in
// Go's own error text; Network never lets it through.
func TestNetworkNeverQuotesTheAddress(t *testing.T) {
	c := &http.Client{Timeout: 2 * time.Second}
	_, dnsErr := c.Get("https://" + strings.ToLower(pasted) + ".invalid/x")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := c.Get("http://" + addr + "/" + pasted)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"dns", dnsErr, "the host name could not be resolved"},
		{"refused", refused, "connection refused"},
		{"deadline", fmt.Errorf("x %s: %w", pasted, context.DeadlineExceeded), "deadline exceeded"},
		{"url error", &url.Error{Op: "Get", URL: "https://" + pasted, Err: errors.New("boom " + pasted)}, "network error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Skip("the call did not fail")
			}
			got := Network(tt.err)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, strings.ToLower(got), strings.ToLower(pasted[:10]))
		})
	}
}

func TestMessage(t *testing.T) {
	assert.Equal(t, Withheld, Message("bad apikey "+pasted))
	assert.Equal(t, Withheld, Message("-----BEGIN PRIVATE KEY-----"))
	assert.Equal(t, "a b", Message("a\nb"))
	assert.Len(t, []rune(Message(strings.Repeat("é", 400))), maxMessage+3)
}

func TestCause(t *testing.T) {
	assert.Equal(t, "decode response", Cause(errors.New("decode response")), "our own words are kept")
	assert.Equal(t, "connection refused", Cause(NetworkError(syscall.ECONNREFUSED)))
	assert.Equal(t, "network error", Cause(&url.Error{Op: "Get", URL: "https://" + pasted, Err: errors.New(pasted)}))
	assert.Equal(t, Withheld, Cause(errors.New("apikey "+pasted)))
}

// TestOwn: words marked as certbackup's own are printed as they are, even wrapping a
// deadline (which alone prints as its kind), and still answer errors.Is.
func TestOwn(t *testing.T) {
	sentinel := errors.New("the rate limit would delay the call past its deadline")
	err := fmt.Errorf("call: %w", Own(fmt.Errorf("%w: %w", sentinel, context.DeadlineExceeded)))
	assert.Equal(t, "the rate limit would delay the call past its deadline: context deadline exceeded", Cause(err))
	assert.ErrorIs(t, err, sentinel)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "deadline exceeded", Cause(fmt.Errorf("call: %w", context.DeadlineExceeded)))
}
