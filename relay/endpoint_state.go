package relay

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// endpointState is what the relay tracks per endpoint while it runs:
// requests in flight, its queue, its rate limiter and its circuit breaker;
// kept across SetEndpoints while the Endpoint is unchanged. Admission happens on the
// claimer's goroutine; completions on the workers'.
type endpointState struct {
	*Endpoint
	// queueHorizon is how long a claimed pair may wait for a slot: the
	// lease, less the margin an attempt must leave. Set before the state is
	// published, never changed.
	queueHorizon time.Duration
	// latency is a moving average of the endpoint's recent attempts, in
	// nanoseconds (0 until one ends): how fast its queue drains.
	latency atomic.Int64
	// unusable is Endpoint.Unusable's text, the held pairs' last_error.
	unusable string
	// closeWhenIdle is set when SetEndpoints replaced the endpoint: its
	// Sender is closed once nothing is in flight or queued for it.
	closeWhenIdle atomic.Bool
	inFlight      atomic.Int64
	limiter       *rate.Limiter // nil: unlimited

	qmu   sync.Mutex
	queue []*pair // admitted pairs waiting for one of the endpoint's slots
	// again are queued pairs of hot messages claimed before (taken over
	// from a dead relay, or whose lease lapsed): due before anything in
	// queue and kept waiting since, they take the next slots.
	again []*pair

	mu       sync.Mutex
	failures int       // consecutive failed attempts
	openedAt time.Time // zero while closed
	probeAt  time.Time // when the next probe may start
	interval time.Duration
	probing  bool
	// disabling is set once OnDisable was called for this open period.
	disabling bool

	metrics endpointMetrics
}

// endpointMetrics are the endpoint's metric children, looked up once
// rather than by label on every delivery.
type endpointMetrics struct {
	attemptSeconds                        prometheus.Observer
	ok, retry, released, deferred, landed prometheus.Counter
}

func newEndpointState(ep *Endpoint, m *Metrics) *endpointState {
	label := m.endpointLabel(ep.Name)
	st := &endpointState{Endpoint: ep, metrics: endpointMetrics{
		attemptSeconds: m.attemptSeconds.WithLabelValues(label),
		ok:             m.attempts.WithLabelValues(label, "ok"),
		retry:          m.attempts.WithLabelValues(label, "retry"),
		released:       m.attempts.WithLabelValues(label, "released"),
		deferred:       m.deferred.WithLabelValues(label),
		landed:         m.delivered.WithLabelValues(label),
	}, unusable: errorText(ep.Unusable)}
	if ep.RateLimit > 0 {
		st.limiter = rate.NewLimiter(rate.Limit(ep.RateLimit), max(1, ep.RateBurst))
	}
	return st
}

// admission is what dispatch decided for one pair.
type admission uint8

const (
	admitted admission = iota
	admittedProbe
	queued         // waits in the endpoint's queue for a slot
	deferredBusy   // at max_in_flight or rate limit
	deferredPaused // breaker open, or disabled
)

// paceHorizon is how far ahead a rate-limited endpoint's pairs are
// admitted: each takes its turn from the limiter at admission and waits for
// it in memory (see Relay.attempt), at most this long. Claims are sized to
// the turns left within it, so a backlog for a rate-limited endpoint stays
// in the hot lane instead of being moved to the retry lane and back.
const paceHorizon = time.Second

// admit decides whether a pair may be attempted, and after how long a wait
// for its turn under the rate limit. An admitted pair counts against the
// endpoint's max_in_flight until done is called.
func (st *endpointState) admit(now time.Time) (admission, time.Duration) {
	if st.Disabled {
		return deferredPaused, 0
	}
	probe := false
	st.mu.Lock()
	if !st.openedAt.IsZero() {
		if st.probing || now.Before(st.probeAt) {
			st.mu.Unlock()
			return deferredPaused, 0
		}
		st.probing = true
		probe = true
	}
	st.mu.Unlock()
	var wait time.Duration
	var turn *rate.Reservation
	if st.limiter != nil {
		turn = st.limiter.ReserveN(now, 1)
		if wait = turn.DelayFrom(now); !turn.OK() || wait > paceHorizon {
			turn.CancelAt(now)
			st.unprobe(probe)
			return deferredBusy, 0
		}
	}
	if st.MaxInFlight > 0 && st.inFlight.Load() >= int64(st.MaxInFlight) {
		st.unprobe(probe)
		st.qmu.Lock()
		defer st.qmu.Unlock()
		if st.queued() < st.queueCap() {
			return queued, wait
		}
		if turn != nil {
			turn.CancelAt(now) // the turn goes back to the next pair
		}
		return deferredBusy, 0
	}
	st.inFlight.Add(1)
	if probe {
		return admittedProbe, wait
	}
	return admitted, wait
}

// paceRoom is how many more turns the rate limiter can give within
// paceHorizon.
func (st *endpointState) paceRoom(now time.Time) int {
	return int(st.limiter.TokensAt(now) + float64(st.limiter.Limit())*paceHorizon.Seconds())
}

// capacity is the most pairs the endpoint takes at once, in flight, queued
// or waiting for their turn; -1 means unbounded.
func (st *endpointState) capacity() int {
	c := -1
	if st.MaxInFlight > 0 {
		c = st.MaxInFlight + st.queueCap()
	}
	if st.limiter != nil {
		pace := st.limiter.Burst() + int(float64(st.limiter.Limit())*paceHorizon.Seconds())
		if c < 0 || pace < c {
			c = pace
		}
	}
	return c
}

// queueCap is how many pairs may wait in memory for the endpoint's slots;
// beyond that they wait in the retry lane.
func (st *endpointState) queueCap() int {
	base := max(st.MaxInFlight, 16)
	lat := st.latency.Load()
	if st.MaxInFlight <= 0 || lat <= 0 || st.queueHorizon <= 0 {
		return base
	}
	// As many as its slots start, at the pace of its recent attempts,
	// within half the horizon: a pair waits in memory only if it will be
	// sent well before its lease ends. The relay's window (max_in_flight,
	// max_in_flight_bytes) bounds what all queues hold together.
	n := int64(st.MaxInFlight) * int64(st.queueHorizon/2) / lat
	return int(min(max(int64(base), n), maxQueue))
}

// maxQueue bounds one endpoint's queue whatever its pace.
const maxQueue = 1 << 16

// observe records how long an attempt took, for queueCap.
func (st *endpointState) observe(d time.Duration) {
	if d <= 0 {
		d = 1
	}
	old := st.latency.Load()
	if old == 0 {
		st.latency.Store(int64(d))
		return
	}
	// Races between workers lose an update now and then: an average.
	st.latency.Store((4*old + int64(d)) / 5)
}

// enqueue adds an admitted pair to the endpoint's queue; first puts it
// before the pairs that are not (see again).
func (st *endpointState) enqueue(p *pair, first bool) {
	st.qmu.Lock()
	if first {
		st.again = append(st.again, p)
	} else {
		st.queue = append(st.queue, p)
	}
	st.qmu.Unlock()
}

// queued is how many pairs wait for a slot. Callers hold qmu.
func (st *endpointState) queued() int { return len(st.again) + len(st.queue) }

// next takes the next queued pair once a slot is free, and reserves the
// slot for it. A pair taken while the endpoint is paused is returned with
// paused = true and no slot: it goes to the retry lane unattempted.
func (st *endpointState) next() (p *pair, paused bool) {
	st.qmu.Lock()
	defer st.qmu.Unlock()
	if st.queued() == 0 {
		return nil, false
	}
	if st.MaxInFlight > 0 && st.inFlight.Load() >= int64(st.MaxInFlight) {
		return nil, false
	}
	q := &st.queue
	if len(st.again) > 0 {
		q = &st.again
	}
	p = (*q)[0]
	(*q)[0] = nil
	*q = (*q)[1:]
	if isPaused, _ := st.paused(); isPaused {
		return p, true
	}
	st.inFlight.Add(1)
	return p, false
}

// freeCapacity is how many more pairs the endpoint can take now, in flight
// or queued; -1 means unbounded.
func (st *endpointState) freeCapacity(now time.Time) int {
	if st.off() {
		return 0
	}
	if st.MaxInFlight <= 0 && st.limiter == nil {
		return -1
	}
	st.mu.Lock()
	paused := !st.openedAt.IsZero()
	st.mu.Unlock()
	if paused {
		return 0 // its pairs are deferred, which costs no slot
	}
	free := math.MaxInt
	if st.MaxInFlight > 0 {
		st.qmu.Lock()
		free = st.MaxInFlight + st.queueCap() - int(st.inFlight.Load()) - st.queued()
		st.qmu.Unlock()
	}
	if st.limiter != nil {
		free = min(free, st.paceRoom(now))
	}
	return max(free, 0)
}

// excluded reports whether the retry lane should not hand this endpoint
// pairs now: disabled, unusable, paused and not yet due for a probe, or
// with no room.
func (st *endpointState) excluded(now time.Time) bool {
	if st.off() {
		return true
	}
	st.mu.Lock()
	paused := !st.openedAt.IsZero() && (st.probing || now.Before(st.probeAt))
	st.mu.Unlock()
	if paused {
		return true
	}
	if st.MaxInFlight > 0 && st.inFlight.Load() >= int64(st.MaxInFlight) {
		return true
	}
	return st.limiter != nil && st.paceRoom(now) < 1
}

// off reports whether the endpoint takes no work until SetEndpoints
// changes it: disabled, or unusable.
func (st *endpointState) off() bool { return st.Disabled || st.unusable != "" }

// busy reports whether requests are in flight or queued.
func (st *endpointState) busy() bool {
	st.qmu.Lock()
	defer st.qmu.Unlock()
	return st.inFlight.Load() > 0 || st.queued() > 0
}

// closeIfIdle closes the Sender of a replaced endpoint once it has nothing
// in flight or queued. Closing a *webhook.Endpoint closes its idle
// connections, so calling it again after a late pair is harmless.
func (st *endpointState) closeIfIdle() {
	if !st.closeWhenIdle.Load() || st.busy() {
		return
	}
	if c, ok := st.Sender.(interface{ Close() }); ok {
		c.Close()
	}
}
