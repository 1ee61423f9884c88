package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// hostileBody is what a failing endpoint might answer with: NUL bytes,
// bytes that are not UTF-8, and a multi-byte character placed across the
// 1 KiB mark where the kept snippet is cut.
func hostileBody() []byte {
	b := []byte("\x00\xff\xfe binary \xc3\x28 ")
	b = append(b, strings.Repeat("a", 1023-len(b))...)
	return append(b, "€ and more"...)
}

// TestHostileResponseBodiesCostOnlyTheRetries: the first answer to every
// tenth message is a 500 whose body PostgreSQL's text type refuses as it
// is. The outcomes of its batch must still be written at once (no lease has
// to lapse), and every message delivered with no request but the retries.
func TestHostileResponseBodiesCostOnlyTheRetries(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		if n == 1 && strings.HasSuffix(id, "0") {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write(hostileBody())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	// The lease is long: a dropped outcome would show as a message still
	// waiting when the test gives up.
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "hostile", srv.URL, "*")}, Lease: time.Minute})

	const n = 300
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprintf("msg_%03d", i), Topic: "t", Payload: json.RawMessage(`{}`)}
	}
	enqueue(t, pool, msgs...)

	eventually(t, 15*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "every message delivered after its hostile first answer")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, n)
	for id, k := range seen {
		want := 1
		if strings.HasSuffix(id, "0") {
			want = 2 // one failed attempt, then the delivery
		}
		require.Equal(t, want, k, id)
	}
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.dead`))
}

// TestHostileResponseIsStoredReadable: what is kept of a hostile answer is
// valid text, its multi-byte characters whole.
func TestHostileResponseIsStoredReadable(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(hostileBody())
	}))
	t.Cleanup(srv.Close)
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "hostile", srv.URL, "*")},
		Retry:     &relay.ExponentialRetry{InitialInterval: time.Hour, Multiplier: 2, MaxInterval: time.Hour, MaxElapsedTime: 24 * time.Hour},
	})
	enqueue(t, pool, outbox.Message{ID: "msg_hostile", Topic: "t", Payload: json.RawMessage(`{}`)})
	var resp string
	eventually(t, 10*time.Second, func() bool {
		err := pool.QueryRow(context.Background(), `SELECT last_response FROM outbox.deliveries WHERE id = 'msg_hostile'`).Scan(&resp)
		return err == nil
	}, "the failed attempt is recorded")
	require.True(t, utf8.ValidString(resp))
	require.NotContains(t, resp, "\x00")
	require.Contains(t, resp, "binary")
	require.NotContains(t, resp, "€", "the character across the cut is not kept in halves")
}

// TestOutcomesRetriedAfterATransientError: the first write of a batch of
// outcomes fails for a passing reason (here a lock held too long; a
// deadlock or a lost connection are alike). pgx then forgets the batch's
// prepared statements, so the retry must not reuse what the failed attempt
// prepared: the outcomes are written by the retry, and nothing waits for
// its lease.
func TestOutcomesRetriedAfterATransientError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, rc, reg, _ := impatientRelay(t)

	// A first message settles, so every statement is prepared and cached.
	enqueue(t, pool, outbox.Message{ID: "msg_first", Topic: "t", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 }, "first delivered")

	hold := make(chan struct{})
	rc.mu.Lock()
	rc.hold = hold
	rc.mu.Unlock()
	const n = 20
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprintf("msg_%02d", i), Topic: "t", Payload: json.RawMessage(`{}`)}
	}
	enqueue(t, pool, msgs...)
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == n+1 }, "all claimed and in flight")

	// Hold the claimed rows, so that the relay's DELETE times out.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT seq FROM outbox.messages FOR UPDATE`)
	require.NoError(t, err)
	close(hold)
	eventually(t, 10*time.Second, func() bool { return metricValue(t, reg, "herald_db_errors_total") >= 2 },
		"the write failed, and its first retry too")
	require.NoError(t, tx.Rollback(ctx))

	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 },
		"the outcomes are written once the lock is gone, not after the lease")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for id, k := range rc.byID {
		require.Equal(t, 1, k, "%s delivered once", id)
	}
}

// TestOneRefusedOutcomeDoesNotHoldBackItsBatch: PostgreSQL refuses the
// outcome of one row (here a trigger stands for any row-level refusal) and
// the response text of another. Every other outcome of the batch is
// written at once; the second row is written without its texts; the first
// keeps its lease, is reported, and is the only one left.
func TestOneRefusedOutcomeDoesNotHoldBackItsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	_, err := pool.Exec(ctx, `CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 'msg_poison' THEN RAISE EXCEPTION 'refused row' USING ERRCODE = 'check_violation'; END IF;
    IF NEW.last_response LIKE '%refuse-me%' THEN RAISE EXCEPTION 'refused text' USING ERRCODE = 'check_violation'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON outbox.deliveries FOR EACH ROW EXECUTE FUNCTION public.refuse();`)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Header.Get("webhook-id") == "msg_badtext" {
			_, _ = w.Write([]byte("refuse-me"))
		}
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "e", srv.URL, "*")},
		Retry:     &relay.ExponentialRetry{InitialInterval: time.Hour, Multiplier: 2, MaxInterval: time.Hour, MaxElapsedTime: 24 * time.Hour},
		Lease:     time.Minute,
		Metrics:   relay.NewMetrics(reg),
	})
	msgs := []outbox.Message{{ID: "msg_poison"}, {ID: "msg_badtext"}}
	for i := range 6 {
		msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("msg_%d", i)})
	}
	for i := range msgs {
		msgs[i].Topic, msgs[i].Payload = "t", json.RawMessage(`{}`)
	}
	enqueue(t, pool, msgs...)

	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == len(msgs)-1
	}, "every outcome but the refused one written")
	var ids []string
	rows, err := pool.Query(ctx, `SELECT id FROM outbox.messages`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"msg_poison"}, ids, "only the refused row waits, under its lease")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_badtext' AND last_response IS NULL AND last_status = 503`))
	eventually(t, 5*time.Second, func() bool { return metricValue(t, reg, "herald_outcomes_unwritten_total") == 1 },
		"the unwritten outcome is counted")
}

// impatientRelay starts a relay whose statements give up after waiting
// 100 ms for a lock, so that a test can make its writes fail for a passing
// reason by holding the rows. pool is the test's own.
func impatientRelay(t *testing.T) (pool *pgxpool.Pool, rc *receiver, reg *prometheus.Registry, r *relay.Relay) {
	t.Helper()
	url := heraldtest.URL(t)
	relayPool := heraldtest.PoolFor(t, url+"&options=-c%20lock_timeout%3D100")
	rc = newReceiver(t, nil)
	reg = prometheus.NewRegistry()
	r = startRelay(t, relayPool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")}, Lease: time.Minute,
		Metrics: relay.NewMetrics(reg)})
	return heraldtest.PoolFor(t, url), rc, reg, r
}

// metricValue sums the samples of the metric name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestStopIsBoundedByItsContextWhenOutcomesCannotBeWritten: Stop's deadline
// bounds the outcome writer's retries too; the rows it could not record
// keep their lease.
func TestStopIsBoundedByItsContextWhenOutcomesCannotBeWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, rc, reg, r := impatientRelay(t)
	hold := make(chan struct{})
	rc.mu.Lock()
	rc.hold = hold
	rc.mu.Unlock()
	enqueue(t, pool, outbox.Message{ID: "msg_1", Topic: "t", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 1 }, "in flight")

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT seq FROM outbox.messages FOR UPDATE`)
	require.NoError(t, err)
	close(hold)
	eventually(t, 10*time.Second, func() bool { return metricValue(t, reg, "herald_db_errors_total") >= 1 }, "the write fails")

	stopCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, r.Stop(stopCtx))
	require.Less(t, time.Since(start), 3*time.Second, "Stop returns soon after its deadline")
	require.Equal(t, 1.0, metricValue(t, reg, "herald_outcomes_unwritten_total"))
}

// TestClaimsAreBoundedByPayloadBytes: a few huge payloads never fill the
// relay's memory: what it holds in flight is bounded by MaxInFlightBytes
// (at least one message at a time), not only by the count of messages.
func TestClaimsAreBoundedByPayloadBytes(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	hold := make(chan struct{})
	rc.hold = hold
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")}, MaxInFlightBytes: 2 << 20})
	big := json.RawMessage(`"` + strings.Repeat("x", 512<<10-2) + `"`) // 512 KiB
	msgs := make([]outbox.Message, 30)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprintf("msg_%02d", i), Topic: "t", Payload: big}
	}
	enqueue(t, pool, msgs...)

	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 4 }, "the first 2 MiB in flight")
	// The relay keeps looking, and takes nothing more while 2 MiB are in
	// flight.
	for _, c := range relay.Signals(r).Claimed.WaitFresh(t, 5, nil) {
		require.Zero(t, c.Hot, "a claim took a row with 2 MiB in flight")
	}
	require.Equal(t, 4, rc.uniqueIDs(), "nothing more claimed while 2 MiB are in flight")
	close(hold)
	eventually(t, 20*time.Second, func() bool { return rc.uniqueIDs() == len(msgs) }, "all delivered")
}

// stubbornSender ignores its timeout: it answers only when its context ends,
// and records the deadline it was given.
type stubbornSender struct {
	mu        sync.Mutex
	deadlines []time.Time
}

func (s *stubbornSender) Send(ctx context.Context, _ *webhook.Message) (webhook.Result, error) {
	d, _ := ctx.Deadline()
	s.mu.Lock()
	s.deadlines = append(s.deadlines, d)
	s.mu.Unlock()
	<-ctx.Done()
	return webhook.Result{}, ctx.Err()
}

// TestRelayBoundsAnAttemptWhateverTheSenderDoes: a custom Sender that never
// answers on its own is cut off at the endpoint's timeout, so the lease
// guarantee (an attempt ends before its lease does) holds for every Sender.
func TestRelayBoundsAnAttemptWhateverTheSenderDoes(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	s := &stubbornSender{}
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{{Name: "stubborn", Topics: []string{"*"}, Sender: s, Timeout: 300 * time.Millisecond}},
		Retry: &relay.ExponentialRetry{InitialInterval: time.Hour, Multiplier: 2, MaxInterval: time.Hour, MaxElapsedTime: 24 * time.Hour}})
	start := time.Now()
	enqueue(t, pool, outbox.Message{ID: "msg_1", Topic: "t", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_1' AND last_error <> ''`) == 1
	}, "the attempt ended and was recorded as failed")
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.deadlines, 1)
	require.False(t, s.deadlines[0].IsZero(), "the Sender's context has a deadline")
	require.WithinDuration(t, start.Add(300*time.Millisecond), s.deadlines[0], 2*time.Second)
}

// TestStopBeforeStartIsHarmless: Stop before Start returns at once, and a
// Start after it refuses to start goroutines nothing would stop.
func TestStopBeforeStartIsHarmless(t *testing.T) {
	t.Parallel()
	r, err := relay.New(heraldtest.Pool(t), relay.Config{})
	require.NoError(t, err)
	require.NoError(t, r.Stop(context.Background()))
	require.Error(t, r.Start(context.Background()))
	require.NoError(t, r.Stop(context.Background()))
}
