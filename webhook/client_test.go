package webhook

import (
	"bufio"
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

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
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

// newServer starts an httptest server that records requests and answers
// with handler (or 204 when handler is nil).
func newServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	reqs := make(chan received, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(srv.Close)
	return srv, reqs
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

func TestDeliver_Request(t *testing.T) {
	t.Parallel()
	srv, reqs := newServer(t, nil)
	secret := testSecret('a')
	ep := newEndpoint(t, EndpointConfig{
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

func TestDeliver_SecretRotation(t *testing.T) {
	t.Parallel()
	srv, reqs := newServer(t, nil)
	newSecret, oldSecret := testSecret('n'), testSecret('o')
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Secrets: []string{newSecret, oldSecret}})

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

func TestDeliver_NoSecretNoSignature(t *testing.T) {
	t.Parallel()
	srv, reqs := newServer(t, nil)
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})

	require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))

	r := <-reqs
	require.Empty(t, r.body)
	require.Empty(t, r.header.Values(HeaderSignature))
	require.Equal(t, "msg_1", r.header.Get(HeaderID))
}

func TestDeliver_Status(t *testing.T) {
	t.Parallel()
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
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "body of "+strconv.Itoa(tt.status))
			})
			ep := newEndpoint(t, EndpointConfig{URL: srv.URL, PermanentStatuses: tt.permanent})

			err := ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)})
			if tt.wantOK {
				require.NoError(t, err)
				return
			}
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

// blockUntilDone blocks a handler until the client goes away or the test
// ends, so that no loop or goroutine outlives the test.
func blockUntilDone(t *testing.T) (http.HandlerFunc, func()) {
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

func TestDeliver_TimeoutNoAnswer(t *testing.T) {
	t.Parallel()
	handler, stop := blockUntilDone(t)
	srv, _ := newServer(t, handler)
	t.Cleanup(stop) // runs before srv.Close
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Timeout: 200 * time.Millisecond})

	start := time.Now()
	err := ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)})
	elapsed := time.Since(start)

	de := requireDeliveryError(t, err)
	require.Equal(t, "timeout after 200ms", de.Reason)
	require.Zero(t, de.Status)
	require.True(t, de.Retryable)
	require.Less(t, elapsed, 2*time.Second)
}

func TestDeliver_ContextCanceled(t *testing.T) {
	t.Parallel()
	handler, stop := blockUntilDone(t)
	srv, _ := newServer(t, handler)
	t.Cleanup(stop)
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Timeout: 10 * time.Second})

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

func TestDeliver_SlowBody(t *testing.T) {
	t.Parallel()

	t.Run("2xx is success, bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		srv, _ := newServer(t, trickle(http.StatusOK))
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Timeout: 300 * time.Millisecond})

		start := time.Now()
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Less(t, time.Since(start), 3*time.Second)
	})

	t.Run("5xx keeps the status, bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		srv, _ := newServer(t, trickle(http.StatusInternalServerError))
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Timeout: 300 * time.Millisecond})

		start := time.Now()
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Less(t, time.Since(start), 3*time.Second)
		require.Equal(t, 500, de.Status)
		require.True(t, de.Retryable)
		require.NotEmpty(t, de.Response)
		require.ErrorContains(t, de, "") // Err is set
		require.Contains(t, de.Err.Error(), "timeout after 300ms")
	})
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

func TestDeliver_HugeResponse(t *testing.T) {
	t.Parallel()
	for _, declared := range []bool{false, true} {
		name := "chunked"
		if declared {
			name = "content-length"
		}
		t.Run(name+" 2xx is success", func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, hugeBody(http.StatusOK, declared))
			ep := newEndpoint(t, EndpointConfig{URL: srv.URL})

			start := time.Now()
			require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
			require.Less(t, time.Since(start), 5*time.Second) // generous: CI machines are shared
		})
		t.Run(name+" 5xx is capped", func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, hugeBody(http.StatusBadGateway, declared))
			ep := newEndpoint(t, EndpointConfig{URL: srv.URL})

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

func TestDeliver_ResponseLimitExact(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write(make([]byte, 100))
	})
	ep := newEndpointWith(t, ClientConfig{AllowPrivateNetworks: true, MaxResponseBytes: 100, KeepResponseBytes: 10},
		EndpointConfig{URL: srv.URL})

	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.NoError(t, de.Err, "a body of exactly MaxResponseBytes is not too large")
	require.Len(t, de.Response, 10)
}

func TestDeliver_Redirect(t *testing.T) {
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

	t.Run("not followed by default", func(t *testing.T) {
		t.Parallel()
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL + "/307"})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)}))
		require.Equal(t, 307, de.Status)
		require.Equal(t, "redirect to "+srv.URL+"/final not followed", de.Reason)
		require.True(t, de.Retryable)
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

func TestDeliver_ConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ep := newEndpoint(t, EndpointConfig{URL: "http://" + addr + "/"})

	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.Equal(t, "connection refused", de.Reason)
	require.Zero(t, de.Status)
	require.True(t, de.Retryable)
}

func TestDeliver_ConnectionReuse(t *testing.T) {
	t.Parallel()
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, Secrets: []string{testSecret('r')}})

	for i := range 50 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{"n":1}`)}))
	}
	require.EqualValues(t, 1, conns.Load())

	// Error responses are drained too and keep the connection.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	})
	for i := range 10 {
		requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_e" + strconv.Itoa(i), Body: []byte(`{}`)}))
	}
	require.EqualValues(t, 1, conns.Load())
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

	ep := newEndpoint(t, EndpointConfig{URL: srv.URL, TLS: TLSConfig{CAFile: caFile, MinVersion: "1.3"}})
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

// A message Herald must not send (an id or a header that would inject
// headers, smuggle a request, or break the Standard Webhooks id rule) fails
// before any byte goes out, with one non-retryable error naming the problem,
// on both transports.
func TestDeliver_InvalidMessage(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, err := br.ReadByte(); err == nil {
			got.Add(1)
		}
	})
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
		for _, netHTTP := range []bool{false, true} {
			ep := newEndpoint(t, EndpointConfig{URL: srv.url(), FollowRedirects: netHTTP})
			require.Equal(t, !netHTTP, ep.h1 != nil)
			de := requireDeliveryError(t, ep.Deliver(context.Background(), &tc.msg))
			assert.Equal(t, tc.reason, de.Reason, "%s (net/http: %v)", tc.name, netHTTP)
			assert.False(t, de.Retryable, "%s (net/http: %v)", tc.name, netHTTP)
		}
	}
	// Every character the rule allows, and the longest id, go out.
	srv2, reqs := newServer(t, nil)
	for _, netHTTP := range []bool{false, true} {
		ep := newEndpoint(t, EndpointConfig{URL: srv2.URL, FollowRedirects: netHTTP})
		for _, id := range []string{
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:~+=/-",
			strings.Repeat("a", 255),
		} {
			require.NoError(t, ep.Deliver(context.Background(), &Message{ID: id}))
			require.Equal(t, id, (<-reqs).header.Get(HeaderID))
		}
	}
	require.Zero(t, got.Load(), "no invalid message reached the server")
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

// The kept start of a failed answer is cut at a character boundary: a
// multi-byte character that straddles KeepResponseBytes is left out
// whole, never split.
func TestDeliver_ResponseCutAtRune(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"2-byte split", "a" + strings.Repeat("é", 600), "a" + strings.Repeat("é", 511)},
		{"4-byte split", "ab" + strings.Repeat("🦀", 300), "ab" + strings.Repeat("🦀", 255)},
		{"4-byte at the cut", strings.Repeat("🦀", 300), strings.Repeat("🦀", 256)},
		{"exactly the limit", strings.Repeat("é", 512), strings.Repeat("é", 512)},
		{"shorter", "short é", "short é"},
	} {
		for _, netHTTP := range []bool{false, true} {
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, tc.body)
			})
			ep := newEndpoint(t, EndpointConfig{URL: srv.URL, FollowRedirects: netHTTP})
			de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
			require.Equal(t, tc.want, string(de.Response), "%s (net/http: %v)", tc.name, netHTTP)
			require.LessOrEqual(t, len(de.Response), KeepResponseBytesDefault)
		}
	}
}
