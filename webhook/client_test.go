package webhook

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testTimeout is the per-attempt timeout of test endpoints.
const testTimeout = 2 * time.Second

func testSecret(fill byte) string {
	key := make([]byte, 32)
	for i := range key {
		key[i] = fill
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// received is what a test server saw of one request.
type received struct {
	method string
	proto  int
	header http.Header
	body   []byte
}

// newServer starts a plain-http server that records requests and answers
// with handler (or 204 when handler is nil).
func newServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	return transport{}.server(t, handler)
}

// newEndpoint builds an endpoint allowed to reach the loopback test server.
func newEndpoint(t *testing.T, cfg EndpointConfig) *Endpoint {
	t.Helper()
	return newEndpointWith(t, ClientConfig{AllowPrivateNetworks: true}, cfg)
}

func newEndpointWith(t *testing.T, ccfg ClientConfig, cfg EndpointConfig) *Endpoint {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	ep, err := NewClient(ccfg).Endpoint(cfg)
	require.NoError(t, err)
	t.Cleanup(ep.Close)
	return ep
}

func requireDeliveryError(t *testing.T, err error) *DeliveryError {
	t.Helper()
	require.Error(t, err)
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	return de
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, time.Duration(0), parseRetryAfter("", now))
	require.Equal(t, 30*time.Second, parseRetryAfter("30", now))
	require.Equal(t, time.Duration(0), parseRetryAfter("1.5", now))
	require.Equal(t, time.Minute, parseRetryAfter(now.Add(time.Minute).Format(http.TimeFormat), now))
	require.Equal(t, time.Duration(0), parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
	require.Positive(t, parseRetryAfter("99999999999999999999", now), "huge values saturate instead of overflowing")
}

// Following redirects is net/http's: FollowRedirects takes an endpoint off
// the lean pool. Not following them, the default, is in the contract suite.
func TestDeliver_FollowRedirects(t *testing.T) {
	t.Parallel()
	var target atomic.Value
	srv, reqs := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/307":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/302":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			target.Store(r.Method)
			w.WriteHeader(http.StatusOK)
		}
	})

	t.Run("302 not followed even when configured", func(t *testing.T) {
		t.Parallel()
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL + "/302", FollowRedirects: true})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)}))
		require.Equal(t, 302, de.Status)
		require.Equal(t, "redirect to "+srv.URL+"/final not followed", de.Reason)
	})

	t.Run("307 followed when configured", func(t *testing.T) {
		t.Parallel()
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL + "/307", FollowRedirects: true})
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_redirected", Body: []byte(`{"x":1}`)}))
		// The final hop got the same POST and body.
		for range 10 {
			r := <-reqs
			if r.header.Get(HeaderID) == "msg_redirected" && string(r.body) == `{"x":1}` && r.method == http.MethodPost {
				if target.Load() != nil {
					return
				}
			}
		}
		t.Fatal("final hop did not get the POST")
	})
}

func TestDeliver_HTTP2AndCAFile(t *testing.T) {
	t.Parallel()
	var protos sync.Map
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted client's handshake failure
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	// A TLS 1.3 handshake and HTTP/2's setup under the race detector, on a
	// loaded 2-core CI machine, took over testTimeout: this test is about
	// the protocol and the CA, not the time.
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, TLS: TLSConfig{CAFile: caFile, MinVersion: "1.3"}, Timeout: 15 * time.Second})
	for i := range 20 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{}`)}))
	}
	_, h2 := protos.Load("HTTP/2.0")
	require.True(t, h2)
	require.EqualValues(t, 1, conns.Load())

	// Without the CA the server is not trusted.
	untrusted := newEndpoint(t, EndpointConfig{URL: srv.URL})
	de := requireDeliveryError(t, untrusted.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.True(t, strings.HasPrefix(de.Reason, "tls: "), de.Reason)
	require.True(t, de.Retryable)
}

func TestEndpoint_Config(t *testing.T) {
	t.Parallel()
	secret := testSecret('s')
	tests := []struct {
		name    string
		cfg     EndpointConfig
		wantErr string
	}{
		{name: "ok", cfg: EndpointConfig{Name: "a", URL: "https://example.com/x", Secrets: []string{secret}}},
		{name: "no name", cfg: EndpointConfig{URL: "https://example.com"}, wantErr: "name: required"},
		{name: "no url", cfg: EndpointConfig{Name: "a"}, wantErr: "url: scheme must be http or https"},
		{name: "relative", cfg: EndpointConfig{Name: "a", URL: "/hooks"}, wantErr: "url: scheme must be http or https"},
		{name: "ftp", cfg: EndpointConfig{Name: "a", URL: "ftp://example.com/"}, wantErr: `url: scheme must be http or https, got "ftp"`},
		{name: "no host", cfg: EndpointConfig{Name: "a", URL: "http:///x"}, wantErr: "url: must be absolute"},
		{name: "unparsable keeps password out", cfg: EndpointConfig{Name: "a", URL: "http://user:hunter2@exa mple.com/"}, wantErr: "url: not a valid URL: invalid character in host name"},
		{name: "space in the query", cfg: EndpointConfig{Name: "a", URL: "http://example.com/x?a=b c&token=hunter2"}, wantErr: "url: query must not hold a space"},
		{name: "password taken for a port", cfg: EndpointConfig{Name: "a", URL: "https://user:hunter2/x"}, wantErr: "url: not a valid URL: invalid port after host"},
		{name: "bad secret", cfg: EndpointConfig{Name: "a", URL: "https://example.com", Secrets: []string{secret, "whsec_c2hvcnQ="}}, wantErr: "secrets[1]: "},
		{name: "secret without prefix", cfg: EndpointConfig{Name: "a", URL: "https://example.com", Secrets: []string{"hunter2hunter2hunter2hunter2"}}, wantErr: "secrets[0]: "},
		{name: "reserved header", cfg: EndpointConfig{Name: "a", URL: "https://example.com", Headers: map[string]string{"host": "x"}}, wantErr: `headers: "Host" is reserved`},
		{name: "header injection", cfg: EndpointConfig{Name: "a", URL: "https://example.com", Headers: map[string]string{"X-A": "1\r\n2"}}, wantErr: `headers: "X-A" has an invalid value`},
		{name: "negative timeout", cfg: EndpointConfig{Name: "a", URL: "https://example.com", Timeout: -time.Second}, wantErr: "timeout: must not be negative"},
		{name: "negative max conns", cfg: EndpointConfig{Name: "a", URL: "https://example.com", MaxConns: -1}, wantErr: "max_conns: must not be negative"},
		{name: "permanent 500", cfg: EndpointConfig{Name: "a", URL: "https://example.com", PermanentStatuses: []int{400, 500}}, wantErr: "permanent_statuses[1]: 500 is not a 4xx status"},
		{name: "tls version", cfg: EndpointConfig{Name: "a", URL: "https://example.com", TLS: TLSConfig{MinVersion: "1.1"}}, wantErr: `tls.min_version: "1.1" is not supported`},
		{name: "tls cert without key", cfg: EndpointConfig{Name: "a", URL: "https://example.com", TLS: TLSConfig{CertFile: "c.pem"}}, wantErr: "tls.cert_file: "},
		{name: "tls missing ca", cfg: EndpointConfig{Name: "a", URL: "https://example.com", TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, wantErr: "tls.ca_file: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ep, err := NewClient(ClientConfig{}).Endpoint(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tt.cfg.Name, ep.Name())
				ep.Close()
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.NotContains(t, err.Error(), "hunter2")
			require.NotContains(t, err.Error(), secret)
		})
	}
}

func TestClientConfig_WithDefaults(t *testing.T) {
	t.Parallel()
	cfg := ClientConfig{}.WithDefaults()
	require.Equal(t, int64(MaxResponseBytesDefault), cfg.MaxResponseBytes)
	require.Equal(t, KeepResponseBytesDefault, cfg.KeepResponseBytes)
	require.Equal(t, int64(MaxResponseHeaderBytesDefault), cfg.MaxResponseHeaderBytes)
	require.Equal(t, net.DefaultResolver, cfg.Resolver)
	require.Contains(t, cfg.UserAgent, "Herald/"+Version)

	cfg = ClientConfig{MaxResponseBytes: 10, KeepResponseBytes: 100, UserAgent: "x"}.WithDefaults()
	require.Equal(t, 10, cfg.KeepResponseBytes)
	require.Equal(t, "x", cfg.UserAgent)
}

func TestDeliveryError_Unwrap(t *testing.T) {
	t.Parallel()
	inner := errors.New("inner")
	var err error = &DeliveryError{Reason: "status 500", Err: inner}
	require.ErrorIs(t, err, inner)
	require.Equal(t, "status 500", err.Error())
}
