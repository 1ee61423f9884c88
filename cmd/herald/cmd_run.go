package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/endpoints"
	"github.com/herald-relay/herald/migrations"
	"github.com/herald-relay/herald/relay"
)

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(g, false)
	if err != nil {
		return err
	}
	log, err := newLogger(g, cfg)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn().Str("config", g.configPath).Msg(w)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	if os.Getenv("GOGC") == "" {
		// The relay's live heap is a few MB, and most of what it allocates
		// lives for one request: collecting at 5× the live heap instead of
		// 2× cut its CPU per delivery by about a third in the prototype
		// (shared/peers RESULTS.md), for some MB of memory. GOGC overrides.
		debug.SetGCPercent(400)
	}
	pool, err := openPool(ctx, cfg, cfg.Relay.AsyncCommit)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	err = migrations.Check(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		return err
	}

	// The file's endpoints join those managed in outbox.endpoints, which
	// is what the relay follows from now on.
	if err := endpoints.SyncFromConfig(ctx, pool, cfg.Endpoints); err != nil {
		return fmt.Errorf("sync endpoints from %s: %w", g.configPath, err)
	}
	set := newEndpointSet(cfg, log.With().Str("component", "endpoints").Logger())
	defer set.closeAll()
	eps, version, err := set.load(ctx, pool)
	if err != nil {
		return fmt.Errorf("load endpoints: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newQueueCollector(pool))
	breakerThreshold := cfg.Breaker.FailureThreshold
	if breakerThreshold == 0 {
		breakerThreshold = -1 // off
	}
	r, err := relay.New(pool, relay.Config{
		Endpoints:       eps,
		Retry:           retryPolicy(cfg),
		MaxInFlight:     cfg.Relay.MaxInFlight,
		Lease:           cfg.Relay.Lease,
		PollInterval:    cfg.Relay.PollInterval,
		Listen:          cfg.Relay.Listen,
		AckInterval:     cfg.Relay.AckInterval,
		AckBatch:        cfg.Relay.AckBatch,
		ShutdownTimeout: cfg.Relay.ShutdownTimeout,
		AsyncCommit:     cfg.Relay.AsyncCommit,
		Logger:          log,
		Metrics:         relay.NewMetrics(reg),
		Breaker: relay.BreakerConfig{
			FailureThreshold: breakerThreshold,
			ProbeInterval:    cfg.Breaker.ProbeInterval,
			MaxProbeInterval: cfg.Breaker.MaxProbeInterval,
		},
		DisableAfter:    cfg.Breaker.DisableAfter,
		VacuumThreshold: cmp.Or(cfg.Relay.VacuumThreshold, -1), // 0 in the file: never
		OnDisable:       persistDisable(pool, log),
	})
	if err != nil {
		return err
	}

	var metricsSrv *http.Server
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) {
			ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
			defer cancel()
			if err := pool.Ping(ctx); err != nil {
				http.Error(w, "database unreachable", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("metrics server stopped")
			}
		}()
		log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics and /healthz")
	}

	maint, err := startMaintenance(cfg, pool, log)
	if err != nil {
		return err
	}

	if err := r.Start(ctx); err != nil {
		maint.stop()
		return err
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	refresh := make(chan struct{}, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchEndpoints(watchCtx, pool, set, r, version, cfg.Relay.EndpointRefresh, refresh, log.With().Str("component", "endpoints").Logger())
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			cfg = reload(ctx, g, cfg, pool, set, r, refresh, log)
		}
	}
	stopWatching()
	<-watched
	log.Info().Msg("signal received: stopping (a second signal exits at once)")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Relay.ShutdownTimeout+30*time.Second)
	defer cancel()
	err = r.Stop(stopCtx)
	maint.stop()
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(stopCtx)
	}
	if err != nil {
		return err
	}
	log.Info().Msg("herald stopped")
	return nil
}

// reload re-reads the configuration file on SIGHUP. Endpoints, delivery
// settings and the retry policy change at once, without dropping requests
// in flight; an invalid file is rejected and the running configuration
// kept. It returns the configuration now in force.
func reload(ctx context.Context, g *globals, cfg *config.Config, pool *pgxpool.Pool, set *endpointSet,
	r *relay.Relay, refresh chan<- struct{}, log zerolog.Logger) *config.Config {
	next, err := loadConfig(g, false)
	if err != nil {
		log.Error().Str("config", g.configPath).Str("problems", err.Error()).
			Msg("reload rejected: the file is invalid; the running configuration is kept")
		return cfg
	}
	if err := endpoints.SyncFromConfig(ctx, pool, next.Endpoints); err != nil {
		log.Error().Err(err).Msg("reload rejected: endpoints could not be synced; the running configuration is kept")
		return cfg
	}
	set.reconfigure(next)
	r.SetRetryPolicy(retryPolicy(next))
	select {
	case refresh <- struct{}{}:
	default:
	}
	ev := log.Info().Str("config", g.configPath)
	if keys := restartOnly(cfg, next); len(keys) > 0 {
		ev = log.Warn().Str("config", g.configPath).Strs("restart_needed_for", keys)
	}
	ev.Msg("configuration reloaded: endpoints, delivery and retry settings applied")
	// Settings that need a restart stay as they were until then.
	next.Database, next.Relay, next.Breaker, next.Metrics, next.Maintenance, next.Log =
		cfg.Database, cfg.Relay, cfg.Breaker, cfg.Metrics, cfg.Maintenance, cfg.Log
	return next
}

type maintenance struct {
	c *cron.Cron
}

func (m maintenance) stop() {
	if m.c != nil {
		<-m.c.Stop().Done()
	}
}

// startMaintenance schedules the purge of old dead messages. Every relay
// schedules it; an advisory lock lets one of them do the work.
func startMaintenance(cfg *config.Config, pool *pgxpool.Pool, log zerolog.Logger) (maintenance, error) {
	if cfg.Maintenance.DeadRetention <= 0 {
		return maintenance{}, nil
	}
	sched, err := cfg.Maintenance.ParseSchedule()
	if err != nil {
		return maintenance{}, fmt.Errorf("maintenance.schedule: %w", err)
	}
	log = log.With().Str("component", "maintenance").Logger()
	c := cron.New()
	c.Schedule(sched, cron.FuncJob(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		n, err := purgeDead(ctx, pool, cfg.Maintenance.DeadRetention)
		if err != nil {
			log.Error().Err(err).Msg("purge dead messages")
			return
		}
		if n > 0 {
			log.Info().Int64("deleted", n).Dur("older_than", cfg.Maintenance.DeadRetention).Msg("purged dead messages")
		}
	}))
	c.Start()
	return maintenance{c: c}, nil
}
