package relay_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
)

// breakerRow is a row of outbox.breakers.
type breakerRow struct {
	Endpoint  string
	Relay     string
	Open      bool
	Since     time.Time
	ProbeAt   *time.Time
	UpdatedAt time.Time
}

func breakerRows(t *testing.T, pool *pgxpool.Pool) []breakerRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT endpoint, relay, open, since, probe_at, updated_at FROM outbox.breakers ORDER BY endpoint, relay`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[breakerRow])
	require.NoError(t, err)
	return out
}

// TestBreakerTransitionsAreRecorded: opening, each failed probe and closing
// each write the relay's row in outbox.breakers, and only they do: a
// healthy endpoint's deliveries write nothing there.
func TestBreakerTransitionsAreRecorded(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	const probeInterval = 200 * time.Millisecond
	var healthy atomic.Bool
	flaky := newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	ok := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "flaky", flaky.srv.URL, "orders.*"), endpoint(t, "ok", ok.srv.URL, "orders.*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: probeInterval, MaxProbeInterval: 4 * probeInterval},
		Retry:     &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 50, MaxElapsedTime: time.Hour},
	})
	signals := relay.Signals(r)
	enqueue(t, pool, messages(10, "orders.created")...)

	opened := signals.BreakerRecorded.Wait(t)
	require.Equal(t, relay.BreakerRecord{Endpoint: "flaky", Open: true}, opened)
	rows := breakerRows(t, pool)
	require.Len(t, rows, 1, "the healthy endpoint has no row")
	host, _ := os.Hostname()
	require.Equal(t, host+":"+strconv.Itoa(os.Getpid()), rows[0].Relay)
	require.True(t, rows[0].Open)
	require.NotNil(t, rows[0].ProbeAt)
	require.WithinDuration(t, rows[0].Since.Add(probeInterval), *rows[0].ProbeAt, 50*time.Millisecond)
	since := rows[0].Since

	probe := signals.BreakerRecorded.Wait(t)
	require.Equal(t, relay.BreakerRecord{Endpoint: "flaky", Open: true}, probe, "a failed probe")
	rows = breakerRows(t, pool)
	require.True(t, rows[0].Open)
	require.Equal(t, since, rows[0].Since, "open since the first failure")
	require.True(t, rows[0].ProbeAt.After(rows[0].UpdatedAt.Add(probeInterval)), "the next probe is later: the interval doubled")

	healthy.Store(true)
	closed := signals.BreakerRecorded.WaitFresh(t, 1, func(s relay.BreakerRecord) bool { return !s.Open })[0]
	require.NoError(t, closed.Err)
	eventually(t, 10*time.Second, func() bool { return flaky.uniqueIDs() == 10 }, "all delivered once the probe succeeds")
	rows = breakerRows(t, pool)
	require.Len(t, rows, 1)
	require.False(t, rows[0].Open)
	require.Nil(t, rows[0].ProbeAt)
	require.True(t, rows[0].Since.After(since))

	// Writes that land out of order keep the latest transition.
	_, err := pool.Exec(context.Background(), relay.RecordBreakerSQL, "flaky", rows[0].Relay, true, since, since, since)
	require.NoError(t, err)
	require.False(t, breakerRows(t, pool)[0].Open, "an older transition written late changes nothing")
}

// TestBreakerRecordFailureDoesNotStopDelivery: a relay that cannot write
// outbox.breakers (no grant; here, no table) delivers as before.
func TestBreakerRecordFailureDoesNotStopDelivery(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	heraldtest.Exec(t, pool, `DROP TABLE outbox.breakers`)
	var healthy atomic.Bool
	flaky := newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "flaky", flaky.srv.URL, "orders.*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: 100 * time.Millisecond, MaxProbeInterval: 100 * time.Millisecond},
		Retry:     &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 50, MaxElapsedTime: time.Hour},
	})
	enqueue(t, pool, messages(5, "orders.created")...)
	opened := relay.Signals(r).BreakerRecorded.Wait(t)
	require.True(t, opened.Open)
	require.ErrorContains(t, opened.Err, "outbox.breakers")
	healthy.Store(true)
	eventually(t, 10*time.Second, func() bool { return flaky.uniqueIDs() == 5 }, "delivered all the same")
}
