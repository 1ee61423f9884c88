package migrations_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/migrations"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestUpDownUpRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, heraldtest.EmptyURL(t))
	require.ErrorIs(t, migrations.Check(ctx, conn), migrations.ErrNotMigrated)

	st, err := migrations.Migrate(ctx, conn, -1)
	require.NoError(t, err)
	require.Equal(t, int32(0), st.From)
	require.Equal(t, st.Latest, st.To)
	require.NoError(t, migrations.Check(ctx, conn))

	st, err = migrations.Migrate(ctx, conn, 0)
	require.NoError(t, err)
	require.Equal(t, int32(0), st.To)
	var tables int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'outbox' AND tablename <> 'schema_version'`).Scan(&tables))
	require.Zero(t, tables, "down to 0 drops every table the migrations created")

	st, err = migrations.Migrate(ctx, conn, -1)
	require.NoError(t, err)
	require.Equal(t, st.Latest, st.To)
	_, err = conn.Exec(ctx, `INSERT INTO outbox.messages (topic, payload, key) VALUES ('t', '{}', 'k')`)
	require.NoError(t, err, "the schema works after a round trip")
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.EmptyURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	froms := make([]int32, 4)
	for i := range errs {
		conn := connect(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := migrations.Migrate(ctx, conn, -1)
			errs[i], froms[i] = err, st.From
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	zero := 0
	for _, f := range froms {
		if f == 0 {
			zero++
		}
	}
	require.Equal(t, 1, zero, "exactly one run started from version 0; the others found it done")
}

func TestUpSQLIsPlainSQL(t *testing.T) {
	t.Parallel()
	ms, err := migrations.UpSQL()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for i, m := range ms {
		require.Equal(t, int32(i+1), m.Version)
		require.NotContains(t, m.UpSQL, "{{", "migrations must not use tern templates: %s", m.Name)
		require.True(t, strings.Contains(m.UpSQL, "outbox."), m.Name)
	}
}

// TestRetryHistoryOverData: migration 012 applies to a retry lane with
// pairs waiting (they keep every column, named_endpoint NULL: routed by
// topic) and goes down and up again without losing them.
func TestRetryHistoryOverData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, heraldtest.EmptyURL(t))
	_, err := migrations.Migrate(ctx, conn, 11)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload, endpoint) VALUES ('msg_hot', 't', '{}', 'a');
INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, created_at, attempts,
    first_attempt_at, last_attempt_at, next_attempt_at, last_status)
VALUES (1, 'a', 'msg_1', 't', '{"n": 1}', 'k', now(), 2, now(), now(), now(), 503)`)
	require.NoError(t, err)
	pairs := func() string {
		var s string
		require.NoError(t, conn.QueryRow(ctx, `SELECT string_agg(concat_ws(' ', seq, endpoint, id, payload::text, key, attempts, last_status), ',')
FROM outbox.deliveries`).Scan(&s))
		return s
	}
	before := pairs()

	st, err := migrations.Migrate(ctx, conn, 12)
	require.NoError(t, err)
	require.Equal(t, int32(12), st.To)
	require.Equal(t, before, pairs())
	var named *string
	require.NoError(t, conn.QueryRow(ctx, `SELECT named_endpoint FROM outbox.deliveries`).Scan(&named))
	require.Nil(t, named)

	_, err = migrations.Migrate(ctx, conn, 11)
	require.NoError(t, err)
	require.Equal(t, before, pairs(), "down keeps the pairs")
	var fn bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regproc('outbox.ack_retry_logged') IS NULL`).Scan(&fn))
	require.True(t, fn, "down drops the function")

	_, err = migrations.Migrate(ctx, conn, -1)
	require.NoError(t, err)
	require.Equal(t, before, pairs())
	var hot int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM outbox.messages`).Scan(&hot))
	require.Equal(t, 1, hot)
}
