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
)

func cmdDead(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dead list|replay|purge", errUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	var f deadFilter
	fs.StringVar(&f.id, "id", "", "only the message with this id")
	fs.StringVar(&f.endpoint, "endpoint", "", "only messages dead for this endpoint")
	fs.StringVar(&f.reason, "reason", "", "only this reason: exhausted, gone, rejected, unroutable, invalid")
	limit := fs.Int("limit", 50, "list at most this many")
	all := fs.Bool("all", false, "replay every dead message (without --id, --endpoint or --reason)")
	olderThan := fs.Duration("older-than", 0, "purge messages dead for longer than this")
	sourceName := fs.String("source", "", "the source (database) to act on; required with several sources")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "list":
		return listDead(ctx, g, pool, f, *limit)
	case "replay":
		if f.empty() && !*all {
			return fmt.Errorf("%w: dead replay needs --id, --endpoint, --reason or --all", errUsage)
		}
		n, err := replayDead(ctx, pool, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "replayed %d dead messages\n", n)
	case "purge":
		if *olderThan <= 0 {
			return fmt.Errorf("%w: dead purge needs --older-than DURATION", errUsage)
		}
		n, err := purgeDead(ctx, pool, *olderThan)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "purged %d dead messages\n", n)
	default:
		return fmt.Errorf("%w: unknown dead command %q", errUsage, sub)
	}
	return nil
}

type deadFilter struct{ id, endpoint, reason string }

func (f deadFilter) empty() bool { return f == deadFilter{} }

// deadWhere selects dead rows by filter; an empty field matches everything.
const deadWhere = `($1 = '' OR id = $1) AND ($2 = '' OR endpoint = $2) AND ($3 = '' OR reason = $3)`

func listDead(ctx context.Context, g *globals, pool *pgxpool.Pool, f deadFilter, limit int) error {
	rows, err := pool.Query(ctx, `SELECT dead_id, id, topic, coalesce(endpoint, '-'), reason, attempts,
		coalesce(last_status::text, '-'), coalesce(last_error, ''), died_at
		FROM outbox.dead WHERE `+deadWhere+` ORDER BY dead_id DESC LIMIT $4`, f.id, f.endpoint, f.reason, limit)
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

// replayDeadSQL puts dead rows back in one transaction: pairs that died for
// an endpoint go to the retry lane, due now, with a fresh retry budget;
// messages that never had an endpoint (unroutable, invalid) go back to the
// hot lane to be routed again.
const replayDeadSQL = `WITH revived AS (
    DELETE FROM outbox.dead WHERE ` + deadWhere + ` RETURNING *
), to_retry AS (
    INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
        first_attempt_at, last_attempt_at, next_attempt_at, last_status, last_error, last_response)
    SELECT seq, endpoint, id, topic, payload, key, headers, created_at, 0,
        now(), coalesce(last_attempt_at, now()), now(), last_status, last_error, last_response
    FROM revived WHERE endpoint IS NOT NULL
    ON CONFLICT (seq, endpoint) DO NOTHING
), to_route AS (
    INSERT INTO outbox.messages (id, topic, payload, key, headers, created_at)
    SELECT id, topic, payload, key, headers, created_at FROM revived WHERE endpoint IS NULL
    ON CONFLICT (id) DO NOTHING
)
SELECT count(*) FROM revived`

func replayDead(ctx context.Context, pool *pgxpool.Pool, f deadFilter) (int64, error) {
	var n int64
	if err := pool.QueryRow(ctx, replayDeadSQL, f.id, f.endpoint, f.reason).Scan(&n); err != nil {
		return 0, fmt.Errorf("replay dead: %w", err)
	}
	return n, nil
}

// purgeLock makes one relay at a time purge.
const purgeLock int64 = 0x4865726170757267

// purgeDead deletes dead rows older than olderThan, in chunks so that no
// transaction grows large, under an advisory lock so one process does it.
func purgeDead(ctx context.Context, pool *pgxpool.Pool, olderThan time.Duration) (int64, error) {
	const chunk = 5000
	var total int64
	for range 10000 { // at most 50M rows per run
		var n int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, purgeLock).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				return errPurgeBusy
			}
			tag, err := tx.Exec(ctx, `DELETE FROM outbox.dead WHERE dead_id IN (
				SELECT dead_id FROM outbox.dead WHERE died_at < now() - $1 * interval '1 millisecond' LIMIT $2)`,
				olderThan.Milliseconds(), chunk)
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
