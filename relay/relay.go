package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Relay claims committed outbox messages, delivers them to their endpoints
// and records the outcome. Several relays may run on one database.
type Relay struct {
	cfg    Config
	pool   *pgxpool.Pool
	router atomic.Pointer[router] // swapped whole by SetEndpoints
	log    zerolog.Logger
	m      *Metrics
	tracer trace.Tracer // nil: tracing off, see newTracer

	results chan *pair // finished pairs, for the completer
	handoff chan *pair // admitted pairs, to a worker waiting for one (unbuffered)
	wake    chan struct{}
	room    chan struct{}

	inFlight      atomic.Int64 // pairs claimed and not yet finished
	inFlightBytes atomic.Int64 // payload bytes of the rows claimed and not yet finished
	retryDue      atomic.Bool  // set when pairs were made due: claim the retry lane now
	stopping      atomic.Bool  // set by Stop: workers start nothing new
	// epoch is the origin of the relay's monotonic clock (see now).
	epoch time.Time
	// gen is the relay's registration in outbox.relays (liveness.go).
	gen           atomic.Pointer[generation]
	beat          beatConn // the liveness statements' connection (liveness.go)
	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
	stats         stats
	health        claimHealth // what Claiming reports

	swapMu              sync.Mutex           // serialises SetEndpoints
	unusableSince       map[string]time.Time // guarded by swapMu: since when each unusable endpoint has been
	retry               atomic.Pointer[retryHolder]
	startOnce, stopOnce sync.Once
	started             bool
	stopClaiming        context.CancelFunc // stops the claimer and the listener
	workCtx             context.Context    // the workers' context: cancelled to abort requests in flight
	cancelWork          context.CancelFunc
	workers             sync.WaitGroup  // one per running worker; see startWorker
	outcomeCtx          context.Context // ends when Stop's context does: outcome writes give up
	cancelOutcomes      context.CancelFunc
	claimerDone         chan struct{}
	workersDone         chan struct{}
	completerDone       chan struct{}
	background          sync.WaitGroup // listener, progress logger, sweeper
	callbacks           sync.WaitGroup // OnDisable calls
	stopErr             error
	signals             testSignals // off unless a test turns them on
	// holdOutcomes, when a test sets it, keeps the completer from taking
	// finished pairs until it is closed (export_test.go).
	holdOutcomes chan struct{}
	historyLog   historyLog // the completer's
	alerts       alerts     // Herald's own events, docs/alerts.md
}

// stats are counters for progress logs and tests.
type stats struct {
	delivered, retried, dead, released atomic.Int64
	deferred                           atomic.Int64
	claims, claimedRows                atomic.Int64
	takenOver                          atomic.Int64
	workersStarted                     atomic.Int64 // goroutines, for tests
}

// Stats is a snapshot of a relay's counters since it started.
type Stats struct {
	// Delivered counts (message, endpoint) pairs acknowledged with a 2xx.
	Delivered int64
	// Retried counts failed attempts that were rescheduled.
	Retried int64
	// Dead counts pairs (or unroutable messages) given up.
	Dead int64
	// Released counts claimed pairs given back unattempted at shutdown.
	Released int64
	// Deferred counts pairs not attempted because their endpoint was
	// paused, at its max_in_flight or rate-limited.
	Deferred int64
	// Claims counts claim round trips; ClaimedRows the rows they returned.
	Claims, ClaimedRows int64
	// TakenOver counts rows of relays declared dead that this relay took
	// over before their lease lapsed: messages it claimed, retry pairs its
	// heartbeat made due.
	TakenOver int64
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Delivered: r.stats.delivered.Load(), Retried: r.stats.retried.Load(),
		Dead: r.stats.dead.Load(), Released: r.stats.released.Load(), Deferred: r.stats.deferred.Load(),
		Claims: r.stats.claims.Load(), ClaimedRows: r.stats.claimedRows.Load(), TakenOver: r.stats.takenOver.Load(),
	}
}

// New returns a relay on pool. It does not touch the database until Start.
// Every statement the relay runs goes through pool, so the pool's session
// settings are the relay's: a pool whose connections set
// synchronous_commit = off (herald's relay.async_commit) makes the relay's
// claims and outcome writes asynchronous. That is safe for a pool only the
// relay uses: a lost outcome write means a second delivery, never a loss.
func New(pool *pgxpool.Pool, cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("relay config: %w", err)
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	r := &Relay{
		cfg:    cfg,
		pool:   pool,
		log:    cfg.Logger.With().Str("component", "relay").Logger(),
		m:      m,
		tracer: newTracer(cfg.TracerProvider),
		// Room for a full window of fan-out; the claimer sizes claims so
		// that rarely more than MaxInFlight pairs finish at once.
		results:       make(chan *pair, 2*cfg.MaxInFlight),
		handoff:       make(chan *pair),
		wake:          make(chan struct{}, 1),
		room:          make(chan struct{}, 1),
		claimerDone:   make(chan struct{}),
		workersDone:   make(chan struct{}),
		completerDone: make(chan struct{}),
		heartbeatDone: make(chan struct{}),
		epoch:         time.Now(),
		beat:          beatConn{cfg: pool.Config().ConnConfig},
	}
	rt := newRouter(cfg.Endpoints, nil, m, cfg.Lease-attemptMargin)
	r.router.Store(rt)
	r.unusableSince = map[string]time.Time{}
	r.noteEndpoints(nil, rt)
	r.retry.Store(&retryHolder{cfg.Retry})
	return r, nil
}

type retryHolder struct{ RetryPolicy }

// SetRetryPolicy replaces the retry policy while the relay runs; it applies
// to failures from now on.
func (r *Relay) SetRetryPolicy(p RetryPolicy) {
	if p != nil {
		r.retry.Store(&retryHolder{p})
	}
}

// SetEndpoints replaces the relay's endpoints while it runs: requests in
// flight finish on the endpoint they started with, and an endpoint whose
// settings did not change keeps its state (requests in flight, queue,
// circuit breaker). Pairs owed to an endpoint that no longer exists wait in
// the retry lane until it comes back. It checks eps as New does.
func (r *Relay) SetEndpoints(eps []Endpoint) error {
	c := r.cfg
	c.Endpoints = eps
	if err := c.validate(); err != nil {
		return fmt.Errorf("set endpoints: %w", err)
	}
	r.swapMu.Lock()
	defer r.swapMu.Unlock()
	old := r.router.Load()
	next := newRouter(eps, old, r.m, r.cfg.Lease-attemptMargin)
	r.router.Store(next)
	retire(old, next)
	added, removed, changed := old.diff(next)
	if len(added)+len(removed)+len(changed) > 0 {
		r.log.Info().Strs("added", added).Strs("removed", removed).Strs("changed", changed).Msg("endpoints updated")
	}
	for _, name := range removed {
		r.m.forget(name)
	}
	for _, name := range changed {
		if isPaused, _ := old.byName[name].paused(); isPaused {
			r.m.setFlag(r.m.paused, name, false) // its replacement starts with its breaker closed
		}
	}
	r.noteEndpoints(old, next)
	signal(r.wake)
	return nil
}

// retire marks the endpoints of old that next replaced or removed: each
// one's Sender is closed once its requests in flight have finished, unless
// an endpoint of next still uses it.
func retire(old, next *router) {
	inUse := make(map[Sender]bool, len(next.endpoints))
	for _, st := range next.endpoints {
		if st.Sender != nil && comparable(st.Sender) {
			inUse[st.Sender] = true
		}
	}
	for _, st := range old.endpoints {
		if next.byName[st.Name] == st || st.Sender == nil || !comparable(st.Sender) || inUse[st.Sender] {
			continue // a Sender that cannot be a map key is not closed: it may still be in use
		}
		st.closeWhenIdle.Store(true)
		st.closeIfIdle()
	}
}

// noteEndpoints reports the endpoints that became unusable, or usable
// again, from old (nil in New) to next: one log line per change, not per
// message, and the herald_endpoint_unusable gauge. The waiting pairs of an
// endpoint usable again are due: the retry lane is claimed at once, and the
// time they waited does not count towards their retry budget. Callers hold
// swapMu (or own the relay, in New).
func (r *Relay) noteEndpoints(old, next *router) {
	now := time.Now()
	for _, st := range next.endpoints {
		was := ""
		prev := old.lookup(st.Name)
		if prev == st {
			continue // kept as it was: so is its gauge
		}
		if prev != nil {
			was = prev.unusable
		}
		r.m.setFlag(r.m.unusable, st.Name, st.unusable != "")
		switch {
		case st.unusable != "" && st.unusable != was:
			if _, ok := r.unusableSince[st.Name]; !ok {
				r.unusableSince[st.Name] = now
			}
			r.log.Error().Str("endpoint", st.Name).Str("error", st.unusable).
				Msg("endpoint unusable: its messages wait in the retry lane, unattempted, until it is fixed")
		case st.unusable == "" && was != "":
			waited := now.Sub(r.unusableSince[st.Name])
			delete(r.unusableSince, st.Name)
			r.log.Info().Str("endpoint", st.Name).Dur("unusable_for", waited).
				Msg("endpoint usable again: its waiting messages are due")
			r.retryDue.Store(true)
			r.shiftClocks(st.Name, waited)
		}
	}
	for name := range r.unusableSince {
		if next.byName[name] == nil {
			delete(r.unusableSince, name)
		}
	}
}

// shiftClocks moves the retry-budget clock of the endpoint's waiting pairs
// forward by d, time in which the endpoint could not be tried, on its own
// goroutine.
func (r *Relay) shiftClocks(endpoint string, d time.Duration) {
	r.callbacks.Add(1)
	go func() {
		defer r.callbacks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := r.pool.Exec(ctx, shiftClocksSQL, endpoint, d.Milliseconds()); err != nil {
			r.log.Error().Err(err).Str("endpoint", endpoint).Msg("could not move retry clocks past the outage")
		}
	}()
}

// Start checks the database and starts the relay's goroutines. It does not
// block; Stop ends them.
func (r *Relay) Start(ctx context.Context) error {
	err := errors.New("relay: already started, or stopped")
	r.startOnce.Do(func() { err = r.start(ctx) })
	return err
}

func (r *Relay) start(ctx context.Context) error {
	if err := r.pool.Ping(ctx); err != nil {
		return fmt.Errorf("relay: ping database: %w", err)
	}
	var ok, relays, retryHistory bool
	if err := r.pool.QueryRow(ctx, `SELECT to_regclass('outbox.deliveries') IS NOT NULL, to_regclass('outbox.relays') IS NOT NULL,
    to_regproc('outbox.ack_retry_logged') IS NOT NULL`).Scan(&ok, &relays, &retryHistory); err != nil {
		return fmt.Errorf("relay: check schema: %w", err)
	}
	if !ok {
		return errors.New("relay: outbox schema not found: run `herald migrate` first")
	}
	if !relays {
		return errors.New("relay: table outbox.relays not found (migration 010): run `herald migrate` first")
	}
	if !retryHistory {
		return errors.New("relay: function outbox.ack_retry_logged not found (migration 012): run `herald migrate` first")
	}
	if err := r.register(ctx); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	// The history functions came with a later version of migrations/007
	// than its tables: a database migrated before them would fail every
	// outcome flush that writes history, so this relay writes none.
	if err := r.pool.QueryRow(ctx, historyFunctionsSQL).Scan(&ok); err != nil {
		r.retire(ctx)
		return fmt.Errorf("relay: check schema: %w", err)
	}
	if !ok && (r.cfg.History.Attempts != AttemptLogOff || r.cfg.History.Messages) {
		r.log.Error().Msg("history functions missing (outbox.log_attempts, outbox.ack_logged: an earlier migrations/007): " +
			"this relay writes no history; re-create them from migrations/007_history.sql")
		r.cfg.History.Attempts, r.cfg.History.Messages = AttemptLogOff, false
	}
	// Today's partitions must exist before the first flush writes history;
	// a relay that cannot make them still delivers (its history writes
	// fail, counted, until maintenance succeeds).
	mctx, cancel := context.WithTimeout(ctx, historyMaintenanceTimeout)
	_, err := r.MaintainHistory(mctx)
	cancel()
	if err != nil {
		r.log.Error().Err(err).Msg("history partitions not maintained at start")
	}
	claimCtx, stopClaiming := context.WithCancel(context.WithoutCancel(ctx))
	r.workCtx, r.cancelWork = context.WithCancel(context.WithoutCancel(ctx))
	r.stopClaiming = stopClaiming
	r.outcomeCtx, r.cancelOutcomes = context.WithCancel(context.WithoutCancel(ctx))
	r.started = true

	// The heartbeat outlives the claimer: it runs until every request in
	// flight has ended and its outcome is written (see stop).
	heartbeatCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	r.stopHeartbeat = stopHeartbeat
	go func() {
		defer close(r.heartbeatDone)
		r.runHeartbeat(heartbeatCtx)
	}()
	go r.runClaimer(claimCtx)
	go func() {
		// Workers are started by the claimer only, so once it is done
		// their number only falls.
		<-r.claimerDone
		r.workers.Wait()
		close(r.workersDone)
		close(r.results)
	}()
	go r.runCompleter()
	if r.cfg.Listen {
		r.background.Add(1)
		go func() {
			defer r.background.Done()
			r.runListener(claimCtx)
		}()
	}
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		r.runProgress(claimCtx)
	}()
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		r.every(claimCtx, orderSweepInterval, "sweep", r.sweep)
	}()
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		r.every(claimCtx, deadSummaryInterval, "alerts", r.writeDeadSummary)
	}()
	if r.cfg.VacuumThreshold >= 0 {
		r.background.Add(1)
		go func() {
			defer r.background.Done()
			r.every(claimCtx, vacuumCheckInterval, "vacuum", r.vacuumIfNeeded)
		}()
	}
	r.log.Info().Int("endpoints", len(r.cfg.Endpoints)).Int("max_in_flight", r.cfg.MaxInFlight).
		Dur("lease", r.cfg.Lease).Dur("heartbeat_timeout", r.cfg.HeartbeatTimeout).Bool("listen", r.cfg.Listen).Msg("relay started")
	return nil
}

// Stop stops claiming, gives back claimed messages not yet attempted, lets
// requests in flight finish for up to Config.ShutdownTimeout (or until ctx
// ends), cancels what is left, and writes every outcome. It is safe to call
// more than once, and before Start (a Start after it then fails).
func (r *Relay) Stop(ctx context.Context) error {
	// A Start after Stop must not start what nothing would stop.
	r.startOnce.Do(func() {})
	r.stopOnce.Do(func() { r.stopErr = r.stop(ctx) })
	return r.stopErr
}

func (r *Relay) stop(ctx context.Context) error {
	if !r.started {
		return nil
	}
	r.log.Info().Int64("in_flight", r.inFlight.Load()).Msg("relay stopping")
	r.stopping.Store(true)
	r.stopClaiming()
	<-r.claimerDone
	r.signals.ClaimingStopped.signal(struct{}{})
	grace := time.NewTimer(r.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-r.workersDone:
	case <-grace.C:
		r.log.Warn().Int64("in_flight", r.inFlight.Load()).Msg("shutdown timeout: cancelling requests in flight")
	case <-ctx.Done():
		r.log.Warn().Int64("in_flight", r.inFlight.Load()).Msg("stop deadline: cancelling requests in flight")
	}
	r.cancelWork()
	<-r.workersDone
	select {
	case <-r.completerDone:
	case <-ctx.Done():
		// The database is not taking the last outcomes: give up on them
		// (their rows are delivered again after their lease), as Stop's
		// caller asked.
		r.cancelOutcomes()
		<-r.completerDone
	}
	r.cancelOutcomes()
	r.stopHeartbeat()
	<-r.heartbeatDone
	r.retire(ctx)
	r.background.Wait()
	// The last outcome writes may have left deaths for a summary.
	if err := r.writeDeadSummary(ctx); err != nil {
		r.log.Warn().Err(err).Int64("deaths", r.alerts.deadSuppressed.Load()).Msg("could not write the summary of unreported dead messages")
	}
	r.callbacks.Wait()
	st := r.Stats()
	r.log.Info().Int64("delivered", st.Delivered).Int64("retried", st.Retried).Int64("dead", st.Dead).
		Int64("released", st.Released).Msg("relay stopped")
	return nil
}

// Run starts the relay, blocks until ctx is done, then stops it.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return r.Stop(context.WithoutCancel(ctx))
}
