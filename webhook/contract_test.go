package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The client's contract: what a caller of Deliver relies on, one test body
// per behaviour, run on every transport an endpoint can use, so that the
// lean pool cannot drift from net/http, the reference it replaces for plain
// http. Tests of one transport's machinery (the h1 pool's wire format and
// stale connections, HTTP/2, redirect following) stay in their own files.

// transport is one way an endpoint sends.
type transport struct {
	name string
	// tls serves the test servers over TLS, with the CA given to the
	// endpoint; https always goes through net/http.
	tls bool
	// lean sends plain http through the h1 pool; otherwise
	// ClientConfig.DisableLeanPool sends it through net/http.
	lean bool
}

var transports = []transport{
	{name: "h1", lean: true},
	{name: "net-http"},
	{name: "net-http-tls", tls: true},
}

// contractCases are the behaviours; each runs on every transport.
var contractCases = []struct {
	name string
	run  func(t *testing.T, tr transport)
}{
	{"SignedRequest", testSignedRequest},
	{"SecretRotation", testSecretRotation},
	{"NoSecretNoSignature", testNoSecretNoSignature},
	{"URLCredentials", testURLCredentials},
	{"InvalidMessage", testInvalidMessage},
	{"Status", testStatus},
	{"RedirectNotFollowedByDefault", testRedirectNotFollowedByDefault},
	{"RedirectReasonRedacted", testRedirectReasonRedacted},
	{"ResponseCutAtRune", testResponseCutAtRune},
	{"ResponseLimitExact", testResponseLimitExact},
	{"HugeResponse", testHugeResponse},
	{"ResponseBodyAndReuse", testResponseBodyAndReuse},
	{"EndlessResponseHead", testEndlessResponseHead},
	{"InformationalAndConnectionClose", testInformationalAndConnectionClose},
	{"TimeoutNoAnswer", testTimeoutNoAnswer},
	{"ContextCanceled", testContextCanceled},
	{"SlowBody", testSlowBody},
	{"ResetMidResponse", testResetMidResponse},
	{"AnswerBeforeBody", testAnswerBeforeBody},
	{"ClosedWithoutAnswer", testClosedWithoutAnswer},
	{"ConnectionRefused", testConnectionRefused},
	{"ConnectionReuse", testConnectionReuse},
	{"ErrRedacted", testErrRedacted},
	{"AddressPolicy", testAddressPolicy},
}

func TestClientContract(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range contractCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, tr)
				})
			}
		})
	}
}

// testCert returns a server TLS config with the certificate every httptest
// TLS server shares, offering HTTP/1.1 only (raw servers speak nothing
// else), and that certificate in PEM, for the endpoint's CA file.
var testCert = sync.OnceValues(func() (*tls.Config, []byte) {
	s := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.StartTLS()
	defer s.Close()
	cfg := s.TLS.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return cfg, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
})

func (tr transport) scheme() string {
	if tr.tls {
		return "https"
	}
	return "http"
}

// start starts srv over the transport's scheme and closes it at cleanup.
func (tr transport) start(t *testing.T, srv *httptest.Server) {
	t.Helper()
	if tr.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
}

// server starts a server that records requests and answers with handler
// (or 204 when handler is nil).
func (tr transport) server(t *testing.T, handler http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	reqs := make(chan received, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case reqs <- received{method: r.Method, proto: r.ProtoMajor, header: r.Header.Clone(), body: body}:
		default:
		}
		if handler == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		handler(w, r)
	}))
	tr.start(t, srv)
	return srv, reqs
}

// countingServer starts a server with handler h and counts the connections
// it accepts.
func (tr transport) countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	tr.start(t, srv)
	return srv, &conns
}

// rawServer starts a rawServer over the transport's scheme.
func (tr transport) rawServer(t *testing.T, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	var cfg *tls.Config
	if tr.tls {
		cfg, _ = testCert()
	}
	return startRawServer(t, cfg, serve)
}

// endpoint builds an endpoint that sends over the transport, allowed to
// reach loopback and, over TLS, trusting the test servers' certificate.
func (tr transport) endpoint(t *testing.T, ccfg ClientConfig, cfg EndpointConfig) *Endpoint {
	t.Helper()
	ccfg.AllowPrivateNetworks = true
	return tr.guardedEndpoint(t, ccfg, cfg)
}

// guardedEndpoint is endpoint under ccfg's address policy as given.
func (tr transport) guardedEndpoint(t *testing.T, ccfg ClientConfig, cfg EndpointConfig) *Endpoint {
	t.Helper()
	ccfg.DisableLeanPool = !tr.lean
	if tr.tls {
		_, ca := testCert()
		cfg.TLS.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(cfg.TLS.CAFile, ca, 0o600))
	}
	ep := newEndpointWith(t, ccfg, cfg)
	require.Equal(t, tr.lean, ep.h1 != nil, "the endpoint sends over %s", tr.name)
	return ep
}

// resetConn closes c with a TCP reset instead of a clean close (and,
// over TLS, with no close_notify).
func resetConn(t *testing.T, c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !assert.True(t, ok, "%T is not a TCP connection", c) {
		return
	}
	assert.NoError(t, tcp.SetLinger(0))
	_ = tcp.Close()
}

// The request carries the body as given, the fixed, endpoint and message
// headers, and a signature Standard Webhooks' own library verifies.
func testSignedRequest(t *testing.T, tr transport) {
	srv, reqs := tr.server(t, nil)
	secret := testSecret('a')
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{
		URL:     srv.URL + "/hooks?x=1",
		Secrets: []string{secret},
		Headers: map[string]string{"X-Static": "s", "authorization": "Bearer t"},
	})
	body := []byte(`{"b": 2, "a": [1,2,3]}`) // not canonical JSON: must arrive as is
	msg := &Message{ID: "msg_1", Body: body, Headers: []Header{{Name: "X-Tenant", Value: "acme"}, {Name: "x-static", Value: "override"}}}

	require.NoError(t, ep.Deliver(context.Background(), msg))

	r := <-reqs
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, body, r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "Herald/"+Version+" (+https://github.com/herald-relay/herald)", r.header.Get("User-Agent"))
	require.Equal(t, "Bearer t", r.header.Get("Authorization"))
	require.Equal(t, []string{"override"}, r.header.Values("X-Static"))
	require.Equal(t, "acme", r.header.Get("X-Tenant"))
	require.Equal(t, "msg_1", r.header.Get(HeaderID))
	require.Empty(t, r.header.Values("Idempotency-Key"), "the nil Idempotency-Key must not reach the wire")
	require.Empty(t, r.header.Values("Accept-Encoding"))
	ts, err := strconv.ParseInt(r.header.Get(HeaderTimestamp), 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), ts, 5)
	require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, r.header.Get(HeaderSignature))

	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(r.body, r.header))
}

// With two secrets, two signatures: each verifies with its own secret.
func testSecretRotation(t *testing.T, tr transport) {
	srv, reqs := tr.server(t, nil)
	newSecret, oldSecret := testSecret('n'), testSecret('o')
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Secrets: []string{newSecret, oldSecret}})

	require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_rot", Body: []byte(`{}`)}))

	r := <-reqs
	sigs := strings.Split(r.header.Get(HeaderSignature), " ")
	require.Len(t, sigs, 2)
	require.NotEqual(t, sigs[0], sigs[1])
	for _, secret := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(r.body, r.header))
	}
	other, err := standardwebhooks.NewWebhook(testSecret('x'))
	require.NoError(t, err)
	require.Error(t, other.Verify(r.body, r.header))
}

func testNoSecretNoSignature(t *testing.T, tr transport) {
	srv, reqs := tr.server(t, nil)
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL})

	require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))

	r := <-reqs
	require.Empty(t, r.body)
	require.Empty(t, r.header.Values(HeaderSignature))
	require.Equal(t, "msg_1", r.header.Get(HeaderID))
}

// Credentials in the URL are sent as Basic auth, as http.Client does; a
// configured Authorization header wins.
func testURLCredentials(t *testing.T, tr transport) {
	srv, reqs := tr.server(t, nil)
	withCreds := strings.Replace(srv.URL, "://", "://hook:s3cret@", 1) + "/in"
	for _, cfg := range []EndpointConfig{
		{URL: withCreds},
		{URL: withCreds, Headers: map[string]string{"Authorization": "Bearer t"}},
	} {
		ep := tr.endpoint(t, ClientConfig{}, cfg)
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)}))
		r := <-reqs
		if cfg.Headers != nil {
			require.Equal(t, []string{"Bearer t"}, r.header.Values("Authorization"))
			continue
		}
		user, pass, ok := (&http.Request{Header: r.header}).BasicAuth()
		require.True(t, ok, "%+v", cfg)
		require.Equal(t, "hook", user)
		require.Equal(t, "s3cret", pass)
	}
}

// A message Herald must not send (an id or a header that would inject
// headers, smuggle a request, or break the Standard Webhooks id rule) fails
// before any byte goes out, with one non-retryable error naming the problem.
func testInvalidMessage(t *testing.T, tr transport) {
	var got atomic.Int64
	srv := tr.rawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, err := br.ReadByte(); err == nil {
			got.Add(1)
		}
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url()})
	for _, tc := range []struct {
		name   string
		msg    Message
		reason string
	}{
		{"no id", Message{}, "invalid message id: empty"},
		{"CRLF in id", Message{ID: "msg_1\r\nX-Injected: 1"}, `invalid message id: byte "\r" at 5 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"smuggled request", Message{ID: "msg_1\r\nContent-Length: 0\r\n\r\nPOST /admin HTTP/1.1"}, `invalid message id: byte "\r" at 5 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"LF in id", Message{ID: "msg\n"}, `invalid message id: byte "\n" at 3 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"NUL in id", Message{ID: "msg\x00"}, `invalid message id: byte "\x00" at 3 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"space in id", Message{ID: "msg 1"}, `invalid message id: byte " " at 3 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"non-ASCII id", Message{ID: "msg_é"}, `invalid message id: byte "\xc3" at 4 (allowed: A-Z a-z 0-9 and _.:~+=/-)`},
		{"id too long", Message{ID: strings.Repeat("a", 256)}, "invalid message id: 256 bytes, more than 255"},
		{"CRLF in header value", Message{ID: "msg_1", Headers: []Header{{Name: "X-Evil", Value: "a\r\nX-Injected: 1"}}}, `message header "X-Evil" has an invalid value (control characters such as CR or LF are not allowed)`},
		{"NUL in header value", Message{ID: "msg_1", Headers: []Header{{Name: "X-Evil", Value: "a\x00"}}}, `message header "X-Evil" has an invalid value (control characters such as CR or LF are not allowed)`},
		{"CRLF in header name", Message{ID: "msg_1", Headers: []Header{{Name: "X-A\r\nX-B", Value: "1"}}}, `message header "X-A\r\nX-B" is not a valid header name`},
		{"reserved header", Message{ID: "msg_1", Headers: []Header{{Name: "webhook-signature", Value: "v1,forged"}}}, `message header "Webhook-Signature" is reserved`},
		{"space in header name", Message{ID: "msg_1", Headers: []Header{{Name: "Bad Name", Value: "v"}}}, `message header "Bad Name" is not a valid header name`},
	} {
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &tc.msg))
		assert.Equal(t, tc.reason, de.Reason, tc.name)
		assert.False(t, de.Retryable, tc.name)
	}
	// Every character the rule allows, and the longest id, go out.
	srv2, reqs := tr.server(t, nil)
	ep = tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv2.URL})
	for _, id := range []string{
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:~+=/-",
		strings.Repeat("a", 255),
	} {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: id}))
		require.Equal(t, id, (<-reqs).header.Get(HeaderID))
	}
	require.Zero(t, srv.conns.Load(), "no invalid message opened a connection")
	require.Zero(t, got.Load(), "no invalid message reached the server")
}

// 2xx is success; 410 and the permanent 4xx are not retried; other
// statuses are, with the receiver's Retry-After on 429 and 503.
func testStatus(t *testing.T, tr transport) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		permanent  []int
		wantOK     bool
		retryable  bool
		gone       bool
		minAfter   time.Duration
		maxAfter   time.Duration
	}{
		{name: "200", status: 200, wantOK: true},
		{name: "201", status: 201, wantOK: true},
		{name: "202", status: 202, wantOK: true},
		{name: "204", status: 204, wantOK: true},
		{name: "500 retryable", status: 500, retryable: true},
		{name: "502 retryable", status: 502, retryable: true},
		{name: "404 retryable", status: 404, retryable: true},
		{name: "408 retryable", status: 408, retryable: true},
		{name: "410 gone", status: 410, gone: true},
		{name: "410 gone even when not listed", status: 410, permanent: []int{}, gone: true},
		{name: "400 permanent", status: 400},
		{name: "413 permanent", status: 413},
		{name: "422 permanent", status: 422},
		{name: "400 retryable when not listed", status: 400, permanent: []int{}, retryable: true},
		{name: "404 permanent when listed", status: 404, permanent: []int{404}},
		{name: "422 retryable when list replaced", status: 422, permanent: []int{404}, retryable: true},
		{name: "429 seconds", status: 429, retryAfter: "120", retryable: true, minAfter: 120 * time.Second, maxAfter: 120 * time.Second},
		{name: "503 seconds", status: 503, retryAfter: "7", retryable: true, minAfter: 7 * time.Second, maxAfter: 7 * time.Second},
		{name: "503 http-date", status: 503, retryAfter: date, retryable: true, minAfter: 80 * time.Second, maxAfter: 91 * time.Second},
		{name: "429 invalid", status: 429, retryAfter: "soon", retryable: true},
		{name: "429 negative", status: 429, retryAfter: "-5", retryable: true},
		{name: "503 date in the past", status: 503, retryAfter: "Mon, 02 Jan 2006 15:04:05 GMT", retryable: true},
		{name: "500 ignores Retry-After", status: 500, retryAfter: "60", retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := tr.server(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "body of "+strconv.Itoa(tt.status))
			})
			ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, PermanentStatuses: tt.permanent})

			res, err := ep.Send(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)})
			if tt.wantOK {
				require.NoError(t, err)
				require.Equal(t, Result{Status: tt.status}, res, "a success says which 2xx")
				return
			}
			require.Zero(t, res)
			de := requireDeliveryError(t, err)
			require.Equal(t, tt.status, de.Status)
			require.Equal(t, "status "+strconv.Itoa(tt.status), de.Reason)
			require.Equal(t, de.Reason, de.Error())
			require.Equal(t, tt.retryable, de.Retryable)
			require.Equal(t, tt.gone, de.Gone)
			require.GreaterOrEqual(t, de.RetryAfter, tt.minAfter)
			require.LessOrEqual(t, de.RetryAfter, tt.maxAfter)
			require.Equal(t, "body of "+strconv.Itoa(tt.status), string(de.Response))
		})
	}
}

func testRedirectNotFollowedByDefault(t *testing.T, tr transport) {
	var followed atomic.Bool
	srv, _ := tr.server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/final" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL + "/307"})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)}))
	require.Equal(t, 307, de.Status)
	require.Equal(t, "redirect to "+srv.URL+"/final not followed", de.Reason)
	require.True(t, de.Retryable)
	require.False(t, followed.Load())
}

// A redirect the endpoint does not follow is named in the reason without
// the credentials or query values of its Location.
func testRedirectReasonRedacted(t *testing.T, tr transport) {
	srv, _ := tr.server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://user:s3cret@elsewhere.example/in?token=s3cret&v=2")
		w.WriteHeader(http.StatusFound)
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.Equal(t, "redirect to https://redacted@elsewhere.example/in?token=redacted&v=redacted not followed", de.Reason)
}

// The kept start of a failed answer is cut at a character boundary: a
// multi-byte character that straddles KeepResponseBytes is left out
// whole, never split.
func testResponseCutAtRune(t *testing.T, tr transport) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"2-byte split", "a" + strings.Repeat("é", 600), "a" + strings.Repeat("é", 511)},
		{"4-byte split", "ab" + strings.Repeat("🦀", 300), "ab" + strings.Repeat("🦀", 255)},
		{"4-byte at the cut", strings.Repeat("🦀", 300), strings.Repeat("🦀", 256)},
		{"exactly the limit", strings.Repeat("é", 512), strings.Repeat("é", 512)},
		{"shorter", "short é", "short é"},
	} {
		srv, _ := tr.server(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, tc.body)
		})
		ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Equal(t, tc.want, string(de.Response), tc.name)
		require.LessOrEqual(t, len(de.Response), KeepResponseBytesDefault)
	}
}

func testResponseLimitExact(t *testing.T, tr transport) {
	srv, _ := tr.server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write(make([]byte, 100))
	})
	ep := tr.endpoint(t, ClientConfig{MaxResponseBytes: 100, KeepResponseBytes: 10}, EndpointConfig{URL: srv.URL})

	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.NoError(t, de.Err, "a body of exactly MaxResponseBytes is not too large")
	require.Len(t, de.Response, 10)
}

// hugeBody writes 50 MB unless the client goes away first.
func hugeBody(status int, declareLength bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const size, chunk = 50 << 20, 64 << 10
		if declareLength {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		w.WriteHeader(status)
		buf := make([]byte, chunk)
		for i := range buf {
			buf[i] = 'z'
		}
		for range size / chunk {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}
}

// A body past MaxResponseBytes is not read on: a 2xx is still success, a
// failure keeps its status and says the body was too large.
func testHugeResponse(t *testing.T, tr transport) {
	for _, declared := range []bool{false, true} {
		name := "chunked"
		if declared {
			name = "content-length"
		}
		t.Run(name+" 2xx is success", func(t *testing.T) {
			t.Parallel()
			srv, _ := tr.server(t, hugeBody(http.StatusOK, declared))
			ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL})

			start := time.Now()
			require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
			require.Less(t, time.Since(start), 5*time.Second) // generous: CI machines are shared
		})
		t.Run(name+" 5xx is capped", func(t *testing.T) {
			t.Parallel()
			srv, _ := tr.server(t, hugeBody(http.StatusBadGateway, declared))
			ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL})

			start := time.Now()
			de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
			require.Less(t, time.Since(start), 5*time.Second) // generous: CI machines are shared
			require.Equal(t, 502, de.Status)
			require.Equal(t, "status 502", de.Reason)
			require.ErrorIs(t, de, ErrResponseTooLarge)
			require.Contains(t, de.Err.Error(), "response larger than 65536 bytes")
			if !declared {
				require.Len(t, de.Response, KeepResponseBytesDefault)
			}
		})
	}
}

// A chunked answer read to its end keeps the connection; one past
// MaxResponseBytes closes it.
func testResponseBodyAndReuse(t *testing.T, tr transport) {
	chunked, chunkedConns := tr.countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part one,")
		_ = http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "part two")
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: chunked.URL})
	for i := range 5 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 1, chunkedConns.Load())

	huge, hugeConns := tr.countingServer(t, hugeBody(http.StatusOK, false))
	ep = tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: huge.URL})
	for i := range 2 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 2, hugeConns.Load())
}

// A response head that never ends (one endless header line, or endless
// informational answers) fails the attempt as soon as it passes
// MaxResponseHeaderBytes: it is neither held in memory nor waited on until
// the timeout.
func testEndlessResponseHead(t *testing.T, tr transport) {
	for _, tc := range []struct{ name, head, repeat string }{
		{"one endless header line", "HTTP/1.1 200 OK\r\nX-Endless: ", "aaaaaaaaaaaaaaaa"},
		{"endless informational answers", "", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The server stops at 32 MiB, far past the cap, so that a
			// client without one waits for its timeout.
			const most = 32 << 20
			var written atomic.Int64
			gaveUp := make(chan struct{})
			srv := tr.rawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
				defer close(gaveUp)
				if _, _, err := readRequest(br); err != nil {
					return
				}
				if _, err := io.WriteString(c, tc.head); err != nil {
					return
				}
				chunk := []byte(strings.Repeat(tc.repeat, (4<<10)/len(tc.repeat)))
				for written.Load() < most {
					n, err := c.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
				_, _ = br.ReadByte() // until the client closes
			})
			ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url(), Timeout: 10 * time.Second})

			start := time.Now()
			de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
			require.Less(t, time.Since(start), 5*time.Second, "failed at the cap, not at the timeout")
			require.True(t, de.Retryable)
			require.Zero(t, de.Status)
			require.Contains(t, de.Reason, "exceeded "+strconv.Itoa(MaxResponseHeaderBytesDefault)+" bytes")
			<-gaveUp
			require.Less(t, written.Load(), int64(most), "the client stopped reading")
		})
	}
}

// Informational responses are skipped; Connection: close is honoured.
func testInformationalAndConnectionClose(t *testing.T, tr transport) {
	srv := tr.rawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
			"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		_, _ = br.ReadByte() // until the client closes
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url()})
	for i := range 3 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 3, srv.conns.Load())
}

// blockUntilDone blocks a handler until the client goes away or the test
// ends, so that no loop or goroutine outlives the test.
func blockUntilDone() (http.HandlerFunc, func()) {
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}, stop
}

func testTimeoutNoAnswer(t *testing.T, tr transport) {
	handler, stop := blockUntilDone()
	srv, _ := tr.server(t, handler)
	t.Cleanup(stop) // runs before srv.Close
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Timeout: 200 * time.Millisecond})

	start := time.Now()
	err := ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)})
	elapsed := time.Since(start)

	de := requireDeliveryError(t, err)
	require.Equal(t, "timeout after 200ms", de.Reason)
	require.Zero(t, de.Status)
	require.True(t, de.Retryable)
	require.Less(t, elapsed, 2*time.Second)
}

// The caller's deadline is told apart from the endpoint's timeout.
func testContextCanceled(t *testing.T, tr transport) {
	handler, stop := blockUntilDone()
	srv, _ := tr.server(t, handler)
	t.Cleanup(stop) // runs before srv.Close
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Timeout: 10 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := ep.Deliver(ctx, &Message{ID: "msg_1", Body: []byte(`{}`)})

	de := requireDeliveryError(t, err)
	require.True(t, strings.HasPrefix(de.Reason, "canceled: "), de.Reason)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, de.Retryable)
}

// trickle answers status, then one byte every 20ms until the client leaves
// (bounded to 500 bytes).
func trickle(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		for range 500 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// A body that trickles in is read no longer than the timeout.
func testSlowBody(t *testing.T, tr transport) {
	t.Run("2xx is success, bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		srv, _ := tr.server(t, trickle(http.StatusOK))
		ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Timeout: 300 * time.Millisecond})

		start := time.Now()
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Less(t, time.Since(start), 3*time.Second)
	})

	t.Run("5xx keeps the status, bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		srv, _ := tr.server(t, trickle(http.StatusInternalServerError))
		ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Timeout: 300 * time.Millisecond})

		start := time.Now()
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Less(t, time.Since(start), 3*time.Second)
		require.Equal(t, 500, de.Status)
		require.True(t, de.Retryable)
		require.NotEmpty(t, de.Response)
		require.Error(t, de.Err)
		require.Contains(t, de.Err.Error(), "timeout after 300ms")
	})
}

// A connection reset in the middle of a response body: the status counts
// (a 2xx is success, as the receiver has accepted the message; a failure
// keeps its status and what arrived of its body), and the next delivery
// goes out on a new connection.
func testResetMidResponse(t *testing.T, tr transport) {
	for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			srv := tr.rawServer(t, func(n int64, c net.Conn, br *bufio.Reader) {
				if _, _, err := readRequest(br); err != nil {
					return
				}
				if n > 1 {
					_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
					_, _ = br.ReadByte() // until the client closes
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(status)+" X\r\nContent-Length: 100\r\n\r\npartial")
				resetConn(t, c)
			})
			ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url()})

			err := ep.Deliver(context.Background(), &Message{ID: "msg_1"})
			if status == http.StatusOK {
				require.NoError(t, err)
			} else {
				de := requireDeliveryError(t, err)
				require.Equal(t, status, de.Status)
				require.Equal(t, "status 500", de.Reason)
				require.True(t, de.Retryable)
				require.Equal(t, "partial", string(de.Response))
				require.ErrorIs(t, de.Err, syscall.ECONNRESET, "the body's read error")
			}
			require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_2"}))
			require.EqualValues(t, 2, srv.conns.Load(), "the reset connection was not reused")
		})
	}
}

// A receiver that answers before reading the whole body and closes (413
// for a body too large, as proxies do) is heard: its status counts, not the
// write error the close causes.
func testAnswerBeforeBody(t *testing.T, tr transport) {
	srv := tr.rawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		// The scenario, not a wait: like a server's lingering close (net/http
		// lingers 500ms), it closes a moment after answering, while the
		// client is still writing its 32 MiB body.
		time.Sleep(50 * time.Millisecond)
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url()})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: bytes.Repeat([]byte("a"), 32<<20)}))
	require.Equal(t, http.StatusRequestEntityTooLarge, de.Status, de.Reason)
	require.False(t, de.Retryable)
	require.Equal(t, "too large", string(de.Response))
}

// A server that reads a request and closes without answering. On a new
// connection that is a failed attempt; on a kept-alive one the request goes
// out once more on a new connection, and only once.
func testClosedWithoutAnswer(t *testing.T, tr transport) {
	var reqs atomic.Int64
	srv := tr.rawServer(t, func(n int64, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		reqs.Add(1)
		if n == 2 {
			// The second connection answers once, then closes on the
			// next request.
			_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			if _, _, err := readRequest(br); err == nil {
				reqs.Add(1)
			}
		}
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.url()})

	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.Equal(t, "connection closed by server before a response", de.Reason)
	require.True(t, de.Retryable)
	require.EqualValues(t, 1, reqs.Load(), "a new connection is not retried")

	require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_2"}))
	de = requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_3"}))
	require.Equal(t, "connection closed by server before a response", de.Reason)
	require.EqualValues(t, 4, reqs.Load(), "msg_3 went out on the kept-alive connection and on one new one")
	require.EqualValues(t, 3, srv.conns.Load())
}

func testConnectionRefused(t *testing.T, tr transport) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: tr.scheme() + "://" + addr + "/"})

	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.Equal(t, "connection refused", de.Reason)
	require.Zero(t, de.Status)
	require.True(t, de.Retryable)
}

// Answers read to their end, successes and failures alike, keep the
// connection for the next delivery.
func testConnectionReuse(t *testing.T, tr transport) {
	var fail atomic.Bool
	srv, conns := tr.countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if fail.Load() {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: srv.URL, Secrets: []string{testSecret('r')}})

	for i := range 50 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{"n":1}`)}))
	}
	require.EqualValues(t, 1, conns.Load())

	fail.Store(true)
	for i := range 10 {
		requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_e" + strconv.Itoa(i), Body: []byte(`{}`)}))
	}
	require.EqualValues(t, 1, conns.Load())
}

// A failed attempt's wrapped error holds nothing of the URL's credentials
// or query either (http.Client wraps its errors in a *url.Error that quotes
// the URL, query included), for a caller that logs Err.
func testErrRedacted(t *testing.T, tr transport) {
	srv := tr.rawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		// Over TLS, after the handshake: the request, not the
		// handshake, fails.
		_, _ = br.Peek(1)
	}) // closes at once
	url := strings.Replace(srv.url(), "://", "://user:s3cret@", 1) + "/in?token=s3cret"
	ep := tr.endpoint(t, ClientConfig{}, EndpointConfig{URL: url})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.NotNil(t, de.Err)
	require.NotContains(t, fmt.Sprintf("%v %+v %v", de, de.Err, errors.Unwrap(de)), "s3cret")
}

// The address policy holds on every transport: a loopback receiver, named
// by its address or by a name that resolves to it, is refused unless
// allowed, and nothing reaches it.
func testAddressPolicy(t *testing.T, tr transport) {
	srv, reqs := tr.server(t, nil)
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	// example.com: a name the test servers' certificate holds.
	byName := tr.scheme() + "://" + net.JoinHostPort("example.com", port) + "/hook"
	resolver := staticResolver{"example.com": addrs("127.0.0.1")}
	for _, u := range []string{srv.URL, byName} {
		ep := tr.guardedEndpoint(t, ClientConfig{Resolver: resolver}, EndpointConfig{URL: u})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_refused"}))
		require.Equal(t, "refused: 127.0.0.1 is a loopback address (delivery.allow_private_networks is false)", de.Reason, u)
		require.True(t, de.Retryable)
		require.Zero(t, de.Status)
		var refused *AddressRefusedError
		require.ErrorAs(t, de, &refused)
	}
	require.Empty(t, reqs, "a refused delivery reached the server")

	ep := tr.guardedEndpoint(t, ClientConfig{Resolver: resolver, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")}},
		EndpointConfig{URL: byName})
	require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_allowed"}))
	require.Equal(t, "msg_allowed", (<-reqs).header.Get(HeaderID))
}
