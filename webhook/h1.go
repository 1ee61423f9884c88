package webhook

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// h1Pool sends requests to a plain-http endpoint over keep-alive HTTP/1.1
// connections that the calling goroutine drives itself: one write of the
// whole request, then http.ReadResponse on the same goroutine.
//
// net/http's Transport hands every request to two goroutines per connection
// (a write loop and a read loop) and back; on a relay that sends thousands of
// small requests a second that hand-off, not the bytes, is most of the
// client's CPU, so this pool skips it. HTTPS endpoints, proxies and
// redirect following stay with net/http, which does them well (HTTP/2
// included).
type h1Pool struct {
	addr    string // host:port dialled
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle int
	// patience is h1DialPatience; tests change it.
	patience time.Duration

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
	// dialing is the number of dials in progress, and waiting the requests
	// that found no idle connection while one was (oldest first). See get.
	dialing int
	waiting []*h1Waiter
}

// h1Waiter is a request waiting in get. Its channel (buffered, written
// once, under the pool's lock, by whoever removes it from waiting) brings
// a connection, or nil: dial one yourself (the pool counted the dial).
type h1Waiter struct{ ch chan *h1Conn }

// h1Conn is one connection. Its read buffer is taken from h1Readers for a
// request and given back when it goes idle: a relay keeps a connection to
// each of thousands of endpoints, idle almost all the time.
type h1Conn struct {
	nc net.Conn
	br *bufio.Reader // reads through the h1Conn, see Read; nil while idle
	// headLeft is how many more bytes br may take from nc while a response
	// head is read (see readHead); the limit is off while it is negative.
	headLeft int64
	lastUsed time.Time
}

// h1Readers and h1Scratch are the read buffers and the request scratch
// (the head, and a small body behind it) of the connections in use, shared
// by every endpoint.
var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1ReadBuffer) }}
	h1Scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// reader returns the connection's read buffer, taking one from h1Readers
// if it has none.
func (c *h1Conn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = h1Readers.Get().(*bufio.Reader)
		c.br.Reset(c)
	}
	return c.br
}

// release gives the read buffer back. It reports false when the buffer
// holds bytes no request asked for: the connection cannot carry another.
func (c *h1Conn) release() bool {
	if c.br == nil {
		return true
	}
	clean := c.br.Buffered() == 0
	c.br.Reset(nil)
	h1Readers.Put(c.br)
	c.br = nil
	return clean
}

// close closes the connection and gives its read buffer back.
func (c *h1Conn) close() {
	c.release()
	c.nc.Close()
}

// errHeadTooLarge is how a read past the limit on a response head fails.
var errHeadTooLarge = errors.New("response head too large")

// Read reads from the connection, at most headLeft bytes while the limit
// is on, as net/http's persistConn does: http.ReadResponse itself would
// keep reading an endless header line into memory.
func (c *h1Conn) Read(p []byte) (int, error) {
	if c.headLeft < 0 {
		return c.nc.Read(p)
	}
	if c.headLeft == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > c.headLeft {
		p = p[:c.headLeft]
	}
	n, err := c.nc.Read(p)
	c.headLeft -= int64(n)
	return n, err
}

const (
	// h1IdleTimeout drops a connection idle for longer, as net/http's
	// IdleConnTimeout does: servers close theirs sooner or later.
	h1IdleTimeout = 90 * time.Second
	// h1InlineBody is the largest body copied behind the head so that the
	// request goes out in one write; larger bodies are written with writev.
	h1InlineBody = 16 << 10
	// h1ReadBuffer is the size of each connection's read buffer.
	h1ReadBuffer = 4 << 10
	// h1DialPatience is how long a request that found no idle connection
	// waits for one (or for the dial in progress) before it dials its own.
	// A fast receiver hands a connection back well within it, so a burst
	// to a cold endpoint shares the first few connections instead of
	// opening one per request; a slow one does not, and its waiting
	// requests then dial together, so its connections grow within a few
	// milliseconds to what it needs.
	h1DialPatience = 20 * time.Millisecond
)

// aLongTimeAgo is a deadline in the past: it interrupts a blocked read or
// write at once.
var aLongTimeAgo = time.Unix(1, 0)

// get returns an idle connection (reused = true) or a new one.
//
// A new connection is dialled only when none is idle and no dial is in
// progress, or when the request has waited h1DialPatience: until then it
// waits for a connection to come back (put hands it over) or for its turn
// to dial, which a finished dial passes on while requests wait. So a cold
// endpoint given many requests at once opens connections one at a time,
// as fast as they can be dialled, while requests queue, rather than one
// per request (each a dial here and an accept at the receiver).
func (p *h1Pool) get(ctx context.Context, now time.Time) (c *h1Conn, reused bool, err error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		c = p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.lastUsed) < h1IdleTimeout {
			p.mu.Unlock()
			return c, true, nil
		}
		c.nc.Close()
	}
	if p.dialing == 0 {
		p.dialing++
		p.mu.Unlock()
		c, err = p.dialCounted(ctx)
		return c, false, err
	}
	w := &h1Waiter{ch: make(chan *h1Conn, 1)}
	p.waiting = append(p.waiting, w)
	p.mu.Unlock()

	patience := time.NewTimer(p.patience)
	defer patience.Stop()
	select {
	case c = <-w.ch:
		return p.granted(ctx, c)
	case <-patience.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	if i := slices.Index(p.waiting, w); i >= 0 {
		p.waiting = slices.Delete(p.waiting, i, i+1)
		if err := ctx.Err(); err != nil {
			p.mu.Unlock()
			return nil, false, err
		}
		p.dialing++
		p.mu.Unlock()
		c, err = p.dialCounted(ctx)
		return c, false, err
	}
	p.mu.Unlock()
	// Handed something just before it left the queue.
	return p.granted(ctx, <-w.ch)
}

// granted takes what a waiter was handed: a connection, or nil, the turn
// to dial. A request whose context has ended passes either on.
func (p *h1Pool) granted(ctx context.Context, c *h1Conn) (*h1Conn, bool, error) {
	if err := ctx.Err(); err != nil {
		if c != nil {
			p.put(c, c.lastUsed)
		} else {
			p.dialDone()
		}
		return nil, false, err
	}
	if c != nil {
		return c, true, nil
	}
	c, err := p.dialCounted(ctx)
	return c, false, err
}

// dialCounted dials a connection the pool has counted in dialing.
func (p *h1Pool) dialCounted(ctx context.Context) (*h1Conn, error) {
	c, err := p.dialConn(ctx)
	p.dialDone()
	return c, err
}

// dialDone ends a counted dial, successful or not: if requests still wait,
// the oldest dials next. A failed dial passes the turn on too, so each
// waiting request makes its own attempt (and gets its own error), one
// after another or at the end of its patience.
func (p *h1Pool) dialDone() {
	p.mu.Lock()
	p.dialing--
	if len(p.waiting) > 0 {
		w := p.waiting[0]
		p.waiting = slices.Delete(p.waiting, 0, 1)
		p.dialing++
		w.ch <- nil
	}
	p.mu.Unlock()
}

func (p *h1Pool) dialConn(ctx context.Context) (*h1Conn, error) {
	nc, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &h1Conn{nc: nc, headLeft: -1}, nil
}

// put returns a connection whose last exchange ended cleanly.
func (p *h1Pool) put(c *h1Conn, now time.Time) {
	if !c.release() {
		c.nc.Close()
		return
	}
	c.lastUsed = now
	p.mu.Lock()
	if len(p.waiting) > 0 {
		// The oldest waiting request takes it.
		w := p.waiting[0]
		p.waiting = slices.Delete(p.waiting, 0, 1)
		w.ch <- c
		c = nil
	} else if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// closeIdle closes the idle connections; those in use are closed or
// returned when their exchange ends.
func (p *h1Pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// deliverH1 makes the attempt of Send on the endpoint's h1Pool. stamp
// holds the timestamp (its first tsLen bytes) and then the signatures.
func (e *Endpoint) deliverH1(parent context.Context, id string, body []byte, headers []Header, stamp string, tsLen int) (Result, error) {
	now := time.Now()
	// The connection's own deadline is the attempt's; the parent's
	// deadline or cancellation reaches it through bind, so that an error
	// can tell the two apart.
	deadline := now.Add(e.timeout)
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()

	c, reused, err := e.h1.get(ctx, now)
	if err != nil {
		return Result{}, e.transportError(parent, ctx, err)
	}
	for {
		stop, err := c.bind(ctx, deadline)
		var resp *http.Response
		if err == nil {
			resp, err = e.exchange(c, id, body, headers, stamp, tsLen)
		}
		if err == nil {
			res, clean, err := e.response(ctx, resp)
			// A connection whose deadline the context moved is unusable.
			if stop() && clean && !resp.Close {
				e.h1.put(c, time.Now())
			} else {
				c.close()
			}
			return res, err
		}
		stop()
		c.close()
		// A kept-alive connection the server closed while it was idle
		// fails before any answer: send again, once, on a new connection,
		// as net/http does for requests marked replayable. The receiver
		// may have seen the first request only if it closed the connection
		// after reading it without answering; webhook-id lets it
		// deduplicate.
		if !reused || !staleConn(err) || ctx.Err() != nil {
			return Result{}, e.transportError(parent, ctx, err)
		}
		if c, err = e.h1.dialConn(ctx); err != nil {
			return Result{}, e.transportError(parent, ctx, err)
		}
		reused = false
	}
}

// bind sets the connection's deadline and makes the end of ctx interrupt
// its reads and writes. stop undoes the link and reports whether it did so
// before ctx ended.
func (c *h1Conn) bind(ctx context.Context, deadline time.Time) (stop func() bool, err error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return func() bool { return false }, err
	}
	return context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) }), nil
}

// exchange writes the request on c and reads the response head.
func (e *Endpoint) exchange(c *h1Conn, id string, body []byte, headers []Header, stamp string, tsLen int) (*http.Response, error) {
	scratch := h1Scratch.Get().(*[]byte)
	req := e.appendRequestHead((*scratch)[:0], id, len(body), headers, stamp, tsLen)
	var err error
	if len(body) <= h1InlineBody {
		req = append(req, body...)
		_, err = c.nc.Write(req)
	} else {
		bufs := net.Buffers{req, body}
		_, err = bufs.WriteTo(c.nc)
	}
	if cap(req) <= 2*h1InlineBody {
		*scratch = req
		h1Scratch.Put(scratch)
	}
	if err != nil {
		// A receiver may answer before it has read the whole body and
		// close (413 for a body too large): its answer is the outcome, as
		// net/http has it, not the write error the close caused.
		if resp, rerr := e.readHead(c); rerr == nil {
			resp.Close = true
			return resp, nil
		}
		return nil, err
	}
	return e.readHead(c)
}

// readHead reads the response head, skipping informational ones, reading
// at most maxHead bytes for all of them.
func (e *Endpoint) readHead(c *h1Conn) (*http.Response, error) {
	c.headLeft = e.maxHead
	defer func() { c.headLeft = -1 }()
	// Wait for the first byte apart: a connection closed before it (io.EOF
	// here; ReadResponse would say io.ErrUnexpectedEOF) is one the server
	// had given up, and the request may go out again.
	br := c.reader()
	if _, err := br.Peek(1); err != nil {
		return nil, err
	}
	for {
		// The template only tells ReadResponse the method and resolves
		// a relative Location; it is not modified.
		resp, err := http.ReadResponse(br, e.template)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			resp.Body.Close()
			return nil, errors.New("server switched protocols")
		case resp.StatusCode >= 100 && resp.StatusCode <= 199:
			continue // informational (100 Continue, 103 Early Hints): the answer follows
		}
		return resp, nil
	}
}

// staleConn reports whether err is how a write to, or a read from, a
// connection the server has already closed fails.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// appendRequestHead appends the request line and the headers: fixed ones
// first, then the endpoint's (unless the message sets the same name), the
// message's and the Standard Webhooks ones.
func (e *Endpoint) appendRequestHead(b []byte, id string, bodyLen int, headers []Header, stamp string, tsLen int) []byte {
	b = append(b, e.h1Head...)
	for _, sh := range e.h1Static {
		if !overridden(sh.key, headers) {
			b = append(b, sh.line...)
		}
	}
	for _, mh := range headers {
		b = appendHeader(b, mh.Name, mh.Value)
	}
	b = appendHeader(b, canonicalID, id)
	b = appendHeader(b, canonicalTimestamp, stamp[:tsLen])
	if len(stamp) > tsLen {
		b = appendHeader(b, canonicalSignature, stamp[tsLen:])
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(bodyLen), 10)
	return append(b, "\r\n\r\n"...)
}

func appendHeader(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// overridden reports whether the message sets the endpoint header name
// itself. Both are canonical.
func overridden(name string, hs []Header) bool {
	for _, h := range hs {
		if h.Name == name {
			return true
		}
	}
	return false
}

// h1StaticHeader is an endpoint header rendered once, as a line.
type h1StaticHeader struct {
	key  string
	line []byte
}
