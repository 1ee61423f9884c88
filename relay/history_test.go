package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// loggedAttempt is a row of outbox.attempts.
type loggedAttempt struct {
	at       time.Time
	endpoint string
	attempt  int
	ms       float64
	status   *int
	class    *string
	errText  *string
	response *string
}

func attemptsOf(t *testing.T, pool *pgxpool.Pool, id string) []loggedAttempt {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT at, endpoint, attempt, duration_ms, status, error_class, error, response
FROM outbox.attempts WHERE id = $1 ORDER BY at, attempt`, id)
	require.NoError(t, err)
	defer rows.Close()
	var out []loggedAttempt
	for rows.Next() {
		var a loggedAttempt
		require.NoError(t, rows.Scan(&a.at, &a.endpoint, &a.attempt, &a.ms, &a.status, &a.class, &a.errText, &a.response))
		out = append(out, a)
	}
	require.NoError(t, rows.Err())
	return out
}

func ids(t *testing.T, pool *pgxpool.Pool, sql string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

// errorsAre waits until herald_history_write_errors_total is n, which it
// becomes just after the flush's commit.
func errorsAre(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return metricValue(t, reg, "herald_history_write_errors_total") >= float64(n) },
		"%d history write errors", n)
	require.Equal(t, float64(n), metricValue(t, reg, "herald_history_write_errors_total"))
}

// settled waits until no message or retry pair is left.
func settled(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	eventually(t, 15*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "every message settled")
}

// TestAttemptLogRecordsEachAttempt: a success, a 500 with a hostile body
// then a success, a 503 with a 10 MB body, a timeout and a refused
// connection are each logged with their attempt number, status or error
// class, and what is kept of the answer, valid text of at most 1 KiB.
func TestAttemptLogRecordsEachAttempt(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	var mu sync.Mutex
	seen := map[string]int{}
	closing := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		switch {
		case id == "msg_hostile" && n == 1:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write(hostileBody())
		case id == "msg_huge":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write(bytes.Repeat([]byte("\x00\xffx"), 10<<20/3))
		case id == "msg_slow":
			select { // answers only once the relay gave up
			case <-r.Context().Done():
			case <-closing:
			}
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(closing) }) // runs first: srv.Close waits for the handlers
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + closed.Addr().String()
	require.NoError(t, closed.Close())

	start := time.Now()
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "e", srv.URL, "t"), endpoint(t, "nobody", deadURL, "down")},
		Retry:     &relay.ExponentialRetry{InitialInterval: 50 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 2},
		Lease:     time.Minute,
	})
	for _, m := range []outbox.Message{
		{ID: "msg_ok", Topic: "t"}, {ID: "msg_hostile", Topic: "t"}, {ID: "msg_huge", Topic: "t"},
		{ID: "msg_slow", Topic: "t"}, {ID: "msg_down", Topic: "down"},
	} {
		m.Payload = json.RawMessage(`{}`)
		enqueue(t, pool, m)
	}
	settled(t, pool)

	ok := attemptsOf(t, pool, "msg_ok")
	require.Len(t, ok, 1)
	require.Equal(t, "e", ok[0].endpoint)
	require.Equal(t, 1, ok[0].attempt)
	require.Equal(t, 204, *ok[0].status)
	require.Nil(t, ok[0].class, "a success has no error class")
	require.Nil(t, ok[0].errText)
	require.WithinRange(t, ok[0].at, start.Add(-time.Second), time.Now())
	require.GreaterOrEqual(t, ok[0].ms, 0.0)

	hostile := attemptsOf(t, pool, "msg_hostile")
	require.Len(t, hostile, 2, "the failure and the retry that succeeded")
	require.Equal(t, []int{1, 2}, []int{hostile[0].attempt, hostile[1].attempt})
	require.Equal(t, 500, *hostile[0].status)
	require.Equal(t, "status", *hostile[0].class)
	require.True(t, utf8.ValidString(*hostile[0].response))
	require.NotContains(t, *hostile[0].response, "\x00")
	require.Contains(t, *hostile[0].response, "binary")
	require.Nil(t, hostile[1].class)

	huge := attemptsOf(t, pool, "msg_huge")
	require.Len(t, huge, 2, "both attempts of a message that died")
	for _, a := range huge {
		require.Equal(t, 503, *a.status)
		require.Equal(t, "status", *a.class)
		if a.response != nil {
			require.LessOrEqual(t, len(*a.response), 1024)
			require.True(t, utf8.ValidString(*a.response))
			require.NotContains(t, *a.response, "\x00")
		}
	}

	slow := attemptsOf(t, pool, "msg_slow")
	require.Len(t, slow, 2)
	require.Nil(t, slow[0].status)
	require.Equal(t, "timeout", *slow[0].class)
	require.GreaterOrEqual(t, slow[0].ms, 900.0, "the duration is the attempt's: about the 1s timeout")

	down := attemptsOf(t, pool, "msg_down")
	require.Len(t, down, 2)
	require.Equal(t, "nobody", down[0].endpoint)
	require.Equal(t, "connect", *down[0].class)
	require.Contains(t, *down[0].errText, "refused")
}

// TestAttemptLogKeepsTheStatusOfASuccess: a receiver that answers 202, and
// one that answers 503 and then 200. Every attempt row holds the status the
// receiver gave, the 2xx too: an operator can tell 200 from 202 or 204
// (status was NULL for every success, since the Sender said nothing of it).
func TestAttemptLogKeepsTheStatusOfASuccess(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		switch {
		case r.Header.Get("webhook-id") == "msg_accepted":
			return http.StatusAccepted
		case n == 1:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "t")}})
	enqueue(t, pool, outbox.Message{ID: "msg_accepted", Topic: "t", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_retried", Topic: "t", Payload: json.RawMessage(`{}`)})
	settled(t, pool)

	statuses := func(id string) []any {
		var out []any
		for _, a := range attemptsOf(t, pool, id) {
			if a.status == nil {
				out = append(out, nil)
				continue
			}
			out = append(out, *a.status)
		}
		return out
	}
	require.Equal(t, []any{202}, statuses("msg_accepted"))
	require.Equal(t, []any{503, 200}, statuses("msg_retried"), "the hot lane's failure, then the retry lane's success")
}

// TestAttemptLogModes: all logs every attempt, failures only those that
// failed, off none.
func TestAttemptLogModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode      relay.AttemptLog
		ok, fails int
	}{
		{relay.AttemptLogAll, 3, 1},
		{relay.AttemptLogFailures, 1, 1}, // msg_flaky's failure only
		{relay.AttemptLogOff, 0, 0},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			pool := heraldtest.Pool(t)
			rc := newReceiver(t, func(n int, r *http.Request) int {
				if r.Header.Get("webhook-id") == "msg_flaky" && n == 1 {
					return http.StatusBadGateway
				}
				return http.StatusOK
			})
			startRelay(t, pool, relay.Config{
				Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
				History:   relay.HistoryConfig{Attempts: tc.mode},
			})
			enqueue(t, pool, outbox.Message{ID: "msg_a", Topic: "t", Payload: json.RawMessage(`{}`)},
				outbox.Message{ID: "msg_flaky", Topic: "t", Payload: json.RawMessage(`{}`)})
			settled(t, pool)
			require.Len(t, rc.requests(), 3)
			require.Equal(t, tc.ok, count(t, pool, `SELECT count(*) FROM outbox.attempts`))
			require.Equal(t, tc.fails, count(t, pool, `SELECT count(*) FROM outbox.attempts WHERE error_class IS NOT NULL`))
		})
	}
}

// TestMessageLog: with history.messages, a message delivered to all its
// endpoints is in outbox.message_log with its payload and headers, whether
// that took one round (msg_1, msg_2) or went through the retry lane:
// msg_retried (a's first attempt fails, b's works), msg_named (for a only,
// by name: the log keeps that name) and msg_both (both fail first: two
// retry pairs, one log row). One that died, for all its endpoints
// (msg_rejected) or one (msg_half), is not. Without, nothing is. (The retry
// lane did not keep the endpoint a message named, and its ack logged
// nothing.)
func TestMessageLog(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[on], func(t *testing.T) {
			t.Parallel()
			pool := heraldtest.Pool(t)
			a := newReceiver(t, func(n int, r *http.Request) int {
				switch id := r.Header.Get("webhook-id"); {
				case id == "msg_rejected":
					return http.StatusBadRequest // permanent: dies at once
				case n == 1 && strings.Contains("msg_retried msg_named msg_both msg_half", id):
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			b := newReceiver(t, func(n int, r *http.Request) int {
				switch id := r.Header.Get("webhook-id"); {
				case id == "msg_rejected" || id == "msg_half":
					return http.StatusBadRequest
				case id == "msg_both" && n == 1:
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			startRelay(t, pool, relay.Config{
				Endpoints: []relay.Endpoint{endpoint(t, "a", a.srv.URL, "t"), endpoint(t, "b", b.srv.URL, "t")},
				History:   relay.HistoryConfig{Messages: on},
			})
			enqueue(t, pool,
				outbox.Message{ID: "msg_1", Topic: "t", Key: "k1", Payload: json.RawMessage(`{"n": 1}`), Headers: map[string]string{"X-Tenant": "acme"}},
				outbox.Message{ID: "msg_2", Topic: "t", Payload: json.RawMessage(`{"n": 2}`)},
				outbox.Message{ID: "msg_rejected", Topic: "t", Payload: json.RawMessage(`{}`)},
				outbox.Message{ID: "msg_retried", Topic: "t", Key: "k2", Payload: json.RawMessage(`{"n": 3}`), Headers: map[string]string{"X-Tenant": "beta"}},
				outbox.Message{ID: "msg_named", Topic: "t", Endpoint: "a", Payload: json.RawMessage(`{"n": 4}`)},
				outbox.Message{ID: "msg_both", Topic: "t", Payload: json.RawMessage(`{"n": 5}`)},
				outbox.Message{ID: "msg_half", Topic: "t", Payload: json.RawMessage(`{}`)})
			settled(t, pool)
			require.Equal(t, 3, count(t, pool, `SELECT count(*) FROM outbox.dead`), "msg_rejected died for both endpoints, msg_half for b")
			if !on {
				require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.message_log`))
				return
			}
			require.Equal(t, []string{"msg_1", "msg_2", "msg_both", "msg_named", "msg_retried"},
				ids(t, pool, `SELECT id FROM outbox.message_log ORDER BY id`), "each delivered message, once")
			for _, want := range []struct{ id, key, named, payload, tenant string }{
				{id: "msg_1", key: "k1", payload: `{"n": 1}`, tenant: "acme"},
				{id: "msg_retried", key: "k2", payload: `{"n": 3}`, tenant: "beta"},
				{id: "msg_named", named: "a", payload: `{"n": 4}`},
			} {
				var topic, key, named, payload, headers string
				var delivered, created time.Time
				require.NoError(t, pool.QueryRow(context.Background(), `SELECT topic, coalesce(key, ''), coalesce(endpoint, ''),
    payload::text, coalesce(headers::text, ''), delivered_at, created_at
FROM outbox.message_log WHERE id = $1`, want.id).Scan(&topic, &key, &named, &payload, &headers, &delivered, &created))
				require.Equal(t, "t", topic)
				require.Equal(t, want.key, key)
				require.Equal(t, want.named, named, "the endpoint the message named; none when its topic routed it")
				require.Equal(t, want.payload, payload, "the payload byte for byte")
				require.Contains(t, headers, want.tenant)
				require.False(t, delivered.Before(created))
			}
		})
	}
}

// TestMessageLogOfLastPairsAckedAtOnce: two relays deliver the last two
// pairs of a message at once, each acking in its own flush (transaction).
// Each statement alone would see the other's pair still waiting, and
// neither would log the message; the second must wait for the first and
// then log it, once.
func TestMessageLogOfLastPairsAckedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	heraldtest.Exec(t, pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
    first_attempt_at, last_attempt_at, next_attempt_at) VALUES
    (7, 'a', 'msg_7', 't', '{}', now(), 1, now(), now(), now()),
    (7, 'b', 'msg_7', 't', '{}', now(), 1, now(), now(), now())`)
	ack := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, endpoint string) error {
		var failed *string
		if err := q.QueryRow(ctx, `SELECT outbox.ack_retry_logged('{7}', $1)`, []string{endpoint}).Scan(&failed); err != nil {
			return err
		}
		if failed != nil {
			return fmt.Errorf("copy failed: %s", *failed)
		}
		return nil
	}
	first, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = first.Rollback(ctx) }()
	require.NoError(t, ack(first, "a"))

	second := make(chan error, 1)
	go func() {
		tx, err := pool.Begin(ctx)
		if err == nil {
			if err = ack(tx, "b"); err == nil {
				err = tx.Commit(ctx)
			}
			_ = tx.Rollback(ctx)
		}
		second <- err
	}()
	// Commit the first once the second has either finished or is waiting.
	var done bool
	eventually(t, 10*time.Second, func() bool {
		select {
		case err := <-second:
			require.NoError(t, err)
			done = true
			return true
		default:
		}
		return count(t, pool, `SELECT count(*) FROM pg_locks WHERE NOT granted`) > 0
	}, "the second ack finished or waits")
	require.NoError(t, first.Commit(ctx))
	if !done {
		select {
		case err := <-second:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the second ack still waits after the first committed")
		}
	}
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
	require.Equal(t, []string{"msg_7"}, ids(t, pool, `SELECT id FROM outbox.message_log`), "logged once")
}

// TestHistoryWriteFailureDoesNotStopDelivery: today's partitions are gone
// (maintenance did not run), then the attempt log is locked by someone's
// DDL. Messages are delivered and settled all the same, each failure is
// counted, and the history is written again once the lock is gone.
func TestHistoryWriteFailureDoesNotStopDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
		History:   relay.HistoryConfig{Attempts: relay.AttemptLogAll, Messages: true},
		Metrics:   relay.NewMetrics(reg),
		Lease:     time.Minute, // an outcome not written would show as a message still waiting
	})
	var today string
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')`).Scan(&today))
	_, err := pool.Exec(ctx, `DROP TABLE outbox.attempts_`+today+`; DROP TABLE outbox.message_log_`+today)
	require.NoError(t, err)

	enqueue(t, pool, outbox.Message{ID: "msg_nopart", Topic: "t", Payload: json.RawMessage(`{}`)})
	settled(t, pool)
	// The metric follows the flush's commit, which settled saw.
	errorsAre(t, reg, 2) // one attempts, one message_log failure

	// Locks on both tables: the flush waits 200ms for each, then goes on
	// without the history.
	_, err = pool.Exec(ctx, `SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date, 1, '-infinity')`)
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE outbox.attempts, outbox.message_log IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	enqueue(t, pool, outbox.Message{ID: "msg_locked", Topic: "t", Payload: json.RawMessage(`{}`)})
	settled(t, pool)
	errorsAre(t, reg, 4)
	require.NoError(t, tx.Rollback(ctx))

	enqueue(t, pool, outbox.Message{ID: "msg_after", Topic: "t", Payload: json.RawMessage(`{}`)})
	settled(t, pool)
	require.Len(t, attemptsOf(t, pool, "msg_after"), 1, "logged again once the table is free")
	require.Equal(t, []string{"msg_after"}, ids(t, pool, `SELECT id FROM outbox.message_log`))
	require.Equal(t, 3, len(rc.requests()), "each message delivered once")
}

// TestHistoryRetention: partitions of a day long past (made as if the
// relay had been running then) are dropped with their rows, those within
// history.retention kept, and a week ahead is made; another relay holding
// the lock makes a run skip.
func TestHistoryRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	r, err := relay.New(pool, relay.Config{History: relay.HistoryConfig{Retention: 7 * 24 * time.Hour}})
	require.NoError(t, err)
	// Days 30 and 29 ago are past retention; 5 ago is not.
	_, err = pool.Exec(ctx, `SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date - 30, 2, '-infinity');
SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date - 5, 1, '-infinity');
INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms)
    VALUES (now() - interval '30 days', 1, 'msg_old', 'e', 1, 1), (now() - interval '5 days', 2, 'msg_recent', 'e', 1, 1);
INSERT INTO outbox.message_log (delivered_at, seq, id, topic, payload, created_at)
    VALUES (now() - interval '29 days', 1, 'msg_old', 't', '{}', now() - interval '29 days')`)
	require.NoError(t, err)
	partitions := func(table string) []string {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass ORDER BY 1`, "outbox."+table)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, strings.TrimPrefix(n, table+"_"))
		}
		require.NoError(t, rows.Err())
		return names
	}
	day := func(offset int) string {
		var d string
		require.NoError(t, pool.QueryRow(ctx, `SELECT to_char((now() AT TIME ZONE 'UTC')::date + $1::int, 'YYYYMMDD')`, offset).Scan(&d))
		return d
	}

	// Another relay holds the lock: this one leaves the work to it.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(0x4865726869737479))
	require.NoError(t, err)
	res, err := r.MaintainHistory(ctx)
	require.NoError(t, err)
	require.True(t, res.Skipped)
	require.NoError(t, tx.Rollback(ctx))
	require.Contains(t, partitions("attempts"), day(-30))

	res, err = r.MaintainHistory(ctx)
	require.NoError(t, err)
	require.False(t, res.Skipped)
	require.Equal(t, 4, res.Dropped, "days -30 and -29 of both tables")
	var want []string
	for _, d := range []int{-5, -1, 0, 1, 2, 3, 4, 5, 6, 7} { // -1, 0 and 1, 2 made by the migration
		want = append(want, day(d))
	}
	require.Equal(t, want, partitions("attempts"))
	require.Equal(t, want, partitions("message_log"))
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.attempts`), "msg_recent is kept")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.message_log`))

	res, err = r.MaintainHistory(ctx)
	require.NoError(t, err)
	require.Equal(t, relay.HistoryMaintenance{}, res, "a second run has nothing to do")
}

// TestMessageLogWaitsForABusyMessageRow: the delete of a delivered message
// waits behind a lock on its row (a VACUUM truncating outbox.messages, an
// operator's query) longer than history's lock timeout. The copy into
// outbox.message_log must wait with it, not be given up: the timeout is for
// the history tables' own locks.
func TestMessageLogWaitsForABusyMessageRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	hold := make(chan struct{})
	rc.mu.Lock()
	rc.hold = hold
	rc.mu.Unlock()
	reg := prometheus.NewRegistry()
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
		History:   relay.HistoryConfig{Messages: true},
		Metrics:   relay.NewMetrics(reg),
	})
	enqueue(t, pool, outbox.Message{ID: "msg_busy", Topic: "t", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 1 }, "in flight")
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT 1 FROM outbox.messages WHERE id = 'msg_busy' FOR UPDATE`)
	require.NoError(t, err)
	close(hold)
	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM pg_locks WHERE NOT granted`) > 0
	}, "the relay's delete waits for the row")
	// Held past history's 200ms lock timeout.
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, tx.Rollback(ctx))
	settled(t, pool)
	require.Zero(t, metricValue(t, reg, "herald_history_write_errors_total"))
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.message_log WHERE id = 'msg_busy'`))
}

// TestHistoryFailuresAreLoggedWithBackoff: with today's partitions gone,
// every flush fails to write its history. Each failure is counted, but
// the log says so once and then at growing intervals, not once a flush.
func TestHistoryFailuresAreLoggedWithBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	var logs heraldtest.SyncBuffer
	r, err := relay.New(pool, relay.Config{
		Endpoints:    []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
		Metrics:      relay.NewMetrics(reg),
		Logger:       zerolog.New(&logs),
		PollInterval: 20 * time.Millisecond,
		Listen:       true,
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(ctx) })
	var today string
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')`).Scan(&today))
	_, err = pool.Exec(ctx, `DROP TABLE outbox.attempts_`+today)
	require.NoError(t, err)

	const flushes = 30
	for i := range flushes {
		enqueue(t, pool, outbox.Message{ID: fmt.Sprintf("msg_%02d", i), Topic: "t", Payload: json.RawMessage(`{}`)})
		settled(t, pool)
	}
	errorsAre(t, reg, flushes)
	lines := strings.Count(logs.String(), `"history.attempts"`)
	require.GreaterOrEqual(t, lines, 1)
	require.LessOrEqual(t, lines, 5, "logged with backoff, not once a flush:\n%s", logs.String())
}

// TestHistoryWithoutItsFunctionsIsOff: a database migrated with an earlier
// migrations/007, which had the tables but not the functions the relay
// writes through. The relay says so and writes no history; every message
// is delivered and settled (without the check, every flush failed).
func TestHistoryWithoutItsFunctionsIsOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	_, err := pool.Exec(ctx, `DROP FUNCTION outbox.log_attempts; DROP FUNCTION outbox.ack_logged`)
	require.NoError(t, err)
	rc := newReceiver(t, nil)
	var logs heraldtest.SyncBuffer
	r, err := relay.New(pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
		History:   relay.HistoryConfig{Attempts: relay.AttemptLogAll, Messages: true},
		Logger:    zerolog.New(&logs),
		Lease:     time.Minute,
		Listen:    true,
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(ctx) })
	enqueue(t, pool, outbox.Message{ID: "msg_1", Topic: "t", Payload: json.RawMessage(`{}`)})
	settled(t, pool)
	require.Contains(t, logs.String(), "history functions missing")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.attempts`))
}
