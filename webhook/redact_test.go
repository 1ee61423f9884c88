package webhook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Neither user info nor query values, nor anything of a URL that does not
// parse, survive RedactURL.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"https://example.com/hook", "https://example.com/hook"},
		{"https://example.com/hook?", "https://example.com/hook?"},
		{"https://user:s3cret@example.com/hook", "https://redacted@example.com/hook"},
		{"https://s3cret@example.com/hook", "https://redacted@example.com/hook"},
		{"https://example.com/hook?token=s3cret&x=s3cret", "https://example.com/hook?token=redacted&x=redacted"},
		{"https://example.com/hook?s3cret", "https://example.com/hook?redacted"},
		{"https://example.com/hook?a=1;b=s3cret", "https://example.com/hook?a=redacted"},
		{"https://example.com/hook#access_token=s3cret", "https://example.com/hook#redacted"},
		{"mailto:s3cret@example.com", "mailto:redacted"},
		// A forgotten host makes the password the port.
		{"https://user:s3cret/hook", "<unparseable URL: invalid port after host>"},
		{"https://user:s3cret@exa mple.com/hook", "<unparseable URL: invalid character in host name>"},
		{"https://example.com/hook?token=s3cret\n", "<unparseable URL: net/url: invalid control character in URL>"},
		{"https://user:s3cret@example.com/%zz", "<unparseable URL: invalid URL escape>"},
		{"::s3cret", "<unparseable URL: missing protocol scheme>"},
		{"https://[s3cret/hook", "<unparseable URL: missing ']' in host>"},
	} {
		got := RedactURL(tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
		require.NotContains(t, got, "s3cret", tc.raw)
	}
}

// A redirect the endpoint does not follow is named in the reason without
// the credentials or query values of its Location, on both transports (a
// 302 is never followed, so nothing leaves loopback).
func TestDeliver_RedirectReasonRedacted(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://user:s3cret@elsewhere.example/in?token=s3cret&v=2")
		w.WriteHeader(http.StatusFound)
	})
	for _, netHTTP := range []bool{false, true} {
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL, FollowRedirects: netHTTP})
		require.Equal(t, !netHTTP, ep.h1 != nil)
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Equal(t, "redirect to https://redacted@elsewhere.example/in?token=redacted&v=redacted not followed", de.Reason)
	}
}

// A failed attempt's wrapped error holds nothing of the URL's credentials
// or query either (http.Client wraps its errors in a *url.Error that quotes
// the URL, query included), for a caller that logs Err.
func TestDeliver_ErrRedacted(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {}) // closes at once
	for _, netHTTP := range []bool{false, true} {
		ep := newEndpoint(t, EndpointConfig{URL: strings.Replace(srv.url(), "http://", "http://user:s3cret@", 1) + "/in?token=s3cret", FollowRedirects: netHTTP})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.NotNil(t, de.Err)
		require.NotContains(t, fmt.Sprintf("%v %+v %v", de, de.Err, errors.Unwrap(de)), "s3cret", "net/http: %v", netHTTP)
	}
}
