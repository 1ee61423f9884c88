// Package faultproxy is a TCP fault proxy for tests and the chaos suite:
// latency, connections cut, and a black hole that partitions a client from
// its server while both ends stay up.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP fault proxy on 127.0.0.1: it forwards to target and, on
// demand, delays every chunk (latency), cuts every open connection (drop),
// or stops moving bytes and answering new connections (black hole) until
// the hole is closed again, as a dead switch or a firewall would.
type Proxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // nanoseconds added before each forwarded chunk
	hole    atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool // true for the client's side
	wg    sync.WaitGroup
	done  chan struct{}
}

// holdPoll is how often a connection in a black hole looks whether the hole
// is closed; maxHold bounds the hold so that no goroutine outlives a run.
const (
	holdPoll = 10 * time.Millisecond
	maxHold  = 5 * time.Minute
)

func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }
func (p *Proxy) SetBlackHole(on bool)       { p.hole.Store(on) }

// Drop cuts every open connection and returns how many clients it cut;
// new connections are accepted as before.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c, client := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as a dying middlebox sends
		}
		c.Close()
		if client {
			n++
		}
	}
	clear(p.conns)
	return n
}

func (p *Proxy) Close() {
	close(p.done)
	p.ln.Close()
	p.Drop()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn, client bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		c.Close()
		return false
	default:
	}
	p.conns[c] = client
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// wait holds while the black hole is open; false when the proxy closes or
// the hold has lasted maxHold.
func (p *Proxy) wait() bool {
	deadline := time.Now().Add(maxHold)
	for p.hole.Load() {
		select {
		case <-p.done:
			return false
		case <-time.After(holdPoll):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	// A connection made into the black hole is accepted by the kernel and
	// then hears nothing until the hole closes.
	if !p.wait() {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(server, false) {
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client); server.Close() }()
	go func() { defer wg.Done(); p.pipe(client, server); client.Close() }()
	wg.Wait()
}

// pipe copies src to dst chunk by chunk, delaying and holding each chunk as
// the proxy's faults say.
func (p *Proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
