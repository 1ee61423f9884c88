package relay

import (
	"cmp"
	"context"
	"os"
	"strconv"
	"sync"
	"time"
)

func (st *endpointState) unprobe(probe bool) {
	if probe {
		st.mu.Lock()
		st.probing = false
		st.mu.Unlock()
	}
}

// breakerChange is a transition to log.
type breakerChange uint8

const (
	breakerSame breakerChange = iota
	breakerOpened
	breakerStillOpen
	breakerClosed
)

// done records the end of an attempt. failed reports an attempt that says
// the endpoint is unhealthy (no answer, 5xx, 429). The duration returned is
// the next probe interval (opened, still open) or how long the endpoint was
// paused (closed).
func (st *endpointState) done(cfg BreakerConfig, failed, probe bool, now time.Time) (breakerChange, time.Duration) {
	st.inFlight.Add(-1)
	if cfg.FailureThreshold <= 0 {
		return breakerSame, 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if probe {
		st.probing = false
	}
	if !failed {
		st.failures = 0
		if !st.openedAt.IsZero() {
			pausedFor := now.Sub(st.openedAt)
			st.openedAt, st.interval, st.disabling = time.Time{}, 0, false
			return breakerClosed, pausedFor
		}
		return breakerSame, 0
	}
	st.failures++
	switch {
	case !st.openedAt.IsZero() && probe:
		st.interval = min(2*st.interval, cfg.MaxProbeInterval)
		st.probeAt = now.Add(st.interval)
		return breakerStillOpen, st.interval
	case st.openedAt.IsZero() && st.failures >= cfg.FailureThreshold:
		st.openedAt = now
		st.interval = cfg.ProbeInterval
		st.probeAt = now.Add(st.interval)
		return breakerOpened, st.interval
	}
	return breakerSame, 0
}

// shouldDisable reports, once per outage, that the breaker has been open
// for at least after.
func (st *endpointState) shouldDisable(after time.Duration, now time.Time) (bool, time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if after <= 0 || st.openedAt.IsZero() || st.disabling || now.Sub(st.openedAt) < after {
		return false, 0
	}
	st.disabling = true
	return true, now.Sub(st.openedAt)
}

// stalled reports whether the endpoint takes no work now: disabled,
// unusable, or paused by its breaker.
func (st *endpointState) stalled(now time.Time) bool {
	if st.off() {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.openedAt.IsZero()
}

// paused reports whether the breaker is open, and since when.
func (st *endpointState) paused() (bool, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.openedAt.IsZero(), st.openedAt
}

// relayName names this process in outbox.breakers: its host name and
// process id.
var relayName = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	return cmp.Or(host, "unknown-host") + ":" + strconv.Itoa(os.Getpid())
})

// breakerWriteTimeout bounds the write of one breaker transition.
const breakerWriteTimeout = 10 * time.Second

// recordBreaker writes a transition of the endpoint's breaker (open since
// since, next probe at probeAt; or closed) to outbox.breakers, on its own
// goroutine, so that `herald status` can show what lives only in this
// relay's memory. One write per transition, never per delivery: opened,
// each failed probe (which moves probe_at), closed. Writes may land out of
// order; recordBreakerSQL keeps the one of the latest transition, at. A
// write that fails is logged and not retried: the state is advisory, and
// the next transition writes it again.
func (r *Relay) recordBreaker(endpoint string, open bool, since, probeAt, at time.Time) {
	var probe *time.Time
	if open {
		probe = &probeAt
	}
	r.callbacks.Add(1)
	go func() {
		defer r.callbacks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), breakerWriteTimeout)
		defer cancel()
		_, err := r.pool.Exec(ctx, recordBreakerSQL, endpoint, relayName(), open, since, probe, at)
		if err != nil {
			r.log.Warn().Err(err).Str("endpoint", endpoint).Msg("could not record the circuit breaker's state in outbox.breakers")
		}
		r.signals.BreakerRecorded.signal(breakerSignal{Endpoint: endpoint, Open: open, Err: err})
	}()
}
