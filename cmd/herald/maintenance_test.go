package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestMaintenanceDropsHistoryPastRetention: maintenance.schedule runs the
// history partitions' upkeep, also with maintenance.dead_retention 0 (no
// purge of dead messages to schedule): a day past history.retention that
// appears while herald runs is dropped at the next run.
func TestMaintenanceDropsHistoryPastRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	var logs syncBuffer
	runSource(t, url, pool, &logs, func(c *config.Config) {
		c.Maintenance.Schedule = "@every 1s"
		c.History.Retention = 24 * time.Hour
	})
	_, err := pool.Exec(ctx, `SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date - 10, 1, '-infinity')`)
	require.NoError(t, err)
	old := `SELECT count(*) FROM pg_class WHERE relname = 'attempts_' || to_char((now() AT TIME ZONE 'UTC')::date - 10, 'YYYYMMDD')`
	require.Equal(t, 1, countRows(t, pool, old))
	eventuallyTrue(t, 10*time.Second, func() bool { return countRows(t, pool, old) == 0 }, "the old day dropped by maintenance")
}
