package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	// Only the claimer queues pairs; a pair queued just as its endpoint's
	// last request ended waits for the next dispatch. There is none after
	// this, so hand every queued pair to a worker (which releases it, the
	// relay stopping) before saying the claimer is done: no worker starts
	// after that.
	defer r.startAllQueued()
	st := claimerState{fanout: 1, pollWait: r.cfg.PollInterval}
	poll := time.NewTimer(0)
	defer poll.Stop()
	idle := time.NewTimer(0)
	defer idle.Stop()
	errBackoff := newErrorBackoff()
	for ctx.Err() == nil {
		free, ok := r.awaitRoom(ctx, idle)
		if !ok {
			continue
		}
		more, err := r.claimOnce(ctx, free, &st)
		r.health.claimed(err)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.m.dbErrors.WithLabelValues("claim").Inc()
			sleep(ctx, errBackoff.failed(r.log, err, "claim"))
			continue
		}
		errBackoff.recovered(r.log, "claim")
		if more {
			continue
		}
		resetTimer(poll, st.pollWait)
		select {
		case <-poll.C:
		case <-r.wake:
		case <-ctx.Done():
		}
	}
}

// claimHealth is what Claiming reads: when the last claim succeeded and
// the latest claim's error, written once per claim without a lock. Turns
// of the loop that find no room write nothing: they can come once per
// finished request, and a clock read each time would cost more than the
// rest of the turn.
type claimHealth struct {
	at  atomic.Int64          // unix nanoseconds of the last claim that succeeded
	err atomic.Pointer[error] // the latest claim's error; nil once one succeeds
}

func (h *claimHealth) claimed(err error) {
	if err != nil {
		h.err.Store(&err)
		return
	}
	h.err.Store(nil)
	h.at.Store(time.Now().UnixNano())
}

// Claiming reports whether the relay is claiming, for readiness probes: nil
// while its latest claim succeeded, and either a claim succeeded within
// claimTimeout plus two poll intervals or requests are in flight (a relay
// whose window is full claims only as it frees up); otherwise why not.
func (r *Relay) Claiming() error {
	if r.stopping.Load() {
		return errors.New("the relay is stopping")
	}
	at := r.health.at.Load()
	if at == 0 {
		return errors.New("the relay has not claimed yet")
	}
	if err := r.health.err.Load(); err != nil {
		return fmt.Errorf("the latest claim failed: %w", *err)
	}
	age := time.Since(time.Unix(0, at))
	if age > claimTimeout+2*r.cfg.PollInterval && r.inFlight.Load() == 0 {
		return fmt.Errorf("no claim for %s with nothing in flight: the claimer is stuck", age.Round(time.Second))
	}
	return nil
}

// claimerState is what the claimer carries from one claim to the next.
type claimerState struct {
	fanout        float64 // pairs per hot message, a running estimate
	lastRetryPoll time.Time
	retryFull     bool          // the last retry claim took all it asked for
	pollWait      time.Duration // how long to wait after a short claim
}

// awaitRoom returns how many rows the next claim may take. Claims fill the
// relay's window (max_in_flight, max_in_flight_bytes) as it frees up, but no
// faster than the endpoints can take pairs: with bounded endpoints, a claim
// waits until one of the endpoints that can take work is at most half full,
// and takes what fits, so that pairs wait in memory for a slot rather than
// in the retry lane. Paused endpoints neither add room nor hold claims back:
// their pairs are recorded in the retry lane at no slot's cost. ok is false
// when the claimer should look again before claiming.
func (r *Relay) awaitRoom(ctx context.Context, idle *time.Timer) (free int64, ok bool) {
	window := int64(r.cfg.MaxInFlight)
	free = window - r.inFlight.Load()
	capacity, hungry := r.claimCapacity(time.Now())
	ready := free >= max(window/2, 1)
	if capacity >= 0 {
		free = min(free, int64(capacity))
		ready = hungry && free >= 1
	}
	if r.inFlightBytes.Load() >= r.cfg.MaxInFlightBytes {
		ready = false // the completer signals room as bytes are given back
	}
	if ready {
		return free, true
	}
	resetTimer(idle, r.cfg.PollInterval)
	select {
	case <-r.room:
		return 0, false // look again: claims wait for enough room, not any room
	case <-r.wake:
		signal(r.wake) // keep the news for when there is room
		select {
		case <-r.room:
		case <-idle.C:
		case <-ctx.Done():
		}
		return 0, false
	case <-idle.C:
		// Probes of paused endpoints and lapsed leases need a claim now and
		// then, however busy the endpoints, while the window has room.
		if window-r.inFlight.Load() < 1 {
			return 0, false
		}
		return max(free, 1), true
	case <-ctx.Done():
		return 0, false
	}
}

// claimOnce claims up to free rows from both lanes, hands them to the
// endpoints, and reports whether more may be waiting (the claim came back
// full). After a short claim it sets how long to wait: soon after a claim
// that found messages, doubling while claims find none, up to PollInterval.
func (r *Relay) claimOnce(ctx context.Context, free int64, st *claimerState) (more bool, err error) {
	if r.liveGeneration() == nil {
		// Lapsed: nothing is claimed until the heartbeat registers the
		// relay again, which wakes the claimer.
		st.pollWait = r.cfg.PollInterval
		return false, nil
	}
	hotWant := max(1, int(float64(free)/st.fanout))
	retryWant := 0
	if st.retryFull || r.retryDue.Swap(false) || time.Since(st.lastRetryPoll) >= retryPollInterval {
		retryWant = max(1, int(free/4))
		st.lastRetryPoll = time.Now()
	}
	jobs, hotGot, retryGot, err := r.claim(ctx, hotWant, retryWant)
	if err != nil {
		return false, err
	}
	r.signals.Claimed.signal(claimSignal{Hot: hotGot, Retry: retryGot, RetryLane: retryWant > 0})
	st.retryFull = retryWant > 0 && retryGot == retryWant
	hotPairs := r.dispatch(jobs)
	if hotGot > 0 {
		st.fanout = max(1, 0.8*st.fanout+0.2*float64(hotPairs)/float64(hotGot))
	}
	if hotGot == hotWant || st.retryFull {
		return true, nil
	}
	if hotGot > 0 {
		st.pollWait = min(busyPollInterval, r.cfg.PollInterval)
	} else {
		st.pollWait = min(2*st.pollWait, r.cfg.PollInterval)
	}
	return false, nil
}

// resetTimer makes t fire after d, whatever it was doing.
func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
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
	g := r.liveGeneration()
	if g == nil {
		return nil, 0, 0, nil
	}
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
	b.Queue(claimHotSQL, hotWant, leaseMs, token, len(rt.ordered) > 0, r.cfg.MaxInFlightBytes-r.inFlightBytes.Load(), g.id)
	if retryWant > 0 {
		served := rt.claimable(start)
		b.Queue(retryClaimSQL(len(served)), retryWant, leaseMs, token, served, rt.ordered, rt.skipDead, g.id)
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
	var takenOver int64
	for rows.Next() {
		j := &job{lane: hotLane, lease: token, deadline: deadline, gen: g}
		var endpoint, headers string
		var held heldBy
		if err := rows.Scan(&takenOver, &j.seq, &j.msg.ID, &j.topic, &j.msg.Body, &j.key, &endpoint, &headers, &j.createdAt, &j.attempts,
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
	if takenOver > 0 {
		r.m.takenOver.WithLabelValues("hot").Add(float64(takenOver))
		r.stats.takenOver.Add(takenOver)
	}
	r.m.claimSeconds.WithLabelValues("hot").Observe(time.Since(start).Seconds())
	if retryWant > 0 {
		rows, err := br.Query()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("claim retries: %w", err)
		}
		for rows.Next() {
			j := &job{lane: retryLane, lease: token, deadline: deadline, gen: g}
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
	r.traceClaim(ctx, start, jobs, hotGot, retryGot)
	r.stats.claims.Add(1)
	r.stats.claimedRows.Add(int64(len(jobs)))
	r.m.claimed.WithLabelValues("hot").Add(float64(hotGot))
	r.m.claimed.WithLabelValues("retry").Add(float64(retryGot))
	return jobs, hotGot, retryGot, nil
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
