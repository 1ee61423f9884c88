package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The receiver runs as its own process (herald-bench re-executes itself with
// HERALD_BENCH_CHILD=receiver) so that its CPU is measured apart from the
// bench and the relay. POST /hook answers 200 at once, counting requests and
// unique webhook-ids and recording when each id first and last arrived; GET
// /stats, POST /reset and GET /times (id -> first receipt, or with
// last=1 last receipt, Unix ns) serve the bench.
// It does not verify signatures: that is the receiving service's cost, not
// the relay's, and the peers' receiver does not either.

const recvShards = 64

type recvShard struct {
	mu sync.Mutex
	m  map[string]receipts
}

// receipts are when an id first and last arrived: a message delivered again
// after its relay died arrives last when it was taken over.
type receipts struct{ first, last int64 }

type receiver struct {
	total, unique atomic.Int64
	conns         atomic.Int64 // connections accepted since the last reset
	seed          maphash.Seed
	shards        [recvShards]recvShard
	bufs          sync.Pool
}

func newReceiver() *receiver {
	r := &receiver{seed: maphash.MakeSeed(), bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	r.reset()
	return r
}

func (r *receiver) reset() {
	for i := range r.shards {
		r.shards[i].mu.Lock()
		r.shards[i].m = make(map[string]receipts, 1024)
		r.shards[i].mu.Unlock()
	}
	r.total.Store(0)
	r.unique.Store(0)
	r.conns.Store(0)
}

func (r *receiver) hook(w http.ResponseWriter, req *http.Request) {
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := io.Copy(buf, io.LimitReader(req.Body, 1<<20))
	r.bufs.Put(buf)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	now := time.Now().UnixNano()
	r.total.Add(1)
	id := req.Header.Get("Webhook-Id")
	if id == "" {
		id = req.Header.Get("X-Event-Id") // the peers' relays (River) send theirs here
	}
	if id != "" {
		s := &r.shards[maphash.String(r.seed, id)%recvShards]
		s.mu.Lock()
		if rc, dup := s.m[id]; dup {
			rc.last = now
			s.m[id] = rc
		} else {
			s.m[id] = receipts{first: now, last: now}
			r.unique.Add(1)
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// maxSlowDelay bounds what a slow hook may be asked to wait.
const maxSlowDelay = 10 * time.Second

// slowHook answers as hook does, after the delay the query asks for.
func (r *receiver) slowHook(w http.ResponseWriter, req *http.Request) {
	ms, err := strconv.Atoi(req.URL.Query().Get("ms"))
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxSlowDelay {
		http.Error(w, "ms: want 0.."+strconv.Itoa(int(maxSlowDelay.Milliseconds())), http.StatusBadRequest)
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-req.Context().Done():
		return // the relay gave up, or is stopping
	}
	r.hook(w, req)
}

// recvStats is what GET /stats answers; the peers' receiver answers the
// same field names.
type recvStats struct {
	PID    int   `json:"pid"`
	Total  int64 `json:"total"`
	Unique int64 `json:"unique"`
	// Conns counts the connections accepted (herald-bench's receiver
	// only): a relay's dials.
	Conns int64 `json:"conns,omitempty"`
}

func (r *receiver) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", r.hook)
	mux.HandleFunc("POST /hook/slow", r.slowHook)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(recvStats{PID: os.Getpid(), Total: r.total.Load(), Unique: r.unique.Load(), Conns: r.conns.Load()})
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) { r.reset() })
	mux.HandleFunc("GET /times", func(w http.ResponseWriter, req *http.Request) {
		prefix := req.URL.Query().Get("prefix")
		last := req.URL.Query().Get("last") == "1"
		out := make(map[string]int64)
		for i := range r.shards {
			s := &r.shards[i]
			s.mu.Lock()
			for id, rc := range s.m {
				if strings.HasPrefix(id, prefix) {
					out[id] = rc.first
					if last {
						out[id] = rc.last
					}
				}
			}
			s.mu.Unlock()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	return mux
}

// receiverMain listens on a loopback address, prints "LISTEN host:port" on
// stdout and serves until killed or until -ttl passes.
func receiverMain(args []string) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	ttl := fs.Duration("ttl", time.Hour, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("receiver: -addr must be a loopback address (got %q)", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	time.AfterFunc(*ttl, func() { os.Exit(0) })
	r := newReceiver()
	srv := &http.Server{Handler: r.routes(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 1 << 16,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				r.conns.Add(1)
			}
		}}
	return srv.Serve(ln)
}
