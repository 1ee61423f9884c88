package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// alertsReceived decodes what rc received, once per webhook-id, each
// checked against the documented schema (relay.DecodeAlert) and its
// signature against the reference verifier.
func alertsReceived(t *testing.T, rc *receiver) []any {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	require.NoError(t, err)
	seen := map[string]bool{}
	var out []any
	for _, got := range rc.requests() {
		if seen[got.id] {
			continue
		}
		seen[got.id] = true
		require.NoError(t, wh.Verify(got.body, got.hdr), "an event is signed like any message")
		a, err := relay.DecodeAlert(got.body)
		require.NoError(t, err, "%s", got.body)
		out = append(out, a)
	}
	return out
}

// alertsOfType returns the alerts of type T among as.
func alertsOfType[T any](as []any) []*T {
	var out []*T
	for _, a := range as {
		if v, ok := a.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// heraldRows counts the rows of herald.* topics in the three lanes.
func heraldRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	return count(t, pool, `SELECT (SELECT count(*) FROM outbox.messages WHERE topic LIKE 'herald.%')
		+ (SELECT count(*) FROM outbox.deliveries WHERE topic LIKE 'herald.%')
		+ (SELECT count(*) FROM outbox.dead WHERE topic LIKE 'herald.%')`)
}

// TestBreakerTransitionsReachAnAlertEndpoint: a failing endpoint's breaker
// opens, then closes; an endpoint subscribed to herald.* receives
// herald.endpoint.breaker_opened and breaker_closed about it, signed, with
// the documented fields.
func TestBreakerTransitionsReachAnAlertEndpoint(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	flaky, healthy := failingUntil(t, http.StatusOK)
	alerts := newReceiver(t, nil)
	const probeInterval = 100 * time.Millisecond
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "flaky", flaky.srv.URL, "orders.*"), endpoint(t, "alerts", alerts.srv.URL, "herald.*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: probeInterval, MaxProbeInterval: probeInterval},
		Retry:     &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 50, MaxElapsedTime: time.Hour},
	})
	start := time.Now()
	enqueue(t, pool, messages(5, "orders.created")...)
	relay.Signals(r).BreakerRecorded.WaitFresh(t, 1, func(s relay.BreakerRecord) bool { return s.Open })
	eventually(t, 10*time.Second, func() bool {
		return len(alertsOfType[relay.BreakerAlert](alertsReceived(t, alerts))) >= 1
	}, "breaker_opened received")
	opened := alertsOfType[relay.BreakerAlert](alertsReceived(t, alerts))[0]
	host, _ := os.Hostname()
	require.Equal(t, relay.AlertBreakerOpened, opened.Event)
	require.Equal(t, relay.AlertVersion, opened.Version)
	require.Equal(t, "flaky", opened.Endpoint)
	require.Equal(t, host+":"+strconv.Itoa(os.Getpid()), opened.Relay)
	require.WithinDuration(t, time.Now(), opened.At, time.Since(start))
	require.NotNil(t, opened.ProbeAt)
	require.Equal(t, opened.At.Add(probeInterval), *opened.ProbeAt)
	require.Zero(t, opened.PausedMS)
	require.Zero(t, opened.Suppressed)

	healthy.Store(true)
	eventually(t, 10*time.Second, func() bool {
		return len(alertsOfType[relay.BreakerAlert](alertsReceived(t, alerts))) >= 2
	}, "breaker_closed received")
	closed := alertsOfType[relay.BreakerAlert](alertsReceived(t, alerts))[1]
	require.Equal(t, relay.AlertBreakerClosed, closed.Event)
	require.Equal(t, "flaky", closed.Endpoint)
	require.Nil(t, closed.ProbeAt)
	require.Positive(t, closed.PausedMS)
	require.True(t, closed.At.After(opened.At))
}

// TestDeadMessagesRaiseAlerts: a message that dies for an endpoint (410
// Gone, from the hot lane), one that dies in the retry lane (retries used
// up) and one that nothing subscribes each raise herald.message.dead with
// the dead row's fields, keyed by endpoint.
func TestDeadMessagesRaiseAlerts(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	alerts := newReceiver(t, nil)
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "gone", gone.srv.URL, "orders.*"), endpoint(t, "failing", failing.srv.URL, "invoices.*"),
			endpoint(t, "alerts", alerts.srv.URL, "herald.message.dead")},
		Retry: &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 2, MaxElapsedTime: time.Hour},
	})
	enqueue(t, pool,
		outbox.Message{ID: "msg_gone", Topic: "orders.created", Key: "order-1", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_exhausted", Topic: "invoices.paid", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_nobody", Topic: "nobody.listens", Payload: json.RawMessage(`{}`)},
	)
	eventually(t, 10*time.Second, func() bool {
		return len(alertsOfType[relay.DeadAlert](alertsReceived(t, alerts))) == 3
	}, "three dead events")
	byID := map[string]*relay.DeadAlert{}
	for _, a := range alertsOfType[relay.DeadAlert](alertsReceived(t, alerts)) {
		byID[a.MessageID] = a
		require.Equal(t, relay.AlertMessageDead, a.Event)
		require.False(t, a.Summary)
	}
	deadAt := func(id string) time.Time {
		var at time.Time
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT died_at FROM outbox.dead WHERE id = $1`, id).Scan(&at))
		return at
	}
	g := byID["msg_gone"]
	require.NotNil(t, g)
	require.Equal(t, "orders.created", g.Topic)
	require.Equal(t, "gone", g.Reason)
	require.Equal(t, ptr("gone"), g.Endpoint)
	require.Equal(t, ptr("order-1"), g.Key)
	require.Equal(t, ptr(410), g.LastStatus)
	require.Equal(t, 1, g.Attempts)
	require.True(t, g.DiedAt.Equal(deadAt("msg_gone")), "died_at is the dead row's")
	e := byID["msg_exhausted"]
	require.NotNil(t, e)
	require.Equal(t, "exhausted", e.Reason)
	require.Equal(t, ptr("failing"), e.Endpoint)
	require.Nil(t, e.Key)
	require.Equal(t, 2, e.Attempts)
	require.Equal(t, ptr(500), e.LastStatus)
	require.NotNil(t, e.LastError)
	n := byID["msg_nobody"]
	require.NotNil(t, n)
	require.Equal(t, "unroutable", n.Reason)
	require.Nil(t, n.Endpoint)
	require.Nil(t, n.LastStatus)
	require.Equal(t, 0, n.Attempts)
	require.False(t, n.CreatedAt.IsZero())
}

// failingUntil is a receiver that answers 503 until healthy is set, then
// status.
func failingUntil(t *testing.T, status int) (rc *receiver, healthy *atomic.Bool) {
	healthy = new(atomic.Bool)
	return newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return status
		}
		return http.StatusServiceUnavailable
	}), healthy
}

func ptr[T any](v T) *T { return &v }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNoAlertSubscriberWritesNoAlerts: with no endpoint subscribed to
// herald.*, breakers open and close and messages die, and not one herald.*
// row is written anywhere.
func TestNoAlertSubscriberWritesNoAlerts(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	flaky, healthy := failingUntil(t, http.StatusGone)
	other := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "flaky", flaky.srv.URL, "orders.*"), endpoint(t, "other", other.srv.URL, "invoices.*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: 50 * time.Millisecond, MaxProbeInterval: 50 * time.Millisecond},
		Retry:     &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 50, MaxElapsedTime: time.Hour},
	})
	enqueue(t, pool, append(messages(5, "orders.created"), outbox.Message{Topic: "nobody.listens", Payload: json.RawMessage(`{}`)})...)
	relay.Signals(r).BreakerRecorded.WaitFresh(t, 1, func(s relay.BreakerRecord) bool { return s.Open })
	healthy.Store(true) // the probe gets 410: the breaker closes and the messages die
	relay.Signals(r).BreakerRecorded.WaitFresh(t, 1, func(s relay.BreakerRecord) bool { return !s.Open })
	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.dead`) == 6 }, "all dead")
	require.NoError(t, r.Stop(context.Background())) // every write the relay started has ended
	require.Zero(t, heraldRows(t, pool))
}

// TestFailingAlertEndpointDoesNotFeedItself: the endpoint that receives
// herald.* events flaps (its breaker opens and closes again and again) and
// its events die; in a bounded time it gets a bounded number of events
// about itself (one per breakerAlertGap), and none about its dead events.
func TestFailingAlertEndpointDoesNotFeedItself(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	// Every other request fails: with a threshold of 1, each failure opens
	// the breaker and each probe that succeeds closes it.
	var requests atomic.Int64
	alerts := newReceiver(t, func(int, *http.Request) int {
		if requests.Add(1)%2 == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "failing", failing.srv.URL, "orders.*"), endpoint(t, "alerts", alerts.srv.URL, "herald.*", "ticks")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 1, ProbeInterval: 20 * time.Millisecond, MaxProbeInterval: 20 * time.Millisecond},
		Retry:     &relay.ExponentialRetry{InitialInterval: 10 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 1, MaxElapsedTime: time.Hour},
	})
	// Messages that die raise events; ticks keep the alert endpoint busy
	// enough to flap however the events are spread in time.
	enqueue(t, pool, append(messages(40, "orders.created"), messages(100, "ticks")...)...)
	// The alert endpoint's breaker opens and closes six times.
	relay.Signals(r).BreakerRecorded.WaitFresh(t, 6, func(s relay.BreakerRecord) bool { return s.Endpoint == "alerts" && !s.Open })
	require.NoError(t, r.Stop(context.Background()))

	// The events about the alert endpoint, by id: received (and perhaps
	// dead since), or still in the outbox.
	about := map[string]bool{}
	var aboutHerald int
	for _, got := range alerts.requests() {
		if bytes.HasPrefix(got.body, []byte(`{"i":`)) {
			continue // a tick
		}
		switch a := must(relay.DecodeAlert(got.body)).(type) {
		case *relay.BreakerAlert:
			if a.Endpoint == "alerts" {
				about[got.id] = true
			}
		case *relay.DeadAlert:
			if relay.IsAlertTopic(a.Topic) {
				aboutHerald++
			}
		}
	}
	rows, err := pool.Query(context.Background(), `SELECT id FROM outbox.messages WHERE topic LIKE 'herald.endpoint.breaker%' AND key = 'alerts'
		UNION SELECT id FROM outbox.deliveries WHERE topic LIKE 'herald.endpoint.breaker%' AND key = 'alerts'
		UNION SELECT id FROM outbox.dead WHERE topic LIKE 'herald.endpoint.breaker%' AND key = 'alerts'`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, id := range ids {
		about[id] = true
	}
	require.Len(t, about, 1, "one event about itself per minute, however often its breaker changes")
	require.Zero(t, aboutHerald)
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.messages WHERE topic = 'herald.message.dead'
		AND payload->>'topic' LIKE 'herald.%'`), "no event about an event")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead WHERE topic = 'herald.message.dead'
		AND payload->>'topic' LIKE 'herald.%'`), "no event about an event")
}

// TestDeathStormIsSummarised: 60 messages dying at once raise at most
// deadAlertsPerSecond events each second; the rest are counted in summary
// events, and events and summaries together account for every death.
func TestDeathStormIsSummarised(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	alerts := newReceiver(t, nil)
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "alerts", alerts.srv.URL, "herald.*")}})
	start := time.Now()
	enqueue(t, pool, messages(60, "nobody.listens")...)
	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.dead`) == 60 }, "all dead")
	deadBy := time.Since(start)
	eventually(t, 10*time.Second, func() bool {
		as := alertsReceived(t, alerts)
		n := int64(len(alertsOfType[relay.DeadAlert](as)))
		for _, s := range alertsOfType[relay.DeadSummaryAlert](as) {
			n += s.Count
		}
		return n == 60
	}, "every death accounted for")
	as := alertsReceived(t, alerts)
	one := len(alertsOfType[relay.DeadAlert](as))
	seconds := int(deadBy/time.Second) + 2 // the windows the deaths can span
	require.LessOrEqual(t, one, relay.DeadAlertsPerSecond*seconds)
	require.Less(t, one, 60)
	sums := alertsOfType[relay.DeadSummaryAlert](as)
	require.NotEmpty(t, sums)
	for _, s := range sums {
		require.True(t, s.Summary)
		require.Positive(t, s.Count)
	}
}

// TestRolledBackDeathEmitsNothing: the outcome write that moves a message
// to dead fails once (a serialization failure raised by a trigger on
// outbox.dead, after the rows were inserted) and is retried. The death of
// the failed try rolled back with its event: exactly one event arrives.
func TestRolledBackDeathEmitsNothing(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	heraldtest.Exec(t, pool, `CREATE SEQUENCE public.dead_tries`)
	heraldtest.Exec(t, pool, `CREATE FUNCTION public.fail_first_death() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('public.dead_tries') = 1 THEN
				RAISE EXCEPTION 'first death refused' USING ERRCODE = '40001';
			END IF;
			RETURN NULL;
		END $$`)
	heraldtest.Exec(t, pool, `CREATE TRIGGER fail_first_death AFTER INSERT ON outbox.dead
		FOR EACH STATEMENT EXECUTE FUNCTION public.fail_first_death()`)
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	alerts := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{
		endpoint(t, "gone", gone.srv.URL, "orders.*"), endpoint(t, "alerts", alerts.srv.URL, "herald.*")}})
	enqueue(t, pool, outbox.Message{ID: "msg_dies", Topic: "orders.created", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool { return len(alertsReceived(t, alerts)) >= 1 }, "the dead event")
	require.NoError(t, r.Stop(context.Background()))
	require.GreaterOrEqual(t, count(t, pool, `SELECT last_value FROM public.dead_tries`), 2, "the first try failed")
	as := alertsReceived(t, alerts)
	require.Len(t, as, 1)
	require.Equal(t, "msg_dies", as[0].(*relay.DeadAlert).MessageID)
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.messages`))
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.dead`))
}

// TestAlertTopicsGoOnlyToPatternsThatNameThem: Herald's events match only
// patterns that start with "herald.", so endpoints on a catch-all keep
// receiving what they received before alerts existed.
func TestAlertTopicsGoOnlyToPatternsThatNameThem(t *testing.T) {
	for _, c := range []struct {
		pattern, topic string
		want           bool
	}{
		{"herald.*", relay.AlertMessageDead, true},
		{"herald.endpoint.*", relay.AlertBreakerOpened, true},
		{"herald.endpoint.*", relay.AlertMessageDead, false},
		{relay.AlertMessageDead, relay.AlertMessageDead, true},
		{"*", relay.AlertMessageDead, false},
		{"*.dead", relay.AlertMessageDead, false},
		{"herald*", relay.AlertMessageDead, false},
		{"*", "orders.created", true},
	} {
		require.Equal(t, c.want, relay.MatchTopic(c.pattern, c.topic), "%q ~ %q", c.pattern, c.topic)
	}
}
