package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// relayChildMain is -relay-mode inproc: the relay library, wired the way
// herald.yaml's defaults wire it, in a child process of its own (so that
// its CPU and RSS are measured like the herald binary's), serving the same
// Prometheus metrics. It stops gracefully on SIGTERM and can write a CPU
// profile, which the herald binary may not offer.
func relayChildMain(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	dsn := fs.String("dsn", "", "database URL")
	hook := fs.String("url", "", "webhook URL")
	secret := fs.String("secret", "", "whsec_ secret")
	metricsAddr := fs.String("metrics", "", "host:port for /metrics")
	maxConns := fs.Int("max-conns", 8, "pool size (database.max_conns)")
	inflight := fs.Int("inflight", relay.MaxInFlightDefault, "relay.max_in_flight")
	epConns := fs.Int("endpoint-conns", 64, "idle connections per endpoint (endpoints[].max_in_flight)")
	rateLimit := fs.Float64("rate-limit", 0, "the endpoint's rate_limit (0: none)")
	slowEPs := fs.Int("slow-endpoints", 0, "instead of one endpoint on \"*\", this many on the receiver's slow hook, one topic each")
	slowDelay := fs.Duration("slow-delay", 0, "how long the slow hook takes to answer")
	lease := fs.Duration("lease", 0, "relay.lease, with every attempt's timeout lease - relay.LeaseMargin (0: the defaults)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here")
	historyAttempts := fs.String("history-attempts", "", "history.attempts (all, failures, off; \"\": the default)")
	historyMessages := fs.Bool("history-messages", false, "history.messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	timeout := 15 * time.Second
	if *lease > 0 {
		timeout = *lease - relay.LeaseMargin
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()

	pcfg, err := pgxpool.ParseConfig(*dsn)
	if err != nil {
		return err
	}
	pcfg.MaxConns = int32(*maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	client := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	ep, err := client.Endpoint(webhook.EndpointConfig{
		Name: "bench", URL: *hook, Secrets: []string{*secret}, Timeout: timeout, MaxConns: *epConns,
	})
	if err != nil {
		return err
	}
	defer ep.Close()
	eps := []relay.Endpoint{{Name: "bench", Topics: []string{"*"}, Sender: ep, Timeout: timeout,
		RateLimit: *rateLimit, RateBurst: max(1, int(*rateLimit))}}
	if *slowEPs > 0 {
		eps = eps[:0]
		for i := range *slowEPs {
			name := fmt.Sprintf("slow-%03d", i)
			sep, err := client.Endpoint(webhook.EndpointConfig{
				Name: name, URL: slowHookURL(*hook, *slowDelay, i), Secrets: []string{*secret}, Timeout: timeout, MaxConns: *epConns,
			})
			if err != nil {
				return err
			}
			defer sep.Close()
			eps = append(eps, relay.Endpoint{Name: name, Topics: []string{slowTopic(i)}, Sender: sep, Timeout: timeout, MaxInFlight: *epConns})
		}
	}
	reg := prometheus.NewRegistry()
	r, err := relay.New(pool, relay.Config{
		Endpoints:   eps,
		MaxInFlight: *inflight,
		Lease:       *lease,
		Listen:      true,
		Logger:      zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger(),
		Metrics:     relay.NewMetrics(reg),
		History:     relay.HistoryConfig{Attempts: relay.AttemptLog(*historyAttempts), Messages: *historyMessages},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *metricsAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopCancel()
	if err := r.Stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("relay stop: %w", err)
	}
	return nil
}
