// Package migrations holds Herald's database schema as plain SQL files,
// embedded in the binary, and applies them.
//
// Each file NNN_name.sql has its up migration above the line
// "---- create above / drop below ----" and its down migration below it
// (the format of github.com/jackc/tern). Teams that run their own migration
// tool can apply the files as they are (see `herald migrate print`).
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// FS returns the migration files.
func FS() fs.FS { return files }

// VersionTable records the applied version.
const VersionTable = "outbox.schema_version"

// lockKey is the session advisory lock held while migrating, so that two
// `herald migrate` runs (or relays starting together) never interleave.
// It is the first 8 bytes of sha256("herald migrate").
const lockKey int64 = 0x4865726d69677261

// Status is the schema version before and after a migration run.
type Status struct {
	From, To, Latest int32
}

// Migrate brings the schema up to the latest version (target < 0) or to the
// given version, holding an advisory lock for the whole run. It is a no-op
// when the schema is already at the target.
func Migrate(ctx context.Context, conn *pgx.Conn, target int32) (Status, error) {
	var st Status
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return st, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// A cancelled ctx must not leave the session lock held on a pooled connection.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS outbox"); err != nil {
		return st, fmt.Errorf("migrate: create schema: %w", err)
	}
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return st, err
	}
	st.Latest = int32(len(m.Migrations))
	if st.From, err = m.GetCurrentVersion(ctx); err != nil {
		return st, fmt.Errorf("migrate: current version: %w", err)
	}
	if target < 0 {
		target = st.Latest
	}
	if err := m.MigrateTo(ctx, target); err != nil {
		return st, fmt.Errorf("migrate: %w", err)
	}
	if st.To, err = m.GetCurrentVersion(ctx); err != nil {
		return st, fmt.Errorf("migrate: current version: %w", err)
	}
	return st, nil
}

// Current returns the applied version and the latest one known to this binary.
// A database that was never migrated is at version 0.
func Current(ctx context.Context, conn *pgx.Conn) (Status, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return Status{}, fmt.Errorf("schema version: %w", err)
	}
	latest, err := latestVersion()
	if err != nil {
		return Status{}, err
	}
	st := Status{Latest: latest}
	if !exists {
		return st, nil
	}
	if err := conn.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&st.From); err != nil {
		return Status{}, fmt.Errorf("schema version: %w", err)
	}
	st.To = st.From
	return st, nil
}

// ErrNotMigrated is returned by Check when the schema is behind the binary.
var ErrNotMigrated = errors.New("database schema is not up to date: run `herald migrate`")

// Check returns ErrNotMigrated (wrapped, with the versions) unless the schema
// is at the latest version.
func Check(ctx context.Context, conn *pgx.Conn) error {
	st, err := Current(ctx, conn)
	if err != nil {
		return err
	}
	if st.From != st.Latest {
		return fmt.Errorf("%w (database at version %d, herald needs %d)", ErrNotMigrated, st.From, st.Latest)
	}
	return nil
}

// UpSQL returns the up migrations, in order, for teams that apply them with
// their own tools.
func UpSQL() ([]Migration, error) {
	m := &migrate.Migrator{}
	if err := m.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	out := make([]Migration, 0, len(m.Migrations))
	for _, mg := range m.Migrations {
		out = append(out, Migration{Version: mg.Sequence, Name: mg.Name, UpSQL: mg.UpSQL, DownSQL: mg.DownSQL})
	}
	return out, nil
}

// Migration is one step of the schema.
type Migration struct {
	Version        int32
	Name           string
	UpSQL, DownSQL string
}

func latestVersion() (int32, error) {
	ms, err := UpSQL()
	if err != nil {
		return 0, err
	}
	return int32(len(ms)), nil
}

func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrate: version table: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("migrate: load: %w", err)
	}
	return m, nil
}
