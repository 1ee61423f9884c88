package webhook

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresTableDefault is the table PostgresStore uses when none is given.
const PostgresTableDefault = "webhook_processed_messages"

// PostgresDB is what PostgresStore needs from a database handle.
// *pgxpool.Pool and *pgx.Conn satisfy it.
type PostgresDB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PostgresStore is a Store whose unit of work is a pgx transaction: the
// receiving application makes its changes in the same transaction that
// records the message id, so both commit or neither does.
//
// Concurrent deliveries of one id are serialised by the table's primary
// key: the second INSERT waits on the first's uncommitted row, then either
// sees the conflict (duplicate) or, after a rollback, inserts. This holds at
// PostgreSQL's default READ COMMITTED isolation and above.
type PostgresStore struct {
	db    PostgresDB
	table string // sanitized, possibly schema-qualified
	index string // sanitized, unqualified
	claim string
	prune string
}

// NewPostgresStore returns a PostgresStore on db recording ids in table,
// which may be schema-qualified ("receiver.processed"). An empty table
// selects PostgresTableDefault. Create the table with CreateTable or with
// the statements from SchemaSQL.
func NewPostgresStore(db PostgresDB, table string) (*PostgresStore, error) {
	if table == "" {
		table = PostgresTableDefault
	}
	parts := strings.Split(table, ".")
	for _, p := range parts {
		if p == "" || len(parts) > 2 {
			return nil, fmt.Errorf("postgres store: table: want name or schema.name, got %q", table)
		}
	}
	t := pgx.Identifier(parts).Sanitize()
	s := &PostgresStore{
		db:    db,
		table: t,
		index: pgx.Identifier{parts[len(parts)-1] + "_received_at_idx"}.Sanitize(),
		// Relies on the primary key: a conflicting uncommitted row makes this
		// statement wait for that transaction's outcome.
		claim: `INSERT INTO ` + t + ` (id, received_at) VALUES ($1, now()) ON CONFLICT (id) DO NOTHING`,
		// Uses the received_at index.
		prune: `DELETE FROM ` + t + ` WHERE received_at < now() - make_interval(secs => $1)`,
	}
	return s, nil
}

// SchemaSQL returns the DDL for the store's table, for teams that apply
// migrations with their own tool. It is idempotent.
func (s *PostgresStore) SchemaSQL() string {
	return `-- Message ids a webhook receiver has processed (Herald's webhook-id).
CREATE TABLE IF NOT EXISTS ` + s.table + ` (
    id          text        PRIMARY KEY,
    -- Start of the transaction that processed the message; Prune reads it.
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ` + s.index + ` ON ` + s.table + ` (received_at);
`
}

// CreateTable creates the store's table and index if they do not exist.
func (s *PostgresStore) CreateTable(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, s.SchemaSQL()); err != nil {
		return fmt.Errorf("create webhook table: %w", err)
	}
	return nil
}

// Begin starts a transaction and records id in it. See Store for the
// contract. On success the caller owns the transaction.
func (s *PostgresStore) Begin(ctx context.Context, id string) (pgx.Tx, bool, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("begin: %w", err)
	}
	tag, err := tx.Exec(ctx, s.claim, id)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, false, fmt.Errorf("claim message id: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Already processed. Nothing was written, so rolling back is enough.
		if err := tx.Rollback(ctx); err != nil {
			return nil, false, fmt.Errorf("end duplicate: %w", err)
		}
		return nil, true, nil
	}
	return tx, false, nil
}

// Prune deletes ids recorded more than olderThan ago and returns how many
// it deleted. A pruned id that is delivered again is processed again, so
// keep ids longer than the sender may retry a message (Herald's retry
// schedule plus its dead-letter replays).
func (s *PostgresStore) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.db.Exec(ctx, s.prune, olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune webhook ids: %w", err)
	}
	return tag.RowsAffected(), nil
}
