package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

func TestSetEndpointsAtRunTimeAndDisabledEndpointsKeepMessages(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	epA, epB := endpoint(t, "a", a.srv.URL, "a.*"), endpoint(t, "b", b.srv.URL, "b.*")
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{epA}})

	require.NoError(t, r.SetEndpoints([]relay.Endpoint{epA, epB}))
	enqueue(t, pool, outbox.Message{ID: "msg_b1", Topic: "b.created", Payload: json.RawMessage(`{}`)})
	eventually(t, 5*time.Second, func() bool { return b.uniqueIDs() == 1 }, "an endpoint added at run time receives")

	disabledA := epA
	disabledA.Disabled = true
	require.NoError(t, r.SetEndpoints([]relay.Endpoint{disabledA, epB}))
	enqueue(t, pool, outbox.Message{ID: "msg_a1", Topic: "a.created", Payload: json.RawMessage(`{}`)})
	eventually(t, 5*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_a1' AND endpoint = 'a' AND attempts = 0`) == 1
	}, "a disabled endpoint's message waits, unattempted")
	// The relay looks at the retry lane twice more and leaves it there.
	relay.Signals(r).Claimed.WaitFresh(t, 2, retryLane)
	require.Zero(t, a.uniqueIDs())
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`))

	require.NoError(t, r.SetEndpoints([]relay.Endpoint{epA, epB}))
	eventually(t, 5*time.Second, func() bool { return a.uniqueIDs() == 1 }, "delivered once enabled again")

	dup := epB
	require.Error(t, r.SetEndpoints([]relay.Endpoint{epB, dup}), "duplicate names are refused")
}

func TestEndpointFailingTooLongIsDisabled(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusBadGateway })
	var mu sync.Mutex
	var disabled []string
	startRelay(t, pool, relay.Config{
		Endpoints:    []relay.Endpoint{endpoint(t, "flaky", rc.srv.URL, "*")},
		Breaker:      relay.BreakerConfig{FailureThreshold: 2, ProbeInterval: 100 * time.Millisecond, MaxProbeInterval: 100 * time.Millisecond},
		DisableAfter: 300 * time.Millisecond,
		OnDisable: func(name, reason string) {
			mu.Lock()
			defer mu.Unlock()
			disabled = append(disabled, name+": "+reason)
		},
	})
	enqueue(t, pool, messages(5, "t")...)
	eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(disabled) > 0 }, "OnDisable called")
	// Probes go on failing, the breaker staying open. A probe starts only
	// once the previous one has been judged, which is when OnDisable would
	// be called again: two more requests prove one more was judged.
	probes := len(rc.requests())
	eventually(t, 5*time.Second, func() bool { return len(rc.requests()) >= probes+2 }, "two more probes")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, disabled, 1, "called once per outage")
	require.Contains(t, disabled[0], "flaky: failing for")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`), "nothing dies because its endpoint is down")
}

func TestPairsOfAnUnconfiguredEndpointWaitForIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	_, err := pool.Exec(ctx, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (1, 'later', 'msg_orphan', 't', '{}', now(), 1, now(), now(), now())`)
	require.NoError(t, err)
	other := endpoint(t, "other", rc.srv.URL, "nothing")
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{other}})
	// The relay looks at the retry lane twice (the first claim asks it).
	relay.Signals(r).Claimed.WaitFresh(t, 2, retryLane)
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_orphan' AND attempts = 1 AND lease IS NULL`),
		"a pair whose endpoint is not configured is left alone")
	require.NoError(t, r.SetEndpoints([]relay.Endpoint{other, endpoint(t, "later", rc.srv.URL, "nothing")}))
	eventually(t, 5*time.Second, func() bool { return rc.uniqueIDs() == 1 }, "delivered once its endpoint exists")
	require.Equal(t, "msg_orphan", rc.requests()[0].id)
}

// BreakerConfig.FailureThreshold has one meaning for zero, the one every
// other Config field has: the default (10). Negative disables the breaker.
func TestBreakerThresholdZeroIsTheDefaultNegativeIsOff(t *testing.T) {
	t.Parallel()
	const msgs = relay.BreakerFailureThresholdDefault + 5
	for _, tc := range []struct {
		threshold, wantAttempts int
	}{
		{0, relay.BreakerFailureThresholdDefault},
		{relay.BreakerOff, msgs},
	} {
		t.Run(strconv.Itoa(tc.threshold), func(t *testing.T) {
			t.Parallel()
			pool := heraldtest.Pool(t)
			rc := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
			ep := endpoint(t, "down", rc.srv.URL, "*")
			ep.MaxInFlight = 1 // one failure at a time, so the breaker opens after exactly the threshold
			startRelay(t, pool, relay.Config{
				Endpoints: []relay.Endpoint{ep},
				Retry:     &relay.ExponentialRetry{InitialInterval: time.Hour, Multiplier: 2, MaxInterval: time.Hour, MaxElapsedTime: 100 * time.Hour},
				Breaker:   relay.BreakerConfig{FailureThreshold: tc.threshold, ProbeInterval: time.Hour, MaxProbeInterval: time.Hour},
			})
			enqueue(t, pool, messages(msgs, "t")...)
			eventually(t, 10*time.Second, func() bool {
				return count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == msgs
			}, "every message waits in the retry lane")
			require.Len(t, rc.requests(), tc.wantAttempts)
		})
	}
}

// An endpoint that exists but cannot be used keeps its place in routing:
// its pairs wait in the retry lane with the reason, unattempted, and are
// delivered once it is usable again. Nothing is acknowledged without it and
// nothing dies.
func TestUnusableEndpointHoldsItsMessagesUntilItIsFixed(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	good, fixed := newReceiver(t, nil), newReceiver(t, nil)
	epGood := endpoint(t, "good", good.srv.URL, "orders.*")
	broken := relay.Endpoint{Name: "broken", Topics: []string{"orders.*"},
		Unusable: errors.New("tls.cert_file: tls: private key does not match public key")}
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{epGood, broken}})

	enqueue(t, pool,
		outbox.Message{ID: "msg_fanout", Topic: "orders.created", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_named", Topic: "invoices.paid", Endpoint: "broken", Payload: json.RawMessage(`{}`)})
	eventually(t, 5*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE endpoint = 'broken' AND attempts = 0
			AND last_error = 'tls.cert_file: tls: private key does not match public key'`) == 2
	}, "both messages wait for the unusable endpoint, with the reason")
	eventually(t, 5*time.Second, func() bool { return good.uniqueIDs() == 1 }, "the usable endpoint gets its message")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`), "a message naming an unusable endpoint is not unroutable")

	// The retry lane leaves its pairs alone while it stays unusable.
	relay.Signals(r).Claimed.WaitFresh(t, 3, retryLane)
	require.Equal(t, 2, count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE endpoint = 'broken' AND attempts = 0 AND lease IS NULL`))

	require.NoError(t, r.SetEndpoints([]relay.Endpoint{epGood, endpoint(t, "broken", fixed.srv.URL, "orders.*")}))
	eventually(t, 5*time.Second, func() bool { return fixed.uniqueIDs() == 2 }, "delivered once usable")
	eventually(t, 5*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0 }, "acknowledged")
	require.Equal(t, 1, good.uniqueIDs(), "the other endpoint got its message once")
}

// seriesOf names the metrics of reg that have a series labelled endpoint.
func seriesOf(t *testing.T, reg *prometheus.Registry, endpoint string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					names = append(names, mf.GetName())
				}
			}
		}
	}
	return names
}

// The metric series of an endpoint removed at run time used to stay
// exported for as long as the relay ran.
func TestRemovedEndpointsMetricSeriesAreDeleted(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	keep, gone := endpoint(t, "keep", rc.srv.URL, "keep.*"), endpoint(t, "gone", rc.srv.URL, "gone.*")
	reg := prometheus.NewRegistry()
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{keep, gone}, Metrics: relay.NewMetrics(reg)})
	enqueue(t, pool, outbox.Message{Topic: "gone.x", Payload: json.RawMessage(`{}`)}, outbox.Message{Topic: "keep.x", Payload: json.RawMessage(`{}`)})
	eventually(t, 5*time.Second, func() bool { return rc.uniqueIDs() == 2 }, "both delivered")
	require.Contains(t, seriesOf(t, reg, "gone"), "herald_delivered_total")

	require.NoError(t, r.SetEndpoints([]relay.Endpoint{keep}))
	require.Empty(t, seriesOf(t, reg, "gone"))
	require.Contains(t, seriesOf(t, reg, "keep"), "herald_delivered_total", "the other endpoint's series stay")
}

// deliveredTo reads herald_delivered_total{endpoint=label} from reg.
func deliveredTo(t *testing.T, reg *prometheus.Registry, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "herald_delivered_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Thousands of endpoints would export about 26 series each: past
// MaxEndpointSeries they share endpoint="other", and an unusable one is
// still named in herald_endpoint_unusable.
func TestEndpointSeriesAreBounded(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	a, b, c := endpoint(t, "a", rc.srv.URL, "a.*"), endpoint(t, "b", rc.srv.URL, "b.*"), endpoint(t, "c", rc.srv.URL, "c.*")
	broken := relay.Endpoint{Name: "broken", Topics: []string{"broken.*"}, Unusable: errors.New("its TLS key does not load")}
	reg := prometheus.NewRegistry()
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{a, b, c, broken},
		Metrics: relay.NewMetricsWith(reg, relay.MetricsConfig{MaxEndpointSeries: 1})})
	enqueue(t, pool, outbox.Message{Topic: "a.x", Payload: json.RawMessage(`{}`)},
		outbox.Message{Topic: "b.x", Payload: json.RawMessage(`{}`)}, outbox.Message{Topic: "c.x", Payload: json.RawMessage(`{}`)})
	// The receiver sees a request before the relay counts it delivered
	// (after its outcome is written): wait for the counters.
	eventually(t, 5*time.Second, func() bool {
		return rc.uniqueIDs() == 3 && deliveredTo(t, reg, "a")+deliveredTo(t, reg, relay.OtherEndpoints) == 3
	}, "all delivered and counted")

	require.Equal(t, 1.0, deliveredTo(t, reg, "a"), "the first endpoint has series of its own")
	require.Equal(t, 2.0, deliveredTo(t, reg, relay.OtherEndpoints), "the others share endpoint=other")
	require.Empty(t, seriesOf(t, reg, "b"))
	require.Equal(t, []string{"herald_endpoint_unusable"}, seriesOf(t, reg, "broken"), "an unusable endpoint is named while unusable")

	// Mended, it leaves the gauge; removed, the first frees its place.
	require.NoError(t, r.SetEndpoints([]relay.Endpoint{a, b, c, endpoint(t, "broken", rc.srv.URL, "broken.*")}))
	require.Empty(t, seriesOf(t, reg, "broken"))
	require.NoError(t, r.SetEndpoints([]relay.Endpoint{b, c}))
	require.Empty(t, seriesOf(t, reg, "a"))
	enqueue(t, pool, outbox.Message{Topic: "b.y", Payload: json.RawMessage(`{}`)})
	eventually(t, 5*time.Second, func() bool { return rc.uniqueIDs() == 4 }, "delivered")
	require.Equal(t, 3.0, deliveredTo(t, reg, relay.OtherEndpoints), "b's state was kept, and with it its label")
}

// An idle endpoint costs the relay no goroutine: workers start per
// request, and breakers and rate limiters are state, not loops. Not
// parallel: it counts the process's goroutines.
func TestIdleEndpointsCostNoGoroutine(t *testing.T) {
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "first", rc.srv.URL, "first")}})
	before := runtime.NumGoroutine()
	eps := make([]relay.Endpoint, 2000)
	for i := range eps {
		name := "customer-" + strconv.Itoa(i)
		eps[i] = endpoint(t, name, rc.srv.URL, "customer."+strconv.Itoa(i)+".*")
	}
	require.NoError(t, r.SetEndpoints(eps))
	require.Less(t, runtime.NumGoroutine()-before, 20, "goroutines added by 2,000 idle endpoints")
}

// A relay serving many endpoints, a few messages each, starts a worker
// goroutine per request it has in flight at once, not one per request:
// a worker that finished takes the next request, whatever its endpoint.
// Each new goroutine grows its stack to what a delivery needs, which cost
// a relay with 5,000 endpoints more CPU per delivery than its dials.
func TestWorkersAreReusedAcrossEndpoints(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	const endpoints, rounds = 50, 6
	eps := make([]relay.Endpoint, endpoints)
	for i := range eps {
		eps[i] = endpoint(t, "customer-"+strconv.Itoa(i), rc.srv.URL, "customer."+strconv.Itoa(i))
	}
	r := startRelay(t, pool, relay.Config{Endpoints: eps})
	for round := 1; round <= rounds; round++ {
		msgs := make([]outbox.Message, endpoints)
		for i := range msgs {
			msgs[i] = outbox.Message{Topic: "customer." + strconv.Itoa(i), Payload: []byte(`{}`)}
		}
		enqueue(t, pool, msgs...)
		eventually(t, 20*time.Second, func() bool { return rc.uniqueIDs() == round*endpoints }, "round %d delivered", round)
	}
	// The first round starts up to one worker per endpoint; the later ones
	// find most of them waiting for work (a loaded machine may let a few
	// time out between rounds).
	t.Logf("%d workers started for %d requests", relay.WorkersStarted(r), rounds*endpoints)
	require.Less(t, relay.WorkersStarted(r), int64(rounds*endpoints/2), "workers started for %d requests", rounds*endpoints)
}
