package heraldtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Exec runs SQL that the test needs to succeed, such as rows it starts
// from.
func Exec(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("heraldtest: %v", err)
	}
}

// DeadIDs returns the message ids left in outbox.dead, each with its
// endpoint ("id@endpoint", "id@-" for none), in dead_id order.
func DeadIDs(tb testing.TB, pool *pgxpool.Pool) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT id || '@' || coalesce(endpoint, '-') FROM outbox.dead ORDER BY dead_id`)
	if err != nil {
		tb.Fatalf("heraldtest: %v", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("heraldtest: %v", err)
	}
	return ids
}
