package relay

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// The relay's pure parts, tested without a database.

func TestMatchTopic(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, topic string
		want           bool
	}{
		{"orders.created", "orders.created", true},
		{"orders.created", "orders.created.v2", false},
		{"*", "", true},
		{"*", "anything.at.all", true},
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.", true},
		{"orders.*", "orders", false},
		{"orders.*", "orders.line.added", true}, // '*' crosses dots
		{"*.created", "orders.created", true},
		{"*.created", "orders.created.v2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"a*b*c", "acb", false},
		{"**", "x", true},
		{"a*a", "a", false}, // the prefix and the suffix may not overlap
		{"a*a", "aa", true},
	} {
		require.Equal(t, c.want, matchTopic(c.pattern, c.topic), "%q ~ %q", c.pattern, c.topic)
	}
}

func TestExponentialRetrySchedule(t *testing.T) {
	t.Parallel()
	p := &ExponentialRetry{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 10 * time.Second, MaxElapsedTime: time.Hour}
	var got []time.Duration
	for attempt := 1; attempt <= 6; attempt++ {
		d, ok := p.NextDelay(attempt, 0)
		require.True(t, ok)
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}, got,
		"no jitter: the schedule follows the attempt number, capped at MaxInterval")

	_, ok := p.NextDelay(3, time.Hour-time.Second)
	require.False(t, ok, "a delay that would end past MaxElapsedTime gives up")
	p.MaxAttempts = 3
	_, ok = p.NextDelay(3, 0)
	require.False(t, ok, "MaxAttempts reached")

	jittered := DefaultRetryPolicy()
	for range 100 {
		d, ok := jittered.NextDelay(4, 0)
		require.True(t, ok)
		require.InDelta(t, float64(8*time.Second), float64(d), 0.2*float64(8*time.Second)+1, "±20%% around 8s")
	}
}

func TestBreakerTransitions(t *testing.T) {
	t.Parallel()
	cfg := BreakerConfig{FailureThreshold: 3, ProbeInterval: time.Second, MaxProbeInterval: 3 * time.Second}
	st := newEndpointState(&Endpoint{Name: "e"}, NewMetrics(nil))
	now := time.Unix(1_700_000_000, 0)
	attempt := func(failed bool) (breakerChange, time.Duration) {
		adm, _ := st.admit(now)
		require.Contains(t, []admission{admitted, admittedProbe}, adm)
		return st.done(cfg, failed, adm == admittedProbe, now)
	}

	for range 2 {
		ch, _ := attempt(true)
		require.Equal(t, breakerSame, ch)
	}
	ch, probeIn := attempt(true)
	require.Equal(t, breakerOpened, ch, "the third failure in a row opens the breaker")
	require.Equal(t, time.Second, probeIn)
	adm, _ := st.admit(now)
	require.Equal(t, deferredPaused, adm, "paused until the probe is due")

	now = now.Add(time.Second)
	ch, probeIn = attempt(true)
	require.Equal(t, breakerStillOpen, ch, "a failed probe")
	require.Equal(t, 2*time.Second, probeIn, "the probe interval doubles")
	now = now.Add(2 * time.Second)
	_, probeIn = attempt(true)
	require.Equal(t, 3*time.Second, probeIn, "capped at MaxProbeInterval")

	now = now.Add(3 * time.Second)
	ch, pausedFor := attempt(false)
	require.Equal(t, breakerClosed, ch, "a successful probe closes the breaker")
	require.Equal(t, 6*time.Second, pausedFor)
	adm, _ = st.admit(now)
	require.Equal(t, admitted, adm)
	st.done(cfg, false, false, now)

	off := BreakerConfig{FailureThreshold: BreakerOff}
	for range 10 {
		adm, _ := st.admit(now)
		require.Equal(t, admitted, adm)
		ch, _ := st.done(off, true, false, now)
		require.Equal(t, breakerSame, ch, "BreakerOff never opens")
	}
}

func TestAdmissionBoundsInFlightAndQueue(t *testing.T) {
	t.Parallel()
	st := newEndpointState(&Endpoint{Name: "e", MaxInFlight: 2}, NewMetrics(nil))
	now := time.Now()
	for range 2 {
		adm, _ := st.admit(now)
		require.Equal(t, admitted, adm)
	}
	for i := range st.queueCap() {
		adm, _ := st.admit(now)
		require.Equal(t, queued, adm, "past max_in_flight, pairs wait in memory")
		st.enqueue(&pair{}, i%2 == 0) // claimed before or not, each counts
	}
	adm, _ := st.admit(now)
	require.Equal(t, deferredBusy, adm, "past the queue, they wait in the retry lane")

	disabled := newEndpointState(&Endpoint{Name: "d", Disabled: true}, NewMetrics(nil))
	adm, _ = disabled.admit(now)
	require.Equal(t, deferredPaused, adm)
}

func TestErrorBackoff(t *testing.T) {
	t.Parallel()
	log := zerolog.Nop()
	b := newErrorBackoff()
	var got []time.Duration
	for range 9 {
		got = append(got, b.failed(log, errors.New("down"), "claim"))
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second}, got)
	b.recovered(log, "claim")
	require.Equal(t, errorBackoffMin, b.failed(log, errors.New("down"), "claim"), "recovery starts the backoff over")
}
