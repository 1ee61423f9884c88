// Command herald-receiver is a sample receiver of Herald's webhooks. It
// verifies each message, deduplicates it by webhook-id (in PostgreSQL with
// -database-url, else in memory), logs one JSON line per request and counts
// what it saw. It serves the local demo and the compose quickstart, and
// shows how a real receiver wires webhook.Handler.
//
// Usage:
//
//	herald-receiver [-addr 127.0.0.1:8090] [-path /webhooks] [-secret whsec_...]
//	                [-database-url postgres://...] [-print-body]
//
// GET /healthz answers 200 when the receiver is up (and its database
// reachable); GET /stats answers JSON counts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/webhook"
)

// Environment variables read when the matching flag is not set.
const (
	envSecret      = "HERALD_RECEIVER_SECRET"
	envDatabaseURL = "HERALD_RECEIVER_DATABASE_URL"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: a second one
	// kills the process.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "herald-receiver:", err)
		os.Exit(1)
	}
}

type options struct {
	addr        string
	path        string
	secret      string
	databaseURL string
	printBody   bool
	retention   time.Duration
	maxBody     int64
}

func parseFlags(args []string, getenv func(string) string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("herald-receiver", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8090", "listen address")
	fs.StringVar(&o.path, "path", "/webhooks", "path receiving webhooks")
	fs.StringVar(&o.secret, "secret", getenv(envSecret), "whsec_ signing secret; several separated by spaces during a rotation; empty accepts unsigned messages (env "+envSecret+")")
	fs.StringVar(&o.databaseURL, "database-url", getenv(envDatabaseURL), "PostgreSQL URL to deduplicate in; empty deduplicates in memory (env "+envDatabaseURL+")")
	fs.BoolVar(&o.printBody, "print-body", false, "log each message's body")
	fs.DurationVar(&o.retention, "retention", 72*time.Hour, "how long to remember processed ids; longer than Herald may retry a message")
	fs.Int64Var(&o.maxBody, "max-body-bytes", webhook.VerifierMaxBodyBytesDefault, "largest body accepted")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.path == "" || o.path[0] != '/' {
		return o, fmt.Errorf("-path: must start with /, got %q", o.path)
	}
	if o.retention <= 0 {
		return o, fmt.Errorf("-retention: must be positive, got %s", o.retention)
	}
	return o, nil
}

// stats counts requests by outcome.
type stats struct {
	Received   atomic.Int64 // verified messages, duplicates included
	Processed  atomic.Int64 // committed as new
	Duplicates atomic.Int64 // already processed
	Rejected   atomic.Int64 // failed verification
	Failed     atomic.Int64 // store or handler error: Herald retries
}

// pruner forgets old processed ids.
type pruner interface {
	Prune(ctx context.Context, olderThan time.Duration) (int64, error)
}

// run serves until ctx ends, then shuts down gracefully. If ready is not nil,
// it receives the listening address once requests are served.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready chan<- string) error {
	o, err := parseFlags(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := zerolog.New(stdout).With().Timestamp().Logger()

	var verifier webhook.RequestVerifier
	if o.secret == "" {
		verifier = unsignedVerifier{maxBody: o.maxBody}
	} else {
		v, err := webhook.NewVerifierWithConfig(webhook.VerifierConfig{
			Secrets:      splitSecrets(o.secret),
			MaxBodyBytes: o.maxBody,
		})
		if err != nil {
			return fmt.Errorf("-secret: %w", err)
		}
		verifier = v
	}

	st := &stats{}
	observe := webhook.ObserveOutcomes(func(_ *http.Request, out webhook.Outcome) {
		logOutcome(logger, st, out, o.printBody)
	})

	var (
		handler http.Handler
		prune   pruner
		health  = func(context.Context) error { return nil }
		dedupe  = "memory"
	)
	if o.databaseURL == "" {
		store := webhook.NewMemoryStore()
		handler = webhook.NewHandler(verifier, store, func(context.Context, *webhook.MemoryTx, *webhook.Received) error {
			return nil
		}, observe)
		prune = store
	} else {
		pool, err := pgxpool.New(ctx, o.databaseURL)
		if err != nil {
			return fmt.Errorf("-database-url: %w", err)
		}
		defer pool.Close()
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("connect to database: %w", err)
		}
		store, err := webhook.NewPostgresStore(pool, "")
		if err != nil {
			return err
		}
		if err := store.CreateTable(ctx); err != nil {
			return err
		}
		// A real receiver changes its own tables here, with tx, so that the
		// change and the processed id commit together.
		handler = webhook.NewHandler(verifier, store, func(context.Context, pgx.Tx, *webhook.Received) error {
			return nil
		}, observe)
		prune, health, dedupe = store, pool.Ping, "postgres"
	}

	mux := http.NewServeMux()
	mux.Handle(o.path, handler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := health(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]int64{
			"received":   st.Received.Load(),
			"processed":  st.Processed.Load(),
			"duplicates": st.Duplicates.Load(),
			"rejected":   st.Rejected.Load(),
			"failed":     st.Failed.Load(),
		})
	})

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}

	logger.Info().Str("addr", ln.Addr().String()).Str("path", o.path).
		Str("dedupe", dedupe).Bool("verify", o.secret != "").
		Msg("herald-receiver listening")
	if o.secret == "" {
		logger.Warn().Msg("no -secret: accepting UNSIGNED messages; set -secret or " + envSecret + " outside a demo")
	}

	var wg sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer func() { stopLoops(); wg.Wait() }()
	wg.Go(func() { pruneLoop(loopCtx, logger, prune, o.retention) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info().Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-serveErr // http.ErrServerClosed
	logger.Info().
		Int64("received", st.Received.Load()).
		Int64("duplicates", st.Duplicates.Load()).
		Int64("rejected", st.Rejected.Load()).
		Msg("stopped")
	return nil
}

// logOutcome counts a request and logs one line for it.
func logOutcome(logger zerolog.Logger, st *stats, out webhook.Outcome, printBody bool) {
	var ev *zerolog.Event
	switch {
	case out.Rejected:
		st.Rejected.Add(1)
		ev = logger.Warn().Err(out.Err)
	case out.Err != nil:
		st.Received.Add(1)
		st.Failed.Add(1)
		ev = logger.Error().Err(out.Err)
	case out.Duplicate:
		st.Received.Add(1)
		st.Duplicates.Add(1)
		ev = logger.Info()
	default:
		st.Received.Add(1)
		st.Processed.Add(1)
		ev = logger.Info()
	}
	ev = ev.Str("id", out.ID).Int("status", out.Status)
	if !out.Rejected {
		ev = ev.Int("bytes", len(out.Body)).Bool("duplicate", out.Duplicate)
		if topic := topicOf(out.Body); topic != "" {
			ev = ev.Str("topic", topic)
		}
	}
	if printBody && out.Body != nil {
		if json.Valid(out.Body) {
			ev = ev.RawJSON("body", out.Body)
		} else {
			ev = ev.Bytes("body", out.Body)
		}
	}
	switch {
	case out.Rejected:
		ev.Msg("rejected")
	case out.Err != nil:
		ev.Msg("failed")
	default:
		ev.Msg("received")
	}
}

// topicOf returns the "topic" or "type" field of a JSON object payload, if
// any: Herald sends no topic header unless configured to.
func topicOf(body []byte) string {
	var p struct {
		Topic any `json:"topic"`
		Type  any `json:"type"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	for _, v := range []any{p.Topic, p.Type} {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// pruneLoop forgets processed ids older than retention, hourly or more
// often for short retentions.
func pruneLoop(ctx context.Context, logger zerolog.Logger, p pruner, retention time.Duration) {
	ticker := time.NewTicker(min(time.Hour, max(retention/4, time.Second)))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		n, err := p.Prune(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error().Err(err).Msg("prune failed")
		case n > 0:
			logger.Info().Int64("pruned", n).Msg("pruned processed ids")
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// splitSecrets splits a space- or comma-separated list of secrets.
func splitSecrets(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

// unsignedVerifier accepts any message with a webhook-id, for demos without
// a secret.
type unsignedVerifier struct{ maxBody int64 }

func (u unsignedVerifier) Verify(r *http.Request) ([]byte, error) {
	if r.Header.Get(webhook.HeaderID) == "" {
		return nil, webhook.ErrMissingHeaders
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, u.maxBody))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nil, webhook.ErrBodyTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	return body, nil
}
