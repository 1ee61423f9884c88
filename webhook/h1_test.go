package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
	ln     net.Listener
	scheme string
	conns  atomic.Int64
	wg     sync.WaitGroup
}

// newRawServer starts a plain-http rawServer.
func newRawServer(t *testing.T, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	return startRawServer(t, nil, serve)
}

// startRawServer starts a rawServer, over TLS when tlsCfg is set.
func startRawServer(t *testing.T, tlsCfg *tls.Config, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln, scheme: "http"}
	if tlsCfg != nil {
		s.ln, s.scheme = tls.NewListener(ln, tlsCfg), "https"
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
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
		s.ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return s.scheme + "://" + s.ln.Addr().String() }

// newCountingServer starts a plain-http server with handler h and counts
// the connections it accepts.
func newCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return transport{}.countingServer(t, h)
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

// A cold endpoint given ten requests at once by a fast receiver: while the
// first connection is being dialled the others wait for it or for a
// connection to come back, instead of each dialling its own (the
// 5,000-endpoint drain paid a dial and an accept per message). Dials are
// slowed to what a nearby host takes, so that all ten are waiting before
// the first connection is up, and the requests' patience is made longer
// than the test: on a loaded machine a connection can take longer than
// h1DialPatience to come back, and the waiting requests then rightly dial
// (TestH1_StuckDialDoesNotHoldUpOtherRequests covers that).
func TestH1_ColdEndpointBurstOpensFewConnections(t *testing.T) {
	t.Parallel()
	srv, conns := newCountingServer(t, answerNoContent)
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})
	ep.h1.patience = time.Minute
	dial := ep.h1.dial
	ep.h1.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		time.Sleep(10 * time.Millisecond) // latency, not synchronisation
		return dial(ctx, network, addr)
	}

	const n = 10
	deliverAtOnce(t, ep, n)
	require.LessOrEqual(t, conns.Load(), int64(4), "connections opened for %d requests at once", n)
}

// A slow receiver answers none of ten requests until all ten have arrived:
// waiting requests must still get connections of their own, quickly.
func TestH1_SlowReceiverGetsAConnectionPerWaitingRequest(t *testing.T) {
	t.Parallel()
	const n = 10
	var arrived atomic.Int64
	all := make(chan struct{})
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			w.WriteHeader(http.StatusNoContent)
		case <-time.After(5 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})

	began := time.Now()
	deliverAtOnce(t, ep, n)
	require.EqualValues(t, n, conns.Load())
	require.Less(t, time.Since(began), 2*time.Second, "the connections were opened while requests waited")
}

// A dial that hangs (a lost SYN, a slow resolver) holds up the requests
// waiting behind it only for their patience: then they dial their own.
func TestH1_StuckDialDoesNotHoldUpOtherRequests(t *testing.T) {
	t.Parallel()
	srv, conns := newCountingServer(t, answerNoContent)
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})
	ep.h1.patience = 50 * time.Millisecond
	dial := ep.h1.dial
	stuck, release := make(chan struct{}), make(chan struct{})
	var dials atomic.Int64
	ep.h1.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			close(stuck)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return dial(ctx, network, addr)
	}

	first := make(chan error, 1)
	go func() { first <- ep.Deliver(context.Background(), &Message{ID: "msg_first", Body: []byte(`{}`)}) }()
	<-stuck
	deliverAtOnce(t, ep, 5) // with the first dial still stuck
	close(release)
	require.NoError(t, <-first)
	require.GreaterOrEqual(t, conns.Load(), int64(2))
}

// deliverAtOnce delivers n messages to ep from n goroutines released
// together, and waits for them.
func deliverAtOnce(t *testing.T, ep *Endpoint, n int) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{}`)}))
		})
	}
	close(start)
	wg.Wait()
}

// answerNoContent reads the request's body and answers 204 at once.
func answerNoContent(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// An idle connection holds no buffers: its read buffer goes back to a pool
// shared by every endpoint until it carries a request again (and the
// request's scratch is the pool's only for the write). A relay serving 5,000 endpoints keeps a connection to each, idle
// almost all the time, and each held 4 KiB of read buffer and its last
// request's bytes (times GOGC in the relay's RSS). The connection still
// carries the next request, and a response's bytes are never shared.
func TestH1_IdleConnectionHoldsNoBuffers(t *testing.T) {
	t.Parallel()
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, r.Header.Get("webhook-id"))
	})
	ep := newEndpoint(t, EndpointConfig{URL: srv.URL})
	for i := range 3 {
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{"n":1}`)}))
		ep.h1.mu.Lock()
		require.Len(t, ep.h1.idle, 1)
		c := ep.h1.idle[0]
		ep.h1.mu.Unlock()
		require.True(t, c.br == nil, "an idle connection holds its read buffer")
	}
	require.EqualValues(t, 1, conns.Load(), "one connection, reused")
}
