package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pair is one delivery owed: message id to endpoint name.
type pair struct{ endpoint, id string }

// recorder counts what the receivers of one scenario accepted (answered
// with a 2xx), per (endpoint, message id), and when.
type recorder struct {
	mu       sync.Mutex
	count    map[pair]int
	late     map[pair]bool       // answered 2xx after the relay's timeout
	firsts   []time.Time         // time of each first delivery
	firstAt  map[pair]time.Time  // time of each pair's first delivery
	order    map[string][]string // endpoint -> ids in first-delivery order
	requests atomic.Int64        // every request, answered or not
	hostile  map[string]int      // hostile answers by kind
}

func newRecorder() *recorder {
	return &recorder{count: map[pair]int{}, firstAt: map[pair]time.Time{}, late: map[pair]bool{}, order: map[string][]string{}, hostile: map[string]int{}}
}

// accept records a 2xx answered for p; late marks one given after the
// relay had given up on the request.
func (r *recorder) accept(p pair, late bool) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[p]++
	if late {
		r.late[p] = true
	}
	if r.count[p] == 1 {
		r.firsts = append(r.firsts, now)
		r.firstAt[p] = now
		r.order[p.endpoint] = append(r.order[p.endpoint], p.id)
	}
}

func (r *recorder) countHostile(kind string) {
	r.mu.Lock()
	r.hostile[kind]++
	r.mu.Unlock()
}

// delivered is how many 2xx answers p got.
func (r *recorder) delivered(p pair) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[p]
}

// hostileKinds are the answers a hostile endpoint gives instead of a 2xx.
var hostileKinds = []string{
	"binary-body", "non-utf8-body", "huge-body", "endless-body", "endless-header",
	"never-answer", "reset-mid-response", "2xx-after-timeout", "redirect", "slow-trickle",
}

// receiver is one endpoint's HTTP server on 127.0.0.1.
type receiver struct {
	name    string
	scheme  string // http or https
	rec     *recorder
	timeout time.Duration // the endpoint's timeout in herald's config
	ln      net.Listener
	srv     *http.Server

	hostilePermille atomic.Int32 // share of requests answered with a hostile answer
	downStatus      atomic.Int32 // when set, every request gets this status and is not accepted
	delay           atomic.Int64 // nanoseconds each accepted request takes
	rejectPrefix    atomic.Pointer[string]
	closed          chan struct{}

	mu       sync.Mutex
	hijacked map[net.Conn]struct{} // http.Server.Close does not close these
}

func startReceiver(name string, rec *recorder, timeout time.Duration) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return serveReceiver(name, rec, timeout, ln, "http"), nil
}

// startTLSReceiver is a receiver on https with a fresh self-signed
// certificate for 127.0.0.1, returned in PEM for herald's tls.ca_file.
func startTLSReceiver(name string, rec *recorder, timeout time.Duration) (*receiver, []byte, error) {
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, nil, err
	}
	return serveReceiver(name, rec, timeout, ln, "https"), caPEM, nil
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald-chaos"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func serveReceiver(name string, rec *recorder, timeout time.Duration, ln net.Listener, scheme string) *receiver {
	r := &receiver{scheme: scheme, name: name, rec: rec, timeout: timeout, ln: ln, closed: make(chan struct{}), hijacked: map[net.Conn]struct{}{}}
	empty := ""
	r.rejectPrefix.Store(&empty)
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 1 << 16}
	go func() { _ = r.srv.Serve(ln) }()
	return r
}

func (r *receiver) url() string { return r.scheme + "://" + r.ln.Addr().String() + "/hook" }

func (r *receiver) close() {
	close(r.closed)
	r.srv.Close()
	r.mu.Lock()
	for c := range r.hijacked {
		c.Close()
	}
	r.mu.Unlock()
}

// setReject makes the endpoint answer 400 (a permanent status by default)
// to ids with this prefix; "" stops it.
func (r *receiver) setReject(prefix string) { r.rejectPrefix.Store(&prefix) }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	r.rec.requests.Add(1)
	id := req.Header.Get("Webhook-Id")
	if req.URL.Path != "/hook" {
		http.Error(w, "moved away", http.StatusNotFound)
		return
	}
	if s := r.downStatus.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	if p := *r.rejectPrefix.Load(); p != "" && strings.HasPrefix(id, p) {
		http.Error(w, "rejected by the chaos suite", http.StatusBadRequest)
		return
	}
	if pm := r.hostilePermille.Load(); pm > 0 && rand.Int32N(1000) < pm {
		kind := hostileKinds[rand.IntN(len(hostileKinds))]
		r.rec.countHostile(kind)
		r.hostile(kind, w, req, pair{r.name, id})
		return
	}
	if d := time.Duration(r.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	r.rec.accept(pair{r.name, id}, false)
	w.WriteHeader(http.StatusNoContent)
}

// Bounds of the hostile answers, so that none outlives a scenario.
const (
	hostileMaxBytes = 64 << 20
	hostileMaxTime  = 30 * time.Second
)

// hostile gives one hostile answer. Every kind is a failed attempt for the
// relay, except 2xx-after-timeout, which the receiver did accept (so the
// relay's retry is a duplicate, counted apart).
func (r *receiver) hostile(kind string, w http.ResponseWriter, req *http.Request, p pair) {
	switch kind {
	case "binary-body":
		b := make([]byte, 2048)
		_, _ = crand.Read(b)
		b[0], b[100], b[1023] = 0, 0xff, 0
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(b)
	case "non-utf8-body":
		// Latin-1 bytes, and a two-byte character across the 1 KiB mark.
		body := "\xe9chec \xff\xfe " + strings.Repeat("a", 1023-len("\xe9chec \xff\xfe ")) + "é" + "\x00 tail"
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, body)
	case "huge-body":
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("huge ", 8192))
		for n := 0; n < 8<<20; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case "endless-body":
		w.WriteHeader(http.StatusServiceUnavailable)
		r.stream(w, []byte(strings.Repeat("endless ", 512)))
	case "endless-header":
		r.hijack(w, func(c net.Conn, bw *bufio.ReadWriter) {
			_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nX-Endless: ")
			chunk := []byte(strings.Repeat("a", 4096))
			r.streamConn(c, bw, chunk)
		})
	case "never-answer":
		r.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) {
			_ = c.SetReadDeadline(time.Now().Add(hostileMaxTime))
			_, _ = io.Copy(io.Discard, c) // until the relay gives up and closes
		})
	case "reset-mid-response":
		r.hijack(w, func(c net.Conn, bw *bufio.ReadWriter) {
			_, _ = bw.WriteString("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1000\r\n\r\npartial")
			_ = bw.Flush()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		})
	case "2xx-after-timeout":
		select {
		case <-time.After(r.timeout + 300*time.Millisecond):
		case <-r.closed:
			return
		}
		r.rec.accept(p, true)
		w.WriteHeader(http.StatusOK)
	case "redirect":
		http.Redirect(w, req, "/moved", http.StatusTemporaryRedirect)
	case "slow-trickle":
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusServiceUnavailable)
		deadline := time.Now().Add(r.timeout + time.Second)
		for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
			if _, err := w.Write([]byte{'.'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stream writes chunk until the client goes away or the bounds are hit.
func (r *receiver) stream(w http.ResponseWriter, chunk []byte) {
	deadline := time.Now().Add(hostileMaxTime)
	for n := 0; n < hostileMaxBytes && time.Now().Before(deadline); n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

func (r *receiver) streamConn(c net.Conn, bw *bufio.ReadWriter, chunk []byte) {
	_ = c.SetWriteDeadline(time.Now().Add(hostileMaxTime))
	for n := 0; n < hostileMaxBytes; n += len(chunk) {
		if _, err := bw.Write(chunk); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

func (r *receiver) hijack(w http.ResponseWriter, f func(net.Conn, *bufio.ReadWriter)) {
	c, bw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	r.mu.Lock()
	r.hijacked[c] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.hijacked, c)
		r.mu.Unlock()
		c.Close()
	}()
	f(c, bw)
}
