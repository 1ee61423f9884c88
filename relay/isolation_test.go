package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

func messages(n int, topic string) []outbox.Message {
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: topic, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return msgs
}

func TestBreakerPausesDeadEndpointWithoutSpendingRetriesAndResumes(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	const probeInterval = 300 * time.Millisecond
	var healthy atomic.Bool
	dead := newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	ok := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "dead", dead.srv.URL, "orders.*"), endpoint(t, "ok", ok.srv.URL, "orders.*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 3, ProbeInterval: probeInterval, MaxProbeInterval: probeInterval},
		Retry:     &relay.ExponentialRetry{InitialInterval: 20 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxAttempts: 50, MaxElapsedTime: time.Hour},
	})
	const n = 40
	enqueue(t, pool, messages(n, "orders.created")...)

	eventually(t, 10*time.Second, func() bool { return ok.uniqueIDs() == n }, "the healthy endpoint gets every message")
	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 },
		"the hot lane empties although one endpoint is down")
	require.Equal(t, n, count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE endpoint = 'dead'`))

	// Once paused (after the first burst, which was in flight before enough
	// failures came back), the dead endpoint sees one probe per interval,
	// not a retry per message: although its n messages are due every 20ms,
	// its next requests come a probe interval apart.
	before := len(dead.requests())
	eventually(t, 5*time.Second, func() bool { return len(dead.requests()) >= before+3 }, "three probes")
	probes := dead.requests()[before:]
	for i := 1; i < len(probes); i++ {
		gap := probes[i].at.Sub(probes[i-1].at)
		require.GreaterOrEqual(t, gap, probeInterval, "a paused endpoint gets probes, not traffic (requests %s apart)", gap)
	}
	require.Less(t, count(t, pool, `SELECT coalesce(max(attempts), 0) FROM outbox.deliveries`), 6,
		"waiting messages do not spend their retry budget while the endpoint is paused")
	require.Positive(t, r.Stats().Deferred)

	healthy.Store(true)
	eventually(t, 10*time.Second, func() bool { return dead.uniqueIDs() == n }, "all delivered once the probe succeeds")
	eventually(t, 5*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0 }, "retry lane drained")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`))
}

func TestEndpointMaxInFlight(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	var cur, peak atomic.Int64
	rc := newReceiver(t, func(int, *http.Request) int {
		c := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond) // slow on purpose: requests overlap, if the relay lets them
		return http.StatusOK
	})
	ep := endpoint(t, "narrow", rc.srv.URL, "*")
	ep.MaxInFlight = 2
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}, MaxInFlight: 64})
	enqueue(t, pool, messages(30, "t")...)
	eventually(t, 20*time.Second, func() bool {
		return rc.uniqueIDs() == 30 && count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "all delivered")
	require.LessOrEqual(t, peak.Load(), int64(2), "never more than max_in_flight requests at once")
}

// BenchmarkHealthyEndpointWithBadNeighbours measures a healthy endpoint's
// deliveries/s alone, and next to a slow endpoint (every request takes the
// full timeout) and a dead one (refuses connections), all subscribed to the
// same topic. Run: go test ./relay -run '^$' -bench BadNeighbours -benchtime 1x
func BenchmarkHealthyEndpointWithBadNeighbours(b *testing.B) {
	const n = 10000
	for _, c := range []struct {
		name       string
		neighbours string // "", "healthy" or "bad" (one slow, one dead)
		ownTopics  bool
	}{
		{"alone", "", false},
		{"with_healthy_neighbours_on_own_topics", "healthy", true},
		{"with_slow_and_dead_on_own_topics", "bad", true},
		{"with_healthy_neighbours_on_same_topic", "healthy", false},
		{"with_slow_and_dead_on_same_topic", "bad", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				rate := isolationRun(b, n, c.neighbours, c.ownTopics)
				b.ReportMetric(rate, "healthy_deliveries/s")
			}
		})
	}
}

// isolationRun drains n messages for a healthy endpoint, alone or with two
// other endpoints: healthy ones (the baseline), or a slow and a dead one;
// they either share its topic (every message fans out to all three) or have
// their own topics with as many messages each.
func isolationRun(b *testing.B, n int, neighbours string, ownTopics bool) float64 {
	pool := heraldtest.Pool(b)
	ok := newReceiver(b, nil)
	eps := []relay.Endpoint{endpoint(b, "ok", ok.srv.URL, "t")}
	slowTopic, deadTopic := "t", "t"
	if ownTopics {
		slowTopic, deadTopic = "s", "d"
	}
	switch neighbours {
	case "healthy":
		eps = append(eps, endpoint(b, "second", newReceiver(b, nil).srv.URL, slowTopic), endpoint(b, "third", newReceiver(b, nil).srv.URL, deadTopic))
	case "bad":
		slow := newReceiver(b, func(_ int, r *http.Request) int {
			<-r.Context().Done() // never answers within the timeout
			return http.StatusOK
		})
		eps = append(eps, endpoint(b, "slow", slow.srv.URL, slowTopic), endpoint(b, "dead", "http://127.0.0.1:1/", deadTopic))
	}
	for i := range eps {
		eps[i].MaxInFlight = 32
	}
	var msgs []outbox.Message
	for i, m := range messages(n, "t") {
		msgs = append(msgs, m)
		if neighbours != "" && ownTopics {
			msgs = append(msgs, outbox.Message{Topic: "s", Payload: m.Payload}, outbox.Message{Topic: "d", Payload: json.RawMessage(fmt.Sprint(i))})
		}
	}
	enqueue(b, pool, msgs...)
	r, err := relay.New(pool, relay.Config{Endpoints: eps, MaxInFlight: 128, PollInterval: 20 * time.Millisecond,
		Retry: &relay.ExponentialRetry{InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute, MaxElapsedTime: time.Hour}})
	require.NoError(b, err)
	start := time.Now()
	require.NoError(b, r.Start(context.Background()))
	eventually(b, 2*time.Minute, func() bool { return ok.uniqueIDs() == n }, "the healthy endpoint gets its %d messages", n)
	reqs := ok.requests()
	elapsed := reqs[len(reqs)-1].at.Sub(start) // to the last arrival, whatever the polling's pace
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.Stop(ctx)
	return float64(n) / elapsed.Seconds()
}

// TestOutageDoesNotEatRetryBudget: the endpoint is down for longer than
// max_elapsed_time, then each message fails once more after the endpoint
// is back. Failed probes during the outage do not exhaust messages, and the
// outage's length is given back to every waiting message's clock, so none
// dies.
func TestOutageDoesNotEatRetryBudget(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	var up atomic.Bool
	var mu sync.Mutex
	failedAfter := map[string]bool{}
	probed := false
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		if !up.Load() {
			return http.StatusServiceUnavailable
		}
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("webhook-id")
		if !probed {
			probed = true // the probe that closes the breaker succeeds
			return http.StatusOK
		}
		if !failedAfter[id] {
			failedAfter[id] = true
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")},
		Breaker:   relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: 150 * time.Millisecond, MaxProbeInterval: 150 * time.Millisecond},
		Retry:     &relay.ExponentialRetry{InitialInterval: 50 * time.Millisecond, Multiplier: 1, MaxInterval: time.Second, MaxElapsedTime: time.Second},
	})
	const n = 6
	enqueue(t, pool, messages(n, "t")...)
	// The outage itself, 2.5 × max_elapsed_time: a sleep that is the
	// scenario, not a wait for the relay.
	time.Sleep(2500 * time.Millisecond)
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`), "no message died during the outage")
	up.Store(true)
	eventually(t, 15*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries`)+count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "all settled")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`), "no message died after the outage either")
	require.Equal(t, n, rc.uniqueIDs())
}

func TestEndpointRateLimit(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	ep := endpoint(t, "limited", rc.srv.URL, "*")
	ep.RateLimit, ep.RateBurst = 20, 1
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}})
	const n = 12
	enqueue(t, pool, messages(n, "t")...)
	eventually(t, 20*time.Second, func() bool {
		return rc.uniqueIDs() == n && count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "all delivered")
	reqs := rc.requests()
	// At 20/s with a burst of 1, n requests span at least (n-1)/20 s.
	span := reqs[len(reqs)-1].at.Sub(reqs[0].at)
	require.GreaterOrEqual(t, span, time.Duration(n-1)*time.Second/20-10*time.Millisecond,
		"%d requests in %s exceed 20/s", n, span)
	require.Len(t, reqs, n, "rate-limited deliveries wait, they are not failed attempts")
}

// A backlog for a rate-limited endpoint waits in the hot lane and in memory
// for its turns: no pair is deferred to the retry lane and back.
func TestEndpointRateLimit_BacklogIsPacedInMemory(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	ep := endpoint(t, "limited", rc.srv.URL, "*")
	ep.RateLimit, ep.RateBurst = 200, 5
	const n = 300
	enqueue(t, pool, messages(n, "t")...)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}})
	eventually(t, 20*time.Second, func() bool {
		return rc.uniqueIDs() == n && count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "all delivered")
	st := r.Stats()
	require.Zero(t, st.Deferred, "pairs waited for their turn instead of going to the retry lane")
	require.EqualValues(t, n, st.Delivered)
	reqs := rc.requests()
	require.Len(t, reqs, n)
	span := reqs[len(reqs)-1].at.Sub(reqs[0].at)
	require.GreaterOrEqual(t, span, time.Duration(n-5)*time.Second/200-10*time.Millisecond,
		"%d requests in %s exceed 200/s with a burst of 5", n, span)
}

// Pairs waiting for their turn when the relay stops are given back at once,
// not left leased.
func TestEndpointRateLimit_WaitingPairsReleasedOnStop(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	ep := endpoint(t, "slow", rc.srv.URL, "*")
	ep.RateLimit, ep.RateBurst = 2, 1 // one now, the next two within the pace horizon
	const n = 3
	enqueue(t, pool, messages(n, "t")...)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}})
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() >= 1 }, "first delivered")
	require.NoError(t, r.Stop(context.Background()))
	left := count(t, pool, `SELECT count(*) FROM outbox.messages`)
	require.Equal(t, n-rc.uniqueIDs(), left)
	require.Positive(t, left, "the stop came before every turn")
	require.Equal(t, left, count(t, pool, `SELECT count(*) FROM outbox.messages WHERE visible_at <= now() AND lease IS NULL AND attempts = 0`),
		"released unattempted, claimable at once")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
}
