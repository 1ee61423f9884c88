package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-relay/herald/outbox"
)

// deadListLimitDefault is how many dead messages `dead list` shows unless
// --limit says otherwise.
const deadListLimitDefault = 50

func cmdDead(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dead list|replay|purge", errUsage)
	}
	sub, args := args[0], args[1:]
	// Each subcommand defines only the flags it honours, so that a flag it
	// would ignore (purge --limit) is refused by name instead of widening
	// what it acts on.
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	var f deadFilter
	fs.StringVar(&f.id, "id", "", "only the message with this id")
	fs.StringVar(&f.endpoint, "endpoint", "", "only messages dead for this endpoint")
	fs.StringVar(&f.reason, "reason", "", "only this reason: exhausted, gone, rejected, unroutable, invalid")
	sourceName := fs.String("source", "", "the source (database) to act on; required with several sources")
	var limit int
	var all bool
	var olderThan time.Duration
	switch sub {
	case "list":
		fs.IntVar(&limit, "limit", deadListLimitDefault, "list at most this many")
	case "replay":
		fs.IntVar(&limit, "limit", 0, "replay at most this many, oldest first (0: every one selected)")
		fs.BoolVar(&all, "all", false, "replay every dead message (without --id, --endpoint or --reason)")
	case "purge":
		fs.DurationVar(&olderThan, "older-than", 0, "purge messages dead for longer than this")
	default:
		return fmt.Errorf("%w: unknown dead command %q", errUsage, sub)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: dead %s: unexpected argument %q", errUsage, sub, fs.Arg(0))
	}
	if limit < 0 {
		return fmt.Errorf("%w: dead %s: --limit must not be negative (got %d)", errUsage, sub, limit)
	}
	switch {
	case sub == "replay" && f.empty() && !all:
		return fmt.Errorf("%w: dead replay needs --id, --endpoint, --reason or --all", errUsage)
	case sub == "purge" && olderThan <= 0:
		return fmt.Errorf("%w: dead purge needs --older-than DURATION", errUsage)
	}
	_, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "list":
		return listDead(ctx, g, pool, f, limit)
	case "replay":
		res, err := replayDead(ctx, pool, f, limit)
		if err != nil {
			return err
		}
		res.print(g)
	case "purge":
		n, err := purgeDead(ctx, pool, f, olderThan)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "purged %d dead messages\n", n)
	}
	return nil
}

type deadFilter struct{ id, endpoint, reason string }

func (f deadFilter) empty() bool { return f == deadFilter{} }

func listDead(ctx context.Context, g *globals, pool *pgxpool.Pool, f deadFilter, limit int) error {
	rows, err := pool.Query(ctx, listDeadSQL, f.id, f.endpoint, f.reason, limit)
	if err != nil {
		return fmt.Errorf("list dead: %w", err)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD_ID\tMESSAGE_ID\tTOPIC\tENDPOINT\tREASON\tATTEMPTS\tSTATUS\tDIED_AT\tLAST_ERROR")
	n := 0
	for rows.Next() {
		var deadID int64
		var id, topic, endpoint, reason, status, lastErr string
		var attempts int
		var diedAt time.Time
		if err := rows.Scan(&deadID, &id, &topic, &endpoint, &reason, &attempts, &status, &lastErr, &diedAt); err != nil {
			return fmt.Errorf("list dead: %w", err)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", deadID, id, topic, endpoint, reason, attempts, status,
			diedAt.UTC().Format(time.RFC3339), lastErr)
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list dead: %w", err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(g.stdout, "(no dead messages)")
	}
	return nil
}

// replayResult is what a replay did: how many dead rows it put back, and
// those it left in outbox.dead, with why.
type replayResult struct {
	replayed int
	skipped  []skippedDead
}

type skippedDead struct {
	deadID            int64
	id, endpoint, why string
}

func (r replayResult) print(g *globals) {
	fmt.Fprintf(g.stdout, "replayed %d dead messages\n", r.replayed)
	if len(r.skipped) == 0 {
		return
	}
	fmt.Fprintf(g.stdout, "skipped %d (left in outbox.dead):\n", len(r.skipped))
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD_ID\tMESSAGE_ID\tENDPOINT\tWHY")
	for _, s := range r.skipped {
		endpoint := s.endpoint
		if endpoint == "" {
			endpoint = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.deadID, s.id, endpoint, s.why)
	}
	_ = tw.Flush()
}

// replayDead puts back the oldest limit (0: every) dead rows f selects (see
// replayDeadSQL) and wakes the relays when it put any back.
func replayDead(ctx context.Context, pool *pgxpool.Pool, f deadFilter, limit int) (replayResult, error) {
	var res replayResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		res = replayResult{}
		rows, err := tx.Query(ctx, replayDeadSQL, f.id, f.endpoint, f.reason, limit)
		if err != nil {
			return err
		}
		var s skippedDead
		_, err = pgx.ForEachRow(rows, []any{&s.deadID, &s.id, &s.endpoint, &s.why}, func() error {
			if s.why == "" {
				res.replayed++
			} else {
				res.skipped = append(res.skipped, s)
			}
			return nil
		})
		if err != nil || res.replayed == 0 {
			return err
		}
		_, err = tx.Exec(ctx, wakeSQL, outbox.NotifyChannel)
		return err
	})
	if err != nil {
		return replayResult{}, fmt.Errorf("replay dead: %w", err)
	}
	return res, nil
}

// purgeLock makes one relay at a time purge.
const purgeLock int64 = 0x4865726170757267

// purgeDead deletes the dead rows f selects that died more than olderThan
// ago, in chunks so that no transaction grows large, under an advisory lock
// so one process does it.
func purgeDead(ctx context.Context, pool *pgxpool.Pool, f deadFilter, olderThan time.Duration) (int64, error) {
	const chunk = 5000
	var total int64
	for range 10000 { // at most 50M rows per run
		var n int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, purgeLockSQL, purgeLock).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				return errPurgeBusy
			}
			tag, err := tx.Exec(ctx, purgeDeadSQL, f.id, f.endpoint, f.reason, olderThan.Milliseconds(), chunk)
			n = tag.RowsAffected()
			return err
		})
		if errors.Is(err, errPurgeBusy) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("purge dead: %w", err)
		}
		total += n
		if n < chunk {
			break
		}
	}
	return total, nil
}

var errPurgeBusy = errors.New("another process is purging")
