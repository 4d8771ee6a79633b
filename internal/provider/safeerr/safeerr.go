// Package safeerr renders what a service or the network said in a form that can be
// logged and returned: short, one line, and never holding a credential, key material or
// an address taken from the configuration (a key pasted into an endpoint's host name
// must not come back in a DNS error). Both providers use it, so the rule is one.
package safeerr

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Withheld replaces a message that looked like it held a secret.
const Withheld = "(message withheld: it looked like it held a secret)"

// maxMessage bounds a kept message, in characters.
const maxMessage = 300

// looksSecret are lower-case fragments of credentials and key material.
var looksSecret = []string{"-----begin", "bearer ", "apikey", "api_key", "priv_key", "private_key", "private key", "access_token", "refresh_token", "eyj"}

// Message keeps a service's message short, on one line, and withholds it when it looks
// like it holds a secret.
func Message(msg string) string {
	msg = strings.TrimSpace(msg)
	lower := strings.ToLower(msg)
	for _, bad := range looksSecret {
		if strings.Contains(lower, bad) {
			return Withheld
		}
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, msg)
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage]) + "..."
	}
	return msg
}

// safe is a cause whose text is our own and safe to print.
type safe string

func (s safe) Error() string { return string(s) }

// Own marks err's text as certbackup's own words (naming nothing secret), which Cause
// then prints as it is; errors.Is and errors.As still see err.
func Own(err error) error { return &own{err} }

type own struct{ err error }

func (o *own) Error() string { return o.err.Error() }
func (o *own) Unwrap() error { return o.err }

// NetworkError is Network(err) as an error that Network gives back unchanged.
func NetworkError(err error) error { return safe(Network(err)) }

// Network names what went wrong on the way to a service without its text: a transport
// error quotes the host, the address and the URL, any of which may hold what an operator
// pasted there.
func Network(err error) string {
	var dns *net.DNSError
	var tlsErr *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var ne net.Error
	var own safe
	switch {
	case err == nil:
		return "no error"
	case errors.As(err, &own):
		return string(own)
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		return "the host name could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the answer"
	case errors.As(err, &tlsErr), errors.As(err, &rec):
		return "TLS handshake failed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "network error"
	}
}

// Cause renders a failure's cause: words marked Own as they are, a transport error as
// Network does, anything else through Message.
func Cause(err error) string {
	var ue *url.Error
	var ne net.Error
	var errno syscall.Errno
	var words *own
	if errors.As(err, &words) {
		return words.Error()
	}
	var own safe
	if errors.As(err, &own) || errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &errno) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Network(err)
	}
	return Message(err.Error())
}
