package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// runProgress logs what the relay did every progressInterval, when it did
// something.
func (r *Relay) runProgress(ctx context.Context) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	var last Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := r.Stats()
		if st.Delivered == last.Delivered && st.Retried == last.Retried && st.Dead == last.Dead {
			continue
		}
		r.log.Info().Int64("delivered", st.Delivered-last.Delivered).Int64("retried", st.Retried-last.Retried).
			Int64("dead", st.Dead-last.Dead).Int64("in_flight", r.inFlight.Load()).
			Dur("interval", progressInterval).Msg("progress")
		last = st
	}
}

// orderSweepInterval is how often parked pairs are checked for a key that
// nothing holds any more, or an endpoint no longer ordered.
const orderSweepInterval = 2 * time.Second

// every runs op every interval until ctx ends: database errors are counted,
// logged with backoff and followed by one "recovered" line.
func (r *Relay) every(ctx context.Context, interval time.Duration, op string, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	eb := newErrorBackoff()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := fn(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.m.dbErrors.WithLabelValues(op).Inc()
			eb.failed(r.log, err, op)
			continue
		}
		eb.recovered(r.log, op)
	}
}

// sweep wakes parked pairs whose key is free (see sweepParkedSQL).
func (r *Relay) sweep(ctx context.Context) error {
	// It runs with no ordered endpoint too: pairs parked while an endpoint
	// was ordered must flow once it is not.
	rt := r.router.Load()
	tag, err := r.pool.Exec(ctx, sweepParkedSQL, rt.skipDead, rt.ordered)
	if err != nil {
		return fmt.Errorf("sweep parked: %w", err)
	}
	if tag.RowsAffected() > 0 {
		signal(r.wake)
	}
	return nil
}

// vacuumIfNeeded vacuums the hot tables when dead row versions pile up
// (see Config.VacuumThreshold). One relay at a time does it.
func (r *Relay) vacuumIfNeeded(ctx context.Context) error {
	rows, err := r.pool.Query(ctx, deadTuplesSQL)
	if err != nil {
		return fmt.Errorf("count dead tuples: %w", err)
	}
	var tables []string
	var dead []int64
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			rows.Close()
			return fmt.Errorf("count dead tuples: %w", err)
		}
		if n >= int64(r.cfg.VacuumThreshold) {
			tables, dead = append(tables, name), append(dead, n)
		}
	}
	if err := rows.Err(); err != nil || len(tables) == 0 {
		return err
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, vacuumLock).Scan(&locked); err != nil || !locked {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, vacuumLock) //nolint:errcheck
	for i, table := range tables {
		start := time.Now()
		// SKIP_LOCKED: never wait behind another VACUUM or a lock.
		if _, err := conn.Exec(ctx, "VACUUM (SKIP_LOCKED) outbox."+pgx.Identifier{table}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum outbox.%s: %w", table, err)
		}
		r.log.Debug().Str("table", table).Int64("dead_tuples", dead[i]).Dur("took", time.Since(start)).Msg("vacuumed")
	}
	return nil
}

// HistoryMaintenance is what one MaintainHistory run did.
type HistoryMaintenance struct {
	// Skipped is set when another relay held the lock and did the work.
	Skipped bool
	// Created and Dropped count daily partitions (of both history tables).
	Created, Dropped int
}

// MaintainHistory makes the history tables' daily partitions from today to
// a week ahead and drops those past Config.History.Retention. A relay runs
// it at Start; herald runs it again on maintenance.schedule, and a program
// using the library should run it at least weekly. One relay at a time
// does it: the others skip it.
func (r *Relay) MaintainHistory(ctx context.Context) (HistoryMaintenance, error) {
	var res HistoryMaintenance
	retention := r.cfg.History.Retention.Milliseconds()
	if r.cfg.History.Retention < 0 {
		retention = -1
	}
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, historyLockSQL, historyLock).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			res.Skipped = true
			return nil
		}
		if _, err := tx.Exec(ctx, historyLockTimeoutSQL); err != nil {
			return err
		}
		return tx.QueryRow(ctx, historyPartitionsSQL, historyDaysAhead+1, retention).Scan(&res.Created, &res.Dropped)
	})
	if err != nil {
		return HistoryMaintenance{}, fmt.Errorf("maintain history partitions: %w", err)
	}
	if res.Created+res.Dropped > 0 {
		r.log.Info().Int("created", res.Created).Int("dropped", res.Dropped).
			Dur("retention", r.cfg.History.Retention).Msg("history partitions maintained")
	}
	return res, nil
}
