package relay

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy decides what happens after a failed attempt.
type RetryPolicy interface {
	// NextDelay returns how long to wait before attempt number attempt+1,
	// given that the pair's first attempt was elapsed ago, or ok = false
	// when the message must be given up.
	NextDelay(attempt int, elapsed time.Duration) (delay time.Duration, ok bool)
	// MaxDelay caps delays asked for by endpoints (Retry-After).
	MaxDelay() time.Duration
}

// ExponentialRetry is the default policy: exponential backoff with jitter,
// from github.com/cenkalti/backoff/v4, bounded by elapsed time and
// optionally by attempts.
type ExponentialRetry struct {
	InitialInterval     time.Duration
	Multiplier          float64
	MaxInterval         time.Duration
	RandomizationFactor float64
	// MaxElapsedTime is measured from the first attempt. 0 means no limit.
	MaxElapsedTime time.Duration
	// MaxAttempts gives up after this many attempts. 0 means no limit.
	MaxAttempts int
}

// The default retry schedule: 1s, ×2, capped at 1h, ±20%, for up to 72h.
const (
	RetryInitialIntervalDefault     = time.Second
	RetryMultiplierDefault          = 2.0
	RetryMaxIntervalDefault         = time.Hour
	RetryRandomizationFactorDefault = 0.2
	RetryMaxElapsedTimeDefault      = 72 * time.Hour
)

// DefaultRetryPolicy returns the default schedule (the Retry*Default
// constants).
func DefaultRetryPolicy() *ExponentialRetry {
	return &ExponentialRetry{
		InitialInterval:     RetryInitialIntervalDefault,
		Multiplier:          RetryMultiplierDefault,
		MaxInterval:         RetryMaxIntervalDefault,
		RandomizationFactor: RetryRandomizationFactorDefault,
		MaxElapsedTime:      RetryMaxElapsedTimeDefault,
	}
}

// NextDelay implements RetryPolicy. The schedule is computed from the attempt
// number alone (the backoff's own elapsed clock is never used: attempts are
// spread over processes and restarts).
func (p *ExponentialRetry) NextDelay(attempt int, elapsed time.Duration) (time.Duration, bool) {
	if p.MaxAttempts > 0 && attempt >= p.MaxAttempts {
		return 0, false
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: p.RandomizationFactor,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0, // never Stop: the limit is ours, measured across restarts
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	// The interval stops growing at MaxInterval long before 64 steps.
	var d time.Duration
	for i := 0; i < min(max(attempt, 1), 64); i++ {
		d = b.NextBackOff()
	}
	if p.MaxElapsedTime > 0 && elapsed+d > p.MaxElapsedTime {
		return 0, false
	}
	return d, true
}

// MaxDelay implements RetryPolicy.
func (p *ExponentialRetry) MaxDelay() time.Duration { return p.MaxInterval }

// schedule sets p.delay for a failed attempt, or returns "exhausted" when
// the retry policy gives up. It logs the failed attempt.
func (r *Relay) schedule(p *pair, attempt int, elapsed time.Duration) string {
	policy := r.retry.Load()
	delay, ok := policy.NextDelay(attempt, elapsed)
	if !ok {
		return "exhausted"
	}
	if p.retryAfter > 0 {
		delay = max(delay, min(p.retryAfter, policy.MaxDelay()))
	}
	p.delay = delay
	r.stats.retried.Add(1)
	p.ep.metrics.retry.Inc()
	ev := r.log.Warn().Str("message_id", p.job.msg.ID).Str("endpoint", p.ep.Name).Int("attempt", attempt)
	if p.status != 0 {
		ev = ev.Int("status", p.status)
	}
	ev.Str("error", p.errText).Time("next_attempt_at", time.Now().Add(delay)).Msg("delivery failed")
	return ""
}
