package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-relay/herald/migrations"
)

// staleVariants are the stale phase's preparations of a fresh backlog, in
// the order each round drains them (see drainSpec.prep): none is what a
// relay meets when a backlog was inserted faster than autovacuum's ANALYZE
// came; the others take one cost away each: count the first reads' hint
// bits, nobitmap the plan PostgreSQL picks without statistics, "" both.
var staleVariants = []string{"none", "", "count", "nobitmap"}

// staleStats drains a backlog committed into a fresh database, with the
// relay started at once, against the same after ANALYZE and the two
// halves of what ANALYZE changes, interleaved over the rounds.
func (b *bench) staleStats(ctx context.Context) error {
	for round := 1; round <= b.opt.rounds; round++ {
		for _, v := range staleVariants {
			label := "stale: " + map[string]string{
				"none":     "fresh table, no ANALYZE",
				"":         "after ANALYZE",
				"count":    "after SELECT count(*) (hint bits set), no ANALYZE",
				"nobitmap": "no ANALYZE, enable_bitmapscan off",
			}[v]
			if b.opt.rounds > 1 {
				label += fmt.Sprintf(" (round %d)", round)
			}
			var r DrainResult
			err := b.inFreshDB(ctx, b.opt.dbName+"_stale", func() error {
				var err error
				r, err = b.drain(ctx, drainSpec{label: label, n: b.opt.staleN, slice: b.opt.staleN, relays: 1, recv: b.recv, prep: v})
				return err
			})
			if err != nil {
				return err
			}
			r.Round = round
			b.logDrain(r)
			b.res.Stale = append(b.res.Stale, r)
		}
	}
	return nil
}

// prepare does to a preloaded backlog what drainSpec.prep says.
func (b *bench) prepare(ctx context.Context, prep string) error {
	var err error
	switch prep {
	case "":
		err = b.analyze(ctx)
	case "none":
	case "count":
		_, err = b.pool.Exec(ctx, "SELECT count(*) FROM outbox.messages")
	case "nobitmap":
		// For the relay's sessions, which start after this.
		_, err = b.pool.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{b.pool.Config().ConnConfig.Database}.Sanitize()+" SET enable_bitmapscan = off")
	default:
		err = fmt.Errorf("unknown backlog preparation %q", prep)
	}
	if err != nil {
		return fmt.Errorf("prepare the backlog (%s): %w", prep, err)
	}
	return nil
}

// inFreshDB runs f with the bench's database swapped for a new, migrated
// one named name, which it drops afterwards: no statistics, no visibility
// map, no hint bits from an earlier phase.
func (b *bench) inFreshDB(ctx context.Context, name string, f func() error) error {
	admin, err := pgx.Connect(ctx, b.opt.adminDSN)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)") //nolint:errcheck
	u, err := url.Parse(b.opt.adminDSN)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	pool, err := migratedPool(ctx, u.String())
	if err != nil {
		return err
	}
	defer pool.Close()
	dsn, mainPool := b.dsn, b.pool
	b.dsn, b.pool = u.String(), pool
	defer func() { b.dsn, b.pool = dsn, mainPool }()
	return f()
}

// migratedPool migrates the empty database at dsn and opens a pool on it.
func migratedPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	_, err = migrations.Migrate(ctx, conn, -1)
	conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return pgxpool.New(ctx, dsn)
}
