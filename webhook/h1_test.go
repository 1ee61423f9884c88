package webhook

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawServer is a loopback TCP server whose every connection is handled by
// serve, for answers net/http's server would not give.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.conns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// newCountingServer starts an httptest server with handler h and counts the
// connections it accepts.
func newCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// readRequest reads one request and its body.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func TestH1_OnlyPlainHTTPWithoutRedirectsUnlessDisabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ccfg ClientConfig
		cfg  EndpointConfig
		want bool
	}{
		{ClientConfig{}, EndpointConfig{URL: "http://example.com/hook"}, true},
		{ClientConfig{}, EndpointConfig{URL: "https://example.com/hook"}, false},
		{ClientConfig{}, EndpointConfig{URL: "http://example.com/hook", FollowRedirects: true}, false},
		{ClientConfig{DisableLeanPool: true}, EndpointConfig{URL: "http://example.com/hook"}, false},
	} {
		ep := newEndpointWith(t, tc.ccfg, tc.cfg)
		require.Equal(t, tc.want, ep.h1 != nil, "%+v %+v", tc.ccfg, tc.cfg)
	}
}

// The bytes on the wire: one request line, each header once, the body as
// given, for a body sent behind the head and one large enough for writev.
func TestH1_Wire(t *testing.T) {
	t.Parallel()
	type seen struct {
		head string
		body []byte
	}
	got := make(chan seen, 2)
	srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for {
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
			if err != nil {
				return
			}
			body := make([]byte, req.ContentLength)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
			got <- seen{head.String(), body}
			_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		}
	})
	secret := testSecret('w')
	ep := newEndpoint(t, EndpointConfig{
		URL:     srv.url() + "/hooks?x=1",
		Secrets: []string{secret},
		Headers: map[string]string{"X-Static": "s", "Authorization": "Bearer t"},
	})

	for _, size := range []int{300, h1InlineBody + 1000} {
		body := bytes.Repeat([]byte("a"), size)
		msg := &Message{ID: "msg_w" + strconv.Itoa(size), Body: body, Headers: []Header{{Name: "x-static", Value: "override"}}}
		require.NoError(t, ep.Deliver(context.Background(), msg))
		s := <-got
		require.Equal(t, body, s.body)
		lines := strings.Split(strings.TrimSuffix(s.head, "\r\n\r\n"), "\r\n")
		require.Equal(t, "POST /hooks?x=1 HTTP/1.1", lines[0])
		require.ElementsMatch(t, []string{
			"Host: " + srv.ln.Addr().String(),
			"User-Agent: Herald/" + Version + " (+https://github.com/herald-relay/herald)",
			"Content-Type: application/json",
			"Authorization: Bearer t",
			"X-Static: override",
			"Webhook-Id: " + msg.ID,
			"Content-Length: " + strconv.Itoa(size),
		}, filterOut(lines[1:], "Webhook-Timestamp: ", "Webhook-Signature: "))
		require.Len(t, lines, 10, "the timestamp and signature headers, once each")
	}
	require.EqualValues(t, 1, srv.conns.Load(), "both requests on one kept-alive connection")
}

func filterOut(lines []string, prefixes ...string) []string {
	var out []string
next:
	for _, l := range lines {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// A server that closes a kept-alive connection while it is idle: the next
// delivery goes out again on a new connection, and succeeds.
func TestH1_StaleConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	var reqs atomic.Int64
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})

	for i := range 3 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
		// Closed when this returns; whether the close has reached the
		// client's socket before its next write or not, that write or the
		// read after it fails, and the delivery goes out on a new
		// connection.
		srv.CloseClientConnections()
	}
	require.EqualValues(t, 3, reqs.Load())
	require.EqualValues(t, 3, conns.Load())
}

// A server that reads a request and closes without answering. On a new
// connection that is a failed attempt; on a kept-alive one the request goes
// out once more on a new connection, and only once.
func TestH1_ClosedWithoutAnswer(t *testing.T) {
	t.Parallel()
	var reqs atomic.Int64
	srv := newRawServer(t, func(n int64, c net.Conn, br *bufio.Reader) {
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
	ep := newEndpoint(t, EndpointConfig{URL: srv.url()})

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

// Informational responses are skipped; Connection: close is honoured.
func TestH1_InformationalAndConnectionClose(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
			"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		_, _ = br.ReadByte() // until the client closes
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.url()})
	for i := range 3 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 3, srv.conns.Load())
}

// A chunked answer read to its end keeps the connection; one past
// MaxResponseBytes closes it.
func TestH1_ResponseBodyAndReuse(t *testing.T) {
	t.Parallel()
	chunked, chunkedConns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part one,")
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "part two")
	})
	ep := newEndpoint(t, EndpointConfig{URL: chunked.URL})
	for i := range 5 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 1, chunkedConns.Load())

	huge, hugeConns := newCountingServer(t, hugeBody(http.StatusOK, false))
	ep = newEndpoint(t, EndpointConfig{URL: huge.URL})
	for i := range 2 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i)}))
	}
	require.EqualValues(t, 2, hugeConns.Load())
}

// Many goroutines share the pool: with MaxConns at their number, no
// connection is opened twice; with fewer, no more than MaxConns stay idle.
func TestH1_ConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	for _, maxConns := range []int{8, 2} {
		srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		})
		ep := newEndpoint(t, EndpointConfig{URL: srv.URL, MaxConns: maxConns})

		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					err := ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(g*100+i), Body: []byte(`{"n":1}`)})
					require.NoError(t, err)
				}
			})
		}
		wg.Wait()
		ep.h1.mu.Lock()
		idle := len(ep.h1.idle)
		ep.h1.mu.Unlock()
		require.LessOrEqual(t, idle, maxConns)
		if maxConns == 8 {
			require.LessOrEqual(t, conns.Load(), int64(8), "a connection per goroutine at most")
		}
	}
}

// Credentials in the URL are sent as Basic auth, as http.Client does, on
// both paths; a configured Authorization header wins.
func TestDeliver_URLCredentials(t *testing.T) {
	t.Parallel()
	srv, reqs := newServer(t, nil)
	withCreds := strings.Replace(srv.URL, "http://", "http://hook:s3cret@", 1) + "/in"
	for _, cfg := range []EndpointConfig{
		{URL: withCreds},
		{URL: withCreds, FollowRedirects: true}, // net/http
		{URL: withCreds, Headers: map[string]string{"Authorization": "Bearer t"}},
	} {
		ep := newEndpoint(t, cfg)
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

// A receiver that answers before reading the whole body and closes (413
// for a body too large, as proxies do) is heard: its status counts, not the
// write error the close causes.
func TestH1_AnswerBeforeBody(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		// The scenario, not a wait: like a server's lingering close (net/http
		// lingers 500ms), it closes a moment after answering, while the
		// client is still writing its 32 MiB body.
		time.Sleep(50 * time.Millisecond)
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.url()})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: bytes.Repeat([]byte("a"), 32<<20)}))
	require.Equal(t, http.StatusRequestEntityTooLarge, de.Status, de.Reason)
	require.False(t, de.Retryable)
	require.Equal(t, "too large", string(de.Response))
}

// A response head that never ends (one endless header line, or endless
// informational answers) fails the attempt as soon as it passes
// MaxResponseHeaderBytes, on both transports: it is neither held in memory
// nor waited on until the timeout.
func TestDeliver_EndlessResponseHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, head, repeat string }{
		{"one endless header line", "HTTP/1.1 200 OK\r\nX-Endless: ", "aaaaaaaaaaaaaaaa"},
		{"endless informational answers", "", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"},
	} {
		for _, netHTTP := range []bool{false, true} {
			name := tc.name + " h1"
			if netHTTP {
				name = tc.name + " net/http"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				// The server stops at 32 MiB, far past the cap, so that
				// a client without one waits for its timeout.
				const most = 32 << 20
				var written atomic.Int64
				gaveUp := make(chan struct{})
				srv := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
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
				ep := newEndpoint(t, EndpointConfig{URL: srv.url(), Timeout: 10 * time.Second, FollowRedirects: netHTTP})
				require.Equal(t, !netHTTP, ep.h1 != nil)

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
}
