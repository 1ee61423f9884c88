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
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/migrations"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations of the whole run, and what is in use) to this file at exit")
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
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("memprofile: %w", err)
		}
		defer func() {
			runtime.GC() // the profile is as of the last collection
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				log.Warn().Err(err).Msg("memprofile not written")
			}
			f.Close()
		}()
	}

	if os.Getenv("GOGC") == "" {
		// The relay's live heap is a few MB, and most of what it allocates
		// lives for one request: collecting at 5× the live heap instead of
		// 2× trades some MB of memory for far fewer collections, and so
		// less CPU per delivery. GOGC overrides.
		debug.SetGCPercent(400)
	}
	// SIGHUP is caught from the start: its default action would kill a
	// herald that is already delivering but still starting up. One that
	// arrives before the loop below waits for it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Tracing is set up once, at start: a reload does not change it.
	tp, stopTracing, err := newTracerProvider(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the spans of the last deliveries, within a bound: a
		// collector that is gone must not hold up the exit.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(fctx); err != nil {
			log.Warn().Err(err).Msg("tracing: spans not flushed")
		}
	}()
	g.tracer = tp

	reg := newRegistry()

	// Every source must be reachable and migrated before any starts.
	srcs := sourcesOf(cfg)
	log.Info().Str("version", webhook.Version).Int("sources", len(srcs)).Msg("herald starting")
	pools := make([]*pgxpool.Pool, 0, len(srcs))
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, src := range srcs {
		pool, err := openSource(ctx, src, cfg.Relay.AsyncCommit)
		if err != nil {
			return err
		}
		pools = append(pools, pool)
	}
	running := make([]*runningSource, 0, len(srcs))
	defer func() {
		for _, rs := range running {
			rs.set.closeAll()
		}
	}()
	stopAll := func() error {
		errs := make([]error, len(running))
		var wg sync.WaitGroup
		for i, rs := range running {
			wg.Go(func() { errs[i] = rs.Stop(cfg.Relay.ShutdownTimeout + 30*time.Second) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	for i, src := range srcs {
		rs, err := startSource(ctx, g, cfg, src, pools[i], reg, log)
		if err != nil {
			_ = stopAll()
			return err
		}
		running = append(running, rs)
	}

	var metricsSrv *http.Server
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			_ = stopAll()
			return fmt.Errorf("metrics.listen: %w", err)
		}
		mux := newMetricsMux(reg, running)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("metrics server stopped")
			}
		}()
		log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	}

	adminSrv, err := startAdmin(cfg, srcs, pools, log)
	if err != nil {
		_ = stopAll()
		return err
	}

	for alive := true; alive; {
		select {
		case <-ctx.Done():
			alive = false
		case <-hup:
			cfg = reload(ctx, g, cfg, running, log)
		}
	}
	log.Info().Msg("signal received: stopping (a second signal exits at once)")
	// The admin API first: its requests in flight finish while the pools
	// are open.
	err = errors.Join(stopAdmin(adminSrv), stopAll())
	if metricsSrv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = metricsSrv.Shutdown(shutCtx)
	}
	if err != nil {
		return err
	}
	log.Info().Msg("herald stopped")
	return nil
}

// openSource connects to src's database and checks its schema is migrated.
func openSource(ctx context.Context, src source, asyncCommit bool) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, src, asyncCommit)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err == nil {
		err = migrations.Check(ctx, conn.Conn())
		conn.Release()
	}
	if err != nil {
		pool.Close()
		if src.labelled {
			return nil, fmt.Errorf("source %s: %w", src.name, err)
		}
		return nil, err
	}
	return pool, nil
}

// runningSource is the relay of one source and what keeps it going: the
// endpoint watcher, maintenance and the queue gauges' refresher.
type runningSource struct {
	src          source
	pool         *pgxpool.Pool
	set          *endpointSet
	relay        *relay.Relay
	maint        maintenance
	refresh      chan struct{}
	queue        *queueCollector // nil without metrics.listen
	stopWatching context.CancelFunc
	background   sync.WaitGroup // the endpoint watcher and the queue gauges' refresher
	log          zerolog.Logger
}

// startSource syncs src's endpoints from the file and starts its relay,
// endpoint watcher and maintenance on pool. Its metrics go to reg, labelled
// source="<name>" when src is one of sources.
func startSource(ctx context.Context, g *globals, cfg *config.Config, src source, pool *pgxpool.Pool,
	reg prometheus.Registerer, log zerolog.Logger) (*runningSource, error) {
	if src.labelled {
		log = log.With().Str("source", src.name).Logger()
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"source": src.name}, reg)
	}
	fail := func(err error) error {
		if src.labelled {
			return fmt.Errorf("source %s: %w", src.name, err)
		}
		return err
	}
	// The file's endpoints join those managed in outbox.endpoints, which
	// is what the relay follows from now on.
	eps, _ := src.endpoints(cfg)
	if err := ops.SyncFromConfig(ctx, pool, eps); err != nil {
		return nil, fail(fmt.Errorf("sync endpoints from %s: %w", g.configPath, err))
	}
	epLog := log.With().Str("component", "endpoints").Logger()
	set := newEndpointSet(cfg)
	built, version, err := set.load(ctx, pool)
	if err != nil {
		set.closeAll()
		return nil, fail(fmt.Errorf("load endpoints: %w", err))
	}
	rcfg := cfg.RelayConfig()
	rcfg.Endpoints, rcfg.Logger, rcfg.Metrics = built, log, relay.NewMetricsWith(reg, relay.MetricsConfig{MaxEndpointSeries: cfg.Metrics.MaxEndpointSeries})
	rcfg.OnDisable = persistDisable(pool, log)
	rcfg.TracerProvider = g.tracer
	r, err := relay.New(pool, rcfg)
	if err != nil {
		set.closeAll()
		return nil, fail(err)
	}
	maint, err := startMaintenance(cfg, pool, r, log)
	if err != nil {
		set.closeAll()
		return nil, fail(err)
	}
	if err := r.Start(ctx); err != nil {
		maint.stop()
		set.closeAll()
		return nil, fail(err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	rs := &runningSource{src: src, pool: pool, set: set, relay: r, maint: maint, refresh: make(chan struct{}, 1),
		stopWatching: stopWatching, log: log}
	rs.background.Go(func() {
		watchEndpoints(watchCtx, pool, set, r, version, cfg.Relay.EndpointRefresh, rs.refresh, epLog)
	})
	if cfg.Metrics.Listen != "" {
		rs.queue = newQueueCollector(pool)
		reg.MustRegister(rs.queue, readyCollector{rs})
		rs.background.Go(func() {
			t := time.NewTicker(cfg.Metrics.QueueInterval)
			defer t.Stop()
			rs.queue.run(watchCtx, t.C)
		})
	}
	return rs, nil
}

// Stop stops the source's endpoint watcher, relay and maintenance, giving
// deliveries in flight up to timeout to finish. The pool stays open.
func (rs *runningSource) Stop(timeout time.Duration) error {
	rs.stopWatching()
	rs.background.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := rs.relay.Stop(ctx)
	rs.maint.stop()
	if err != nil && rs.src.labelled {
		return fmt.Errorf("source %s: %w", rs.src.name, err)
	}
	return err
}

// reload applies next, a reloaded file, to the source: its endpoints are
// synced and the delivery and retry settings applied.
func (rs *runningSource) reload(ctx context.Context, next *config.Config) error {
	eps, ok := rs.src.endpoints(next)
	if !ok {
		return errors.New("the source is no longer in the file (a restart is needed to remove it)")
	}
	if err := ops.SyncFromConfig(ctx, rs.pool, eps); err != nil {
		return fmt.Errorf("endpoints could not be synced: %w", err)
	}
	rs.set.reconfigure(next)
	rs.relay.SetRetryPolicy(next.RelayConfig().Retry)
	select {
	case rs.refresh <- struct{}{}:
	default:
	}
	return nil
}

// reload re-reads the configuration file on SIGHUP. Endpoints, delivery
// settings and the retry policy change at once in every source, without
// dropping requests in flight; an invalid file is rejected and the running
// configuration kept, and so is a source's whose endpoints cannot be
// synced. It returns the configuration now in force.
func reload(ctx context.Context, g *globals, cfg *config.Config, running []*runningSource, log zerolog.Logger) *config.Config {
	next, err := loadConfig(g, false)
	if err != nil {
		log.Error().Str("config", g.configPath).Str("problems", err.Error()).
			Msg("reload rejected: the file is invalid; the running configuration is kept")
		return cfg
	}
	for _, rs := range running {
		if err := rs.reload(ctx, next); err != nil {
			rs.log.Error().Err(err).Msg("reload rejected for this source: its running configuration is kept")
		}
	}
	ev := log.Info().Str("config", g.configPath)
	if keys := restartOnly(cfg, next); len(keys) > 0 {
		ev = log.Warn().Str("config", g.configPath).Strs("restart_needed_for", keys)
	}
	ev.Msg("configuration reloaded: endpoints, delivery and retry settings applied")
	// Settings that need a restart stay as they were until then.
	next.Database, next.Relay, next.Breaker, next.Metrics, next.Maintenance, next.History, next.Log, next.Sources, next.Admin =
		cfg.Database, cfg.Relay, cfg.Breaker, cfg.Metrics, cfg.Maintenance, cfg.History, cfg.Log, cfg.Sources, cfg.Admin
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

// startMaintenance schedules the purge of old dead messages and the
// history partitions' upkeep (made ahead, dropped past history.retention).
// Every relay schedules it; advisory locks let one of them do each job.
func startMaintenance(cfg *config.Config, pool *pgxpool.Pool, r *relay.Relay, log zerolog.Logger) (maintenance, error) {
	sched, err := cfg.Maintenance.ParseSchedule()
	if err != nil {
		return maintenance{}, fmt.Errorf("maintenance.schedule: %w", err)
	}
	log = log.With().Str("component", "maintenance").Logger()
	c := cron.New()
	c.Schedule(sched, cron.FuncJob(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := r.MaintainHistory(ctx); err != nil {
			log.Error().Err(err).Msg("maintain history")
		}
		if cfg.Maintenance.DeadRetention <= 0 {
			return
		}
		res, err := ops.PurgeDead(ctx, pool, ops.DeadFilter{OlderThan: cfg.Maintenance.DeadRetention})
		if errors.Is(err, ops.ErrPurgeBusy) {
			return // another relay is doing it
		}
		if err != nil {
			log.Error().Err(err).Msg("purge dead messages")
			return
		}
		if res.Purged > 0 {
			log.Info().Int64("deleted", res.Purged).Dur("older_than", cfg.Maintenance.DeadRetention).Msg("purged dead messages")
		}
	}))
	c.Start()
	return maintenance{c: c}, nil
}
