package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/webhook"
)

// Relay claims committed outbox messages, delivers them to their endpoints
// and records the outcome. Several relays may run on one database.
type Relay struct {
	cfg    Config
	pool   *pgxpool.Pool
	router atomic.Pointer[router] // swapped whole by SetEndpoints
	log    zerolog.Logger
	m      *Metrics

	work    chan *pair // claimed pairs waiting for a worker
	results chan *pair // finished pairs, for the completer
	wake    chan struct{}
	room    chan struct{}

	inFlight      atomic.Int64 // pairs claimed and not yet finished
	inFlightBytes atomic.Int64 // payload bytes of the rows claimed and not yet finished
	retryDue      atomic.Bool  // set when pairs were made due: claim the retry lane now
	stopping      atomic.Bool  // set by Stop: workers start nothing new
	stats         stats

	swapMu              sync.Mutex           // serialises SetEndpoints
	unusableSince       map[string]time.Time // guarded by swapMu: since when each unusable endpoint has been
	retry               atomic.Pointer[retryHolder]
	startOnce, stopOnce sync.Once
	started             bool
	stopClaiming        context.CancelFunc // stops the claimer and the listener
	cancelWork          context.CancelFunc // aborts requests in flight
	outcomeCtx          context.Context    // ends when Stop's context does: outcome writes give up
	cancelOutcomes      context.CancelFunc
	claimerDone         chan struct{}
	workersDone         chan struct{}
	completerDone       chan struct{}
	background          sync.WaitGroup // listener, progress logger, sweeper
	callbacks           sync.WaitGroup // OnDisable calls
	stopErr             error
}

// stats are counters for progress logs and tests.
type stats struct {
	delivered, retried, dead, released atomic.Int64
	deferred                           atomic.Int64
	claims, claimedRows                atomic.Int64
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
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Delivered: r.stats.delivered.Load(), Retried: r.stats.retried.Load(),
		Dead: r.stats.dead.Load(), Released: r.stats.released.Load(), Deferred: r.stats.deferred.Load(),
		Claims: r.stats.claims.Load(), ClaimedRows: r.stats.claimedRows.Load(),
	}
}

type lane uint8

const (
	hotLane lane = iota
	retryLane
)

func (l lane) String() string {
	if l == hotLane {
		return "hot"
	}
	return "retry"
}

// job is one claimed row: a message from the hot lane (one pair per
// endpoint) or one pair from the retry lane.
type job struct {
	lane      lane
	seq       int64
	lease     int64
	msg       webhook.Message
	topic     string
	key       string
	createdAt time.Time
	// attempts is the claim count of a hot message, or the attempt number of
	// a retry pair, including this one.
	attempts int
	// elapsed is the time since the pair's first attempt (retry lane).
	elapsed time.Duration
	// deadline is the latest time an attempt may end while the lease holds.
	deadline time.Time
	// invalid, when set, is why the row cannot be sent; it goes to dead.
	invalid   string
	pairs     []pair
	remaining int
}

type result uint8

const (
	resultOK result = iota
	resultRetry
	resultDead
	resultReleased // not attempted: the relay is stopping, or the lease is too short
	resultDeferred // not attempted: the endpoint is paused, busy or rate-limited
	resultBlocked  // not attempted: an older message of its key is pending for this ordered endpoint
)

// pair is one (message, endpoint) delivery.
type pair struct {
	job        *job
	ep         *endpointState // nil for a job with no endpoint (unroutable or invalid)
	probe      bool           // the one attempt a paused endpoint is allowed
	result     result
	status     int
	errText    string
	response   string
	retryAfter time.Duration
	deadReason string
	attempted  bool
	delay      time.Duration // set by the completer for resultRetry
	notBefore  time.Time     // its turn under the endpoint's rate limit
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
		cfg:  cfg,
		pool: pool,
		log:  cfg.Logger.With().Str("component", "relay").Logger(),
		m:    m,
		// Room for a full window of fan-out; the claimer sizes claims so
		// the queue rarely holds more than MaxInFlight.
		work:          make(chan *pair, 2*cfg.MaxInFlight),
		results:       make(chan *pair, 2*cfg.MaxInFlight),
		wake:          make(chan struct{}, 1),
		room:          make(chan struct{}, 1),
		claimerDone:   make(chan struct{}),
		workersDone:   make(chan struct{}),
		completerDone: make(chan struct{}),
	}
	rt := newRouter(cfg.Endpoints, nil, m)
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
	next := newRouter(eps, old, r.m)
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
			r.m.paused.WithLabelValues(name).Set(0) // its replacement starts with its breaker closed
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
		if st.Sender != nil {
			inUse[st.Sender] = true
		}
	}
	for _, st := range old.endpoints {
		if next.byName[st.Name] == st || st.Sender == nil || inUse[st.Sender] {
			continue
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
		if prev := old.lookup(st.Name); prev != nil {
			was = prev.unusable
		}
		unusable := 0.0
		if st.unusable != "" {
			unusable = 1
		}
		r.m.unusable.WithLabelValues(st.Name).Set(unusable)
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
	err := errors.New("relay: already started")
	r.startOnce.Do(func() { err = r.start(ctx) })
	return err
}

func (r *Relay) start(ctx context.Context) error {
	if err := r.pool.Ping(ctx); err != nil {
		return fmt.Errorf("relay: ping database: %w", err)
	}
	var ok bool
	if err := r.pool.QueryRow(ctx, `SELECT to_regclass('outbox.deliveries') IS NOT NULL`).Scan(&ok); err != nil {
		return fmt.Errorf("relay: check schema: %w", err)
	}
	if !ok {
		return errors.New("relay: outbox schema not found: run `herald migrate` first")
	}
	claimCtx, stopClaiming := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	r.stopClaiming, r.cancelWork = stopClaiming, cancelWork
	r.outcomeCtx, r.cancelOutcomes = context.WithCancel(context.WithoutCancel(ctx))
	r.started = true

	go r.runClaimer(claimCtx)
	var workers sync.WaitGroup
	for range r.cfg.MaxInFlight {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.runWorker(workCtx)
		}()
	}
	go func() {
		workers.Wait()
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
	if r.cfg.VacuumThreshold >= 0 {
		r.background.Add(1)
		go func() {
			defer r.background.Done()
			r.every(claimCtx, vacuumCheckInterval, "vacuum", r.vacuumIfNeeded)
		}()
	}
	r.log.Info().Int("endpoints", len(r.cfg.Endpoints)).Int("max_in_flight", r.cfg.MaxInFlight).
		Dur("lease", r.cfg.Lease).Bool("listen", r.cfg.Listen).Msg("relay started")
	return nil
}

// Stop stops claiming, gives back claimed messages not yet attempted, lets
// requests in flight finish for up to Config.ShutdownTimeout (or until ctx
// ends), cancels what is left, and writes every outcome. It is safe to call
// more than once, and before Start.
func (r *Relay) Stop(ctx context.Context) error {
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
	r.background.Wait()
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

// signal wakes the claimer; it never blocks.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// runClaimer keeps the in-flight window full: it claims when the window is
// at most half full, as many rows as fit, and sleeps only when a claim
// comes back short, until a notification, a due retry or the poll interval.
func (r *Relay) runClaimer(ctx context.Context) {
	defer close(r.claimerDone)
	defer close(r.work)
	// Only the claimer queues pairs; a pair queued just as its endpoint's
	// last request ended waits for the next dispatch. There is none after
	// this, so hand every queued pair to the workers (which release them,
	// the relay stopping) before closing their channel.
	defer r.startAllQueued()
	window := int64(r.cfg.MaxInFlight)
	fanout := 1.0 // pairs per hot message, a running estimate
	var lastRetryPoll time.Time
	retryFull := false
	pollWait := r.cfg.PollInterval
	poll := time.NewTimer(0)
	defer poll.Stop()
	idle := time.NewTimer(0)
	defer idle.Stop()
	errBackoff := newErrorBackoff()
	for ctx.Err() == nil {
		// Claims fill the relay's window (max_in_flight) as it frees up,
		// but no faster than the endpoints can take pairs: with bounded
		// endpoints, a claim waits until one of the endpoints that can take
		// work is at most half full, and takes what fits, so that pairs wait
		// in memory for a slot rather than in the retry lane. Paused
		// endpoints neither add room nor hold claims back: their pairs are
		// recorded in the retry lane at no slot's cost.
		free := window - r.inFlight.Load()
		capacity, hungry := r.claimCapacity(time.Now())
		ready := free >= max(window/2, 1)
		if capacity >= 0 {
			free = min(free, int64(capacity))
			ready = hungry && free >= 1
		}
		if !ready {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(r.cfg.PollInterval)
			select {
			case <-r.room:
				continue // look again: claims wait for enough room, not any room
			case <-r.wake:
				signal(r.wake) // keep the news for when there is room
				select {
				case <-r.room:
				case <-idle.C:
				case <-ctx.Done():
				}
				continue
			case <-idle.C:
				// Probes of paused endpoints and lapsed leases need a claim
				// now and then, however busy the endpoints, while the
				// window has room.
				if window-r.inFlight.Load() < 1 {
					continue
				}
				free = max(free, 1)
			case <-ctx.Done():
				continue
			}
		}
		hotWant := max(1, int(float64(free)/fanout))
		retryWant := 0
		if retryFull || r.retryDue.Swap(false) || time.Since(lastRetryPoll) >= retryPollInterval {
			retryWant = max(1, int(free/4))
			lastRetryPoll = time.Now()
		}
		jobs, hotGot, retryGot, err := r.claim(ctx, hotWant, retryWant)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.m.dbErrors.WithLabelValues("claim").Inc()
			d := errBackoff.failed(r.log, err, "claim")
			sleep(ctx, d)
			continue
		}
		errBackoff.recovered(r.log, "claim")
		retryFull = retryWant > 0 && retryGot == retryWant
		hotPairs := r.dispatch(jobs)
		if hotGot > 0 {
			fanout = max(1, 0.8*fanout+0.2*float64(hotPairs)/float64(hotGot))
		}
		if hotGot == hotWant || retryFull {
			continue // more may be waiting
		}
		if hotGot > 0 {
			pollWait = min(busyPollInterval, r.cfg.PollInterval)
		} else {
			pollWait = min(2*pollWait, r.cfg.PollInterval)
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(pollWait)
		select {
		case <-poll.C:
		case <-r.wake:
		case <-ctx.Done():
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// claim claims from both lanes in one round trip.
func (r *Relay) claim(ctx context.Context, hotWant, retryWant int) (jobs []*job, hotGot, retryGot int, err error) {
	leaseMs := r.cfg.Lease.Milliseconds()
	token := rand.Int64()
	start := time.Now()
	// A request may start only while it is sure to end before the lease
	// does, by the relay's clock (which started counting before the
	// database's now()), with a second to spare for clock skew and for
	// writing the outcome.
	deadline := start.Add(r.cfg.Lease - attemptMargin)
	b := &pgx.Batch{}
	rt := r.router.Load()
	b.Queue(claimHotSQL, hotWant, leaseMs, token, len(rt.ordered) > 0, r.cfg.MaxInFlightBytes-r.inFlightBytes.Load())
	if retryWant > 0 {
		served := rt.claimable(start)
		b.Queue(retryClaimSQL(len(served)), retryWant, leaseMs, token, served, rt.ordered, rt.skipDead)
	}
	// A claim that has started runs to its end, even if the relay is
	// stopping: cancelled mid-way, it could commit on the server unseen, and
	// its rows would stay leased until the lease lapsed instead of being
	// released at once.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	br := r.pool.SendBatch(qctx, b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("claim: %w", cerr)
		}
	}()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("claim messages: %w", err)
	}
	// Route with the endpoints known now that the statement has run: its
	// snapshot is older than this, so every message it returns was
	// committed before any endpoint change this relay has not yet seen.
	rt = r.router.Load()
	for rows.Next() {
		j := &job{lane: hotLane, lease: token, deadline: deadline}
		var endpoint, headers string
		var held heldBy
		if err := rows.Scan(&j.seq, &j.msg.ID, &j.topic, &j.msg.Body, &j.key, &endpoint, &headers, &j.createdAt, &j.attempts,
			&held.olderInHotLane, &held.retrying, &held.dead); err != nil {
			rows.Close()
			return nil, 0, 0, fmt.Errorf("claim messages: scan: %w", err)
		}
		r.prepare(rt, j, endpoint, headers, &held)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("claim messages: %w", err)
	}
	hotGot = len(jobs)
	r.m.claimSeconds.WithLabelValues("hot").Observe(time.Since(start).Seconds())
	if retryWant > 0 {
		rows, err := br.Query()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("claim retries: %w", err)
		}
		for rows.Next() {
			j := &job{lane: retryLane, lease: token, deadline: deadline}
			var endpoint, headers string
			var elapsed float64
			var head bool
			if err := rows.Scan(&j.seq, &endpoint, &j.msg.ID, &j.topic, &j.msg.Body, &j.key, &headers, &j.createdAt, &j.attempts, &elapsed, &head); err != nil {
				rows.Close()
				return nil, 0, 0, fmt.Errorf("claim retries: scan: %w", err)
			}
			retryGot++
			if !head {
				continue // parked: an older message of its key comes first
			}
			j.elapsed = time.Duration(elapsed * float64(time.Second))
			r.prepareRetry(rt, j, endpoint, headers)
			jobs = append(jobs, j)
		}
		if err := rows.Err(); err != nil {
			return nil, 0, 0, fmt.Errorf("claim retries: %w", err)
		}
		r.m.claimSeconds.WithLabelValues("retry").Observe(time.Since(start).Seconds())
	}
	var size int64
	for _, j := range jobs {
		size += int64(len(j.msg.Body))
	}
	r.inFlightBytes.Add(size) // given back by the completer, job by job
	r.stats.claims.Add(1)
	r.stats.claimedRows.Add(int64(len(jobs)))
	r.m.claimed.WithLabelValues("hot").Add(float64(hotGot))
	r.m.claimed.WithLabelValues("retry").Add(float64(retryGot))
	return jobs, hotGot, retryGot, nil
}

// heldBy is what still holds a keyed message's key, as the claim saw it.
type heldBy struct {
	olderInHotLane bool     // an older message of the key waits in the hot lane
	retrying, dead []string // endpoints with an older pair of the key retrying, or dead
}

// holds reports whether an ordered endpoint must wait for an older message
// of the key before this one.
func (h *heldBy) holds(ep *endpointState) bool {
	return h.olderInHotLane || slices.Contains(h.retrying, ep.Name) ||
		(!ep.OnDeadSkip && slices.Contains(h.dead, ep.Name))
}

// prepare routes a hot message to its endpoints, or marks why it cannot go.
// A pair for an ordered endpoint whose key is held waits in the retry lane
// until it is the key's head.
//
// A message that cannot be sent as it is (invalid), or that names an
// endpoint this relay does not know (unroutable), dies for each endpoint it
// was for, never as a message of no endpoint: its dead rows block the key
// on ordered endpoints like any dead pair, and a replay goes there only.
func (r *Relay) prepare(rt *router, j *job, endpoint, headers string, held *heldBy) {
	valid := r.parseHeaders(j, headers)
	eps := rt.route(j.topic, endpoint)
	unknown := len(eps) == 0 && endpoint != ""
	if unknown {
		// No metrics of its own: the name comes from a producer's row.
		eps = []*endpointState{{Endpoint: &Endpoint{Name: endpoint}}}
	}
	if len(eps) == 0 {
		return // unroutable: no subscriber, no pairs
	}
	j.pairs = make([]pair, len(eps))
	for i, ep := range eps {
		p := &j.pairs[i]
		*p = pair{job: j, ep: ep}
		switch {
		case !valid:
			p.result, p.deadReason, p.errText = resultDead, "invalid", j.invalid
		case unknown:
			p.result, p.deadReason, p.errText = resultDead, "unroutable", "endpoint "+endpoint+" is not configured"
		case ep.Ordered && j.key != "" && held.holds(ep):
			p.result = resultBlocked
		}
	}
}

// prepareRetry binds a retry pair to its endpoint. An endpoint that is no
// longer configured keeps its pairs waiting: they are released, not killed,
// so that a configuration mistake loses nothing.
func (r *Relay) prepareRetry(rt *router, j *job, endpoint, headers string) {
	ep := rt.byName[endpoint]
	if ep == nil {
		ep = newEndpointState(&Endpoint{Name: endpoint}, r.m) // no Sender: released, to wait for it
	}
	if !r.parseHeaders(j, headers) {
		j.pairs = []pair{{job: j, ep: ep}}
		return
	}
	j.pairs = []pair{{job: j, ep: ep}}
}

func (r *Relay) parseHeaders(j *job, headers string) bool {
	if headers == "" {
		return true
	}
	h, err := webhook.ParseHeaders([]byte(headers))
	if err != nil {
		j.invalid = "headers: " + err.Error()
		return false
	}
	j.msg.Headers = h
	return true
}

// dispatch hands the claimed pairs the endpoints can take now to the
// workers, and everything else straight to the completer: jobs with nothing
// to send, and pairs deferred because their endpoint is paused, at its
// max_in_flight or has no rate-limit turn within paceHorizon (these wait in
// the retry lane, not attempted, so a slow or dead endpoint never holds up
// the others). A pair with a later turn goes to a worker that waits for it. It
// returns how many pairs of hot-lane messages took a slot (in flight or
// queued), for the claimer's fan-out estimate.
func (r *Relay) dispatch(jobs []*job) int {
	now := time.Now()
	var send []*pair
	queuedPairs, hotPairs := 0, 0
	for _, j := range jobs {
		j.remaining = len(j.pairs)
		if len(j.pairs) == 0 {
			j.remaining = 1
			r.results <- &pair{job: j}
			continue
		}
		for i := range j.pairs {
			p := &j.pairs[i]
			if p.result == resultBlocked || p.result == resultDead || j.invalid != "" {
				// Decided before any attempt.
				r.results <- p
				continue
			}
			if p.ep.unusable != "" {
				// Held, not lost: it waits in the retry lane, which
				// does not hand it out while the endpoint is unusable,
				// with the reason for operators to read.
				p.result, p.errText = resultDeferred, p.ep.unusable
				r.results <- p
				continue
			}
			if p.ep.Sender == nil {
				p.result = resultReleased
				r.results <- p
				continue
			}
			adm, wait := p.ep.admit(now)
			if wait > 0 {
				p.notBefore = now.Add(wait)
			}
			switch adm {
			case admittedProbe:
				p.probe = true
				fallthrough
			case admitted:
				send = append(send, p)
				if j.lane == hotLane {
					hotPairs++
				}
			case queued:
				queuedPairs++
				if j.lane == hotLane {
					hotPairs++
				}
				p.ep.enqueue(p)
			default:
				p.result = resultDeferred
				r.results <- p
			}
		}
	}
	r.inFlight.Add(int64(len(send) + queuedPairs))
	r.m.inFlight.Set(float64(r.inFlight.Load()))
	for _, p := range send {
		r.work <- p
	}
	// A queued pair whose endpoint finished everything in the meantime
	// would wait for a completion that never comes: start it here.
	r.startAllQueued()
	return hotPairs
}

func (r *Relay) startAllQueued() {
	rt := r.router.Load()
	for _, st := range rt.endpoints {
		r.startQueued(st)
	}
	for _, st := range rt.retired {
		r.startQueued(st)
	}
}

// startQueued hands the endpoint's queued pairs to workers while it has
// free slots.
func (r *Relay) startQueued(st *endpointState) {
	for {
		p, paused := st.next()
		if p == nil {
			return
		}
		if paused {
			p.result = resultDeferred
			r.finished(p)
			continue
		}
		r.work <- p
	}
}

// finished releases a pair's place in the window and passes it to the
// completer.
func (r *Relay) finished(p *pair) {
	r.inFlight.Add(-1)
	signal(r.room)
	r.results <- p
}

// claimCapacity is how many pairs the endpoints that can take work now
// (not paused nor disabled) have room for, in flight or queued; -1 when one
// of them is unbounded or none can take work (the window alone decides
// then). hungry reports whether one of them is at most half full.
func (r *Relay) claimCapacity(now time.Time) (free int, hungry bool) {
	active := 0
	for _, st := range r.router.Load().endpoints {
		f := st.freeCapacity(now)
		switch {
		case f < 0:
			return -1, true
		case f == 0 && st.stalled(now):
			continue // paused or disabled
		}
		active++
		free += f
		if f >= max(st.capacity()/2, 1) {
			hungry = true
		}
	}
	if active == 0 {
		return -1, true
	}
	return free, hungry
}

// runWorker makes delivery attempts. A pair is attempted only if the relay
// is not stopping and the attempt is sure to end while the lease holds;
// otherwise it is released untouched.
func (r *Relay) runWorker(ctx context.Context) {
	for p := range r.work {
		for p != nil {
			r.attempt(ctx, p)
			r.endpointDone(p)
			// The slot just freed goes to the endpoint's next queued pair,
			// on this worker.
			next, paused := p.ep.next()
			r.finished(p)
			for paused {
				next.result = resultDeferred
				r.finished(next)
				next, paused = p.ep.next()
			}
			if next == nil {
				p.ep.closeIfIdle() // the last request of a replaced endpoint
			}
			p = next
		}
	}
}

func (r *Relay) attempt(ctx context.Context, p *pair) {
	ep := p.ep
	if !r.awaitTurn(p.notBefore) || r.stopping.Load() || time.Now().Add(ep.Timeout).After(p.job.deadline) {
		p.result = resultReleased
		return
	}
	start := time.Now()
	err := ep.Sender.Deliver(ctx, &p.job.msg)
	ep.metrics.attemptSeconds.Observe(time.Since(start).Seconds())
	p.attempted = true
	if err == nil {
		p.result = resultOK
		return
	}
	p.result = resultRetry
	var de *webhook.DeliveryError
	if errors.As(err, &de) {
		p.status = de.Status
		p.errText = de.Reason
		p.response = string(de.Response)
		p.retryAfter = de.RetryAfter
		switch {
		case de.Gone:
			p.result, p.deadReason = resultDead, "gone"
		case !de.Retryable:
			p.result, p.deadReason = resultDead, "rejected"
		}
		return
	}
	if ctx.Err() != nil {
		p.errText = "cancelled: relay shutting down"
		return
	}
	p.errText = err.Error()
}

// awaitTurn waits until t, a rate-limited pair's turn (at most
// paceHorizon away). It returns false if the relay stops claiming first.
func (r *Relay) awaitTurn(t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.claimerDone:
		return false
	}
}

// endpointDone records the end of an attempt with the endpoint's breaker
// and logs its transitions.
func (r *Relay) endpointDone(p *pair) {
	if !p.attempted {
		p.ep.inFlight.Add(-1)
		p.ep.unprobe(p.probe)
		return
	}
	now := time.Now()
	unhealthy := p.result != resultOK &&
		(p.status == 0 || p.status >= 500 || p.status == 429 || p.status == 408)
	change, interval := p.ep.done(r.cfg.Breaker, unhealthy, p.probe, now)
	switch change {
	case breakerOpened:
		r.m.paused.WithLabelValues(p.ep.Name).Set(1)
		r.log.Warn().Str("endpoint", p.ep.Name).Int("failures", r.cfg.Breaker.FailureThreshold).
			Dur("probe_in", interval).Msg("endpoint paused: circuit breaker open; its messages wait, unattempted")
	case breakerStillOpen:
		r.log.Info().Str("endpoint", p.ep.Name).Dur("probe_in", interval).Msg("probe failed: endpoint stays paused")
		if ok, failingFor := p.ep.shouldDisable(r.cfg.DisableAfter, now); ok && r.cfg.OnDisable != nil {
			reason := fmt.Sprintf("failing for %s (breaker.disable_after %s)", failingFor.Round(time.Second), r.cfg.DisableAfter)
			r.log.Error().Str("endpoint", p.ep.Name).Str("reason", reason).
				Msg("DISABLING ENDPOINT: its messages wait until an operator runs `herald endpoints enable`")
			r.callbacks.Add(1)
			go func() {
				defer r.callbacks.Done()
				r.cfg.OnDisable(p.ep.Name, reason)
			}()
		}
	case breakerClosed:
		r.m.paused.WithLabelValues(p.ep.Name).Set(0)
		r.log.Info().Str("endpoint", p.ep.Name).Dur("paused_for", interval).Msg("probe succeeded: endpoint resumed")
		r.shiftClocks(p.ep.Name, interval)
	}
}
