package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
)

// countingDB counts the queries run through a real pool.
type countingDB struct {
	*pgxpool.Pool
	queries atomic.Int64
}

func (c *countingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.queries.Add(1)
	return c.Pool.Query(ctx, sql, args...)
}

// Scrapes read the figures of the last refresh: however many there are,
// the lanes are counted once per tick, and the figures follow the tables
// from one tick to the next.
func TestQueueGaugesAreReadOncePerInterval(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	db := &countingDB{Pool: pool}
	qc := newQueueCollector(db)
	refreshed := make(chan struct{}, 1)
	qc.refreshed = func() { refreshed <- struct{}{} }
	reg := prometheus.NewRegistry()
	reg.MustRegister(qc)
	srv := httptest.NewServer(newMetricsMux(reg, nil))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() { defer close(done); qc.run(ctx, tick) }()
	t.Cleanup(func() { cancel(); <-done })
	awaitRefresh := func() {
		t.Helper()
		select {
		case <-refreshed:
		case <-time.After(10 * time.Second):
			t.Fatal("no refresh within 10s")
		}
	}
	awaitRefresh()

	metrics := func() string { return getMetrics(t, srv.URL) }
	for range 50 {
		m := metrics()
		require.Equal(t, 0.0, sample(m, "herald_pending_messages"))
		require.Equal(t, 0.0, sample(m, "herald_queue_scrape_error"))
		require.Contains(t, m, "herald_queue_status_age_seconds ")
	}
	require.Equal(t, int64(1), db.queries.Load(), "50 scrapes, one query")

	require.NoError(t, outbox.Enqueue(context.Background(), pool,
		outbox.Message{Topic: "a", Payload: []byte(`{}`)}, outbox.Message{Topic: "a", Payload: []byte(`{}`)},
		outbox.Message{Topic: "a", Payload: []byte(`{}`)}))
	require.Equal(t, 0.0, sample(metrics(), "herald_pending_messages"), "the figures of the last refresh")
	tick <- time.Now()
	awaitRefresh()
	m := metrics()
	require.Equal(t, 3.0, sample(m, "herald_pending_messages"))
	require.Greater(t, sample(m, "herald_oldest_pending_seconds"), 0.0)
	require.Equal(t, int64(2), db.queries.Load())

	// A failed refresh keeps the last figures and says so.
	heraldtest.Exec(t, pool, "ALTER TABLE outbox.dead RENAME TO dead_away")
	tick <- time.Now()
	awaitRefresh()
	m = metrics()
	require.Equal(t, 1.0, sample(m, "herald_queue_scrape_error"))
	require.Equal(t, 3.0, sample(m, "herald_pending_messages"))
}

// herald run refreshes the gauges on metrics.queue_interval, not per
// scrape, and exports herald_ready.
func TestRunRefreshesQueueGaugesOnTheInterval(t *testing.T) {
	t.Parallel()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	rs, reg := runSource(t, url, pool, &syncBuffer{}, withMetrics, func(cfg *config.Config) { cfg.Metrics.QueueInterval = time.Hour })
	srv := httptest.NewServer(newMetricsMux(reg, []*runningSource{rs}))
	t.Cleanup(srv.Close)
	eventuallyTrue(t, 10*time.Second, func() bool {
		return strings.Contains(getMetrics(t, srv.URL), "herald_queue_status_age_seconds")
	}, "the first refresh")
	require.Equal(t, 1.0, sample(getMetrics(t, srv.URL), "herald_ready"))
	// With the relay stopped, the message stays in the hot lane.
	require.NoError(t, rs.relay.Stop(context.Background()))
	require.NoError(t, outbox.Enqueue(context.Background(), pool, outbox.Message{Topic: "a", Payload: []byte(`{}`)}))
	m := getMetrics(t, srv.URL)
	require.Equal(t, 0.0, sample(m, "herald_pending_messages"), "read an hour ago at most, not at the scrape")
	require.Equal(t, 0.0, sample(m, "herald_ready"), "the relay stopped")
}

func getMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
