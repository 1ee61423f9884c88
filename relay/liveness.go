package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A relay proves it is alive with a row in outbox.relays that it renews
// every HeartbeatInterval (renewSQL); claims record it as the holder of the
// rows they take. Each relay learns the other relays' alive_until from its
// own heartbeats and, as the earliest passes, declares that relay dead if it
// has not renewed meanwhile (reapSQL); claims then take over its rows at
// once instead of waiting out their lease.
//
// The safety half is here: a relay holds its rows only while it can prove
// it is alive. Its watchdog cancels every request in flight, and no request
// starts, once HeartbeatTimeout - heartbeatMargin has passed, by the
// relay's monotonic clock, since it sent its last heartbeat that succeeded.
// That is before PostgreSQL, counting HeartbeatTimeout from a later moment
// (its own now() when the heartbeat ran), lets another relay see it dead.
// The argument in full is in docs/guarantees.md.

// generation is one registration of the relay in outbox.relays. A relay
// that lapses never renews it: it registers a new one, and its old rows are
// then anyone's to take.
type generation struct {
	id int64
	// ctx ends when the relay can no longer prove it is alive under id:
	// the attempts of the rows claimed under it are cancelled.
	ctx    context.Context
	cancel context.CancelFunc
	// fence is the relay's deadline, as monotonic time since Relay.epoch:
	// no attempt of this generation runs past it.
	fence atomic.Int64
	// watchdog fires at fence and cancels ctx unless a heartbeat moved the
	// fence on meanwhile.
	watchdog *time.Timer
}

// now is the relay's monotonic clock, the one fences are kept in.
func (r *Relay) now() time.Duration { return time.Since(r.epoch) }

// holds reports whether the relay may still deliver the rows it claimed
// under g.
func (r *Relay) holds(g *generation) bool {
	return g != nil && g.ctx.Err() == nil && r.now() < time.Duration(g.fence.Load())
}

// liveGeneration is the generation claims are made under, nil while the
// relay is not registered.
func (r *Relay) liveGeneration() *generation {
	if g := r.gen.Load(); r.holds(g) {
		return g
	}
	return nil
}

// register adds the relay to outbox.relays under a new random id and makes
// it the generation claims are made under.
func (r *Relay) register(ctx context.Context) error {
	id := rand.Int64()
	sent := r.now()
	if err := r.syncExec(ctx, registerSQL, id, r.cfg.HeartbeatTimeout.Milliseconds()); err != nil {
		return fmt.Errorf("register relay: %w", err)
	}
	g := &generation{id: id}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.fence.Store(int64(sent + r.cfg.HeartbeatTimeout - heartbeatMargin))
	g.watchdog = time.AfterFunc(time.Duration(g.fence.Load())-r.now(), func() { r.watch(g) })
	if old := r.gen.Swap(g); old != nil {
		old.lapse()
	}
	r.log.Info().Int64("relay_id", id).Msg("relay registered")
	signal(r.wake)
	return nil
}

// watch is the watchdog: at the fence, it ends the generation, unless a
// heartbeat has moved the fence on; then it waits for the new one.
func (r *Relay) watch(g *generation) {
	if left := time.Duration(g.fence.Load()) - r.now(); left > 0 && g.ctx.Err() == nil {
		g.watchdog.Reset(left)
		return
	}
	if g.ctx.Err() == nil {
		r.m.lapses.Inc()
		// late is how much of heartbeatMargin the watchdog itself used up.
		r.log.Error().Int64("relay_id", g.id).Dur("heartbeat_timeout", r.cfg.HeartbeatTimeout).
			Dur("late", r.now()-time.Duration(g.fence.Load())).
			Msg("no heartbeat reached PostgreSQL in time: cancelling requests in flight; their messages will be delivered again")
	}
	g.cancel()
}

// lapse ends the generation now.
func (g *generation) lapse() {
	g.watchdog.Stop()
	g.cancel()
}

// heartbeat renews the live generation, or registers a new one if it has
// lapsed, then declares dead the relays that lapsed. next is as reap's.
func (r *Relay) heartbeat(ctx context.Context) (next time.Duration, err error) {
	g := r.gen.Load()
	if !r.holds(g) {
		if err := r.register(ctx); err != nil {
			return -1, err
		}
	} else {
		sent := r.now()
		tag, err := r.syncExecTag(ctx, renewSQL, g.id, r.cfg.HeartbeatTimeout.Milliseconds())
		switch {
		case err != nil:
			return -1, fmt.Errorf("heartbeat: %w", err)
		case tag.RowsAffected() == 0:
			r.m.lapses.Inc()
			r.log.Error().Int64("relay_id", g.id).Msg("declared dead by another relay: cancelling requests in flight and registering again")
			g.lapse()
			if err := r.register(ctx); err != nil {
				return -1, err
			}
		default:
			fence := int64(sent + r.cfg.HeartbeatTimeout - heartbeatMargin)
			for old := g.fence.Load(); old < fence && !g.fence.CompareAndSwap(old, fence); old = g.fence.Load() {
			}
		}
	}
	return r.reap(ctx)
}

// reap declares dead the relays whose heartbeat lapsed and makes their
// retry-lane pairs due (see reapSQL). next is how long until the earliest
// alive_until of the other live relays passes, negative if there is none.
func (r *Relay) reap(ctx context.Context) (next time.Duration, err error) {
	var self int64
	if g := r.gen.Load(); g != nil {
		self = g.id
	}
	var dead, rescued int64
	var nextMs *float64
	conn, err := r.beat.get(ctx)
	if err != nil {
		return -1, fmt.Errorf("reap dead relays: %w", err)
	}
	if err := conn.QueryRow(ctx, reapSQL, r.cfg.Lease.Milliseconds(), self).Scan(&dead, &rescued, &nextMs); err != nil {
		r.beat.failed()
		return -1, fmt.Errorf("reap dead relays: %w", err)
	}
	next = -1
	if nextMs != nil {
		next = time.Duration(*nextMs * float64(time.Millisecond))
	}
	if dead == 0 {
		return next, nil
	}
	r.m.takenOver.WithLabelValues("retry").Add(float64(rescued))
	r.stats.takenOver.Add(rescued)
	r.log.Warn().Int64("relays", dead).Int64("retry_pairs", rescued).
		Msg("relays declared dead (no heartbeat within heartbeat_timeout): their messages are taken over")
	r.retryDue.Store(true)
	signal(r.wake)
	return next, nil
}

// runHeartbeat sends a heartbeat every HeartbeatInterval until ctx ends,
// and reaps again as the earliest alive_until of the other relays passes:
// a relay that died is declared dead then, not up to a HeartbeatInterval
// later, and its rows are claimed at once. While the others renew, each
// heartbeat pushes that moment on, and the extra reap never runs.
func (r *Relay) runHeartbeat(ctx context.Context) {
	beat := time.NewTicker(r.cfg.HeartbeatInterval)
	defer beat.Stop()
	// The first reap is at once: a relay that starts takes over the dead
	// relays' rows without waiting for its first heartbeat.
	due := time.NewTimer(0)
	defer due.Stop()
	eb := newErrorBackoff()
	for {
		var op string
		var fn func(context.Context) (time.Duration, error)
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			op, fn = "heartbeat", r.heartbeat
		case <-due.C:
			op, fn = "reap", r.reap
		}
		// A heartbeat that takes longer than the timeout proves nothing.
		hctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatTimeout)
		next, err := fn(hctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.m.dbErrors.WithLabelValues(op).Inc()
			eb.failed(r.log, err, op)
			continue // the next heartbeat reaps, and schedules again
		}
		eb.recovered(r.log, op)
		if next >= 0 {
			// next was counted from the statement's now(), before its
			// answer arrived: the timer fires after that alive_until.
			resetTimer(due, next+time.Millisecond)
		}
	}
}

// retire ends the relay's liveness once it has nothing in flight.
func (r *Relay) retire(ctx context.Context) {
	g := r.gen.Swap(nil)
	if g == nil {
		return
	}
	g.lapse()
	if err := r.syncExec(ctx, retireSQL, g.id); err != nil {
		r.log.Warn().Err(err).Int64("relay_id", g.id).Msg("could not retire the relay: its rows are taken over after heartbeat_timeout")
	}
	r.beat.close(ctx)
}

// beatConn is the liveness statements' own connection, outside the pool,
// as the listener's is. In the pool, a heartbeat would wait behind claims,
// outcome flushes, maintenance and the admin API's long reads whenever
// they hold every connection, and the relay would lapse, cancelling every
// request in flight, while PostgreSQL answers at once. It is used by one
// goroutine at a time: Start registers, then runHeartbeat owns it, then
// Stop retires and closes it.
type beatConn struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn // nil until needed, and after an error
}

// get returns the connection, connecting first if there is none.
func (b *beatConn) get(ctx context.Context) (*pgx.Conn, error) {
	if b.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, b.cfg.Copy())
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		b.conn = conn
	}
	return b.conn, nil
}

// failed drops the connection after an error: a statement cut off by its
// deadline leaves it closed or in doubt, and the next use connects again.
func (b *beatConn) failed() { b.close(context.Background()) }

func (b *beatConn) close(ctx context.Context) {
	if b.conn != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = b.conn.Close(ctx)
		b.conn = nil
	}
}

// syncExec runs a liveness write with synchronous commit whatever the
// pool's setting (relay.async_commit): a heartbeat lost in a crash would let
// other relays see the relay dead before its own deadline.
func (r *Relay) syncExec(ctx context.Context, sql string, args ...any) error {
	_, err := r.syncExecTag(ctx, sql, args...)
	return err
}

func (r *Relay) syncExecTag(ctx context.Context, sql string, args ...any) (tag pgconn.CommandTag, err error) {
	conn, err := r.beat.get(ctx)
	if err != nil {
		return tag, err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, syncCommitSQL); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		r.beat.failed()
	}
	return tag, err
}
