package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// DeliveryError describes one failed delivery attempt. Deliver returns it for
// every outcome other than a 2xx response; read it with errors.As.
//
// Its Error method returns Reason only, which never contains a secret, a URL
// query or credentials, so it is safe to store and log.
type DeliveryError struct {
	// Status is the HTTP status code, or 0 when no response was received
	// (refused address, connection error, timeout, cancellation).
	Status int
	// Reason is short and human readable: "status 503", "timeout after 15s",
	// "connection refused", "redirect to https://x/y not followed",
	// "refused: 10.1.2.3 is a private address (...)".
	Reason string
	// Retryable is false for 410 Gone, for the endpoint's permanent statuses
	// and for a message Herald can never send (an invalid header); true
	// otherwise.
	Retryable bool
	// Gone is true for 410: the receiver asks never to be called again.
	Gone bool
	// RetryAfter is the receiver's Retry-After on a 429 or 503, as
	// delta-seconds or an HTTP-date; 0 when absent, invalid or in the past.
	RetryAfter time.Duration
	// Response holds the first bytes of a non-2xx response body (up to
	// ClientConfig.KeepResponseBytes), for diagnosis. It is never
	// interpreted, nor made valid UTF-8, but a cut never splits a UTF-8
	// character.
	Response []byte
	// Err is the underlying error, if any. It holds no URL either: the
	// *url.Error that net/http wraps around its errors is taken off.
	Err error
}

// Error returns Reason.
func (e *DeliveryError) Error() string { return e.Reason }

// Unwrap returns Err.
func (e *DeliveryError) Unwrap() error { return e.Err }

// ErrResponseTooLarge is the Err of a DeliveryError whose response body was
// longer than ClientConfig.MaxResponseBytes. Herald stops reading and closes
// that connection.
var ErrResponseTooLarge = errors.New("response too large")

// AddressRefusedError is returned (wrapped in a DeliveryError) when the
// endpoint's host is, or resolves to, an address that delivery must not reach.
type AddressRefusedError struct {
	// Addr is the refused address.
	Addr netip.Addr
	// Class says why, with its article: "a private", "a loopback",
	// "a cloud metadata", "an unspecified"...
	Class string
}

func (e *AddressRefusedError) Error() string {
	msg := "refused: " + e.Addr.String() + " is " + e.Class + " address"
	if e.Class == classMetadata {
		return msg + " (list it in delivery.allowed_cidrs to allow it)"
	}
	return msg + " (delivery.allow_private_networks is false)"
}

// ConfigError is a validation error that names the offending field, for
// example "url" or "secrets[1]". It never contains a secret.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// transportError turns an error from the round trip (no response) into a
// DeliveryError. parent is the caller's context, attempt the one bounded by
// the endpoint's Timeout.
func (e *Endpoint) transportError(parent, attempt context.Context, err error) *DeliveryError {
	// Err too is free of the URL, for callers that log it.
	err = innermost(err)
	de := &DeliveryError{Retryable: true, Err: err}
	var (
		refused *AddressRefusedError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		permErr *permanentError
	)
	switch {
	case errors.As(err, &permErr):
		de.Reason = permErr.reason
		de.Retryable = false
	case errors.As(err, &refused):
		de.Reason = refused.Error()
	case parent.Err() != nil:
		de.Reason = "canceled: " + parent.Err().Error()
		de.Err = errors.Join(parent.Err(), err)
	case attempt.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		de.Reason = e.timeoutReason
	case errors.Is(err, syscall.ECONNREFUSED):
		de.Reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		de.Reason = "connection reset by peer"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			de.Reason = "no such host " + dnsErr.Name
		} else {
			de.Reason = "dns lookup of " + dnsErr.Name + " failed: " + dnsErr.Err
		}
	case errors.As(err, &certErr):
		de.Reason = "tls: " + certErr.Err.Error()
	case errors.As(err, &recErr):
		de.Reason = "tls: server did not answer with TLS"
	case errors.Is(err, errHeadTooLarge):
		// net/http's own error says "server response headers exceeded N
		// bytes; aborted".
		de.Reason = "response headers exceeded " + strconv.FormatInt(e.maxHead, 10) + " bytes"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		de.Reason = "connection closed by server before a response"
	default:
		de.Reason = "request failed: " + err.Error()
	}
	return de
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// innermost strips *url.Error wrappers, whose message carries the URL
// (possibly with credentials or a token in the query).
func innermost(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

// permanentError makes a transport error non-retryable, for example a
// redirect to a scheme Herald cannot send to.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

// statusReason returns "status 503" without fmt.
func statusReason(status int) string {
	return "status " + strconv.Itoa(status)
}
