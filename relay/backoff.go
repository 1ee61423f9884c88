package relay

import (
	"time"

	"github.com/rs/zerolog"
)

// errorBackoff paces retries of a failing database operation, logs the
// first failure and then at most one line per backoff step, and one
// "recovered" line when it works again.
type errorBackoff struct {
	failures int
	next     time.Duration
}

func newErrorBackoff() *errorBackoff { return &errorBackoff{} }

const (
	errorBackoffMin = 100 * time.Millisecond
	errorBackoffMax = 10 * time.Second
)

func (b *errorBackoff) failed(log zerolog.Logger, err error, op string) time.Duration {
	b.failures++
	if b.next == 0 {
		b.next = errorBackoffMin
	} else {
		b.next = min(2*b.next, errorBackoffMax)
	}
	if b.failures == 1 || b.next == errorBackoffMax || b.failures%10 == 0 {
		log.Error().Err(err).Str("op", op).Int("failures", b.failures).Dur("retry_in", b.next).Msg("database error")
	}
	return b.next
}

func (b *errorBackoff) recovered(log zerolog.Logger, op string) {
	if b.failures > 0 {
		log.Info().Str("op", op).Int("failures", b.failures).Msg("database recovered")
		b.failures, b.next = 0, 0
	}
}
