package relay

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/herald-relay/herald/webhook"
)

type lane uint8

const (
	hotLane lane = iota
	retryLane
)

func (l lane) String() string {
	if l == hotLane {
		return "hot"
	}
	return "retry"
}

// job is one claimed row: a message from the hot lane (one pair per
// endpoint) or one pair from the retry lane.
type job struct {
	lane      lane
	seq       int64
	lease     int64
	msg       webhook.Message
	topic     string
	key       string
	createdAt time.Time
	// attempts is the claim count of a hot message, or the attempt number of
	// a retry pair, including this one.
	attempts int
	// elapsed is the time since the pair's first attempt (retry lane).
	elapsed time.Duration
	// deadline is the latest time an attempt may end while the lease holds.
	deadline time.Time
	// gen is the registration the row was claimed under: its attempts run
	// only while the relay can prove it is alive under it.
	gen *generation
	// invalid, when set, is why the row cannot be sent; it goes to dead.
	invalid   string
	pairs     []pair
	remaining int
	// producer is the trace context stored with the message, parent of its
	// delivery spans; nil when tracing is off or the message has none.
	producer *trace.SpanContext
}

type result uint8

const (
	resultOK result = iota
	resultRetry
	resultDead
	resultReleased // not attempted: the relay is stopping, or the lease is too short
	resultDeferred // not attempted: the endpoint is paused, busy or rate-limited
	resultBlocked  // not attempted: an older message of its key is pending for this ordered endpoint
)

// pair is one (message, endpoint) delivery.
type pair struct {
	job        *job
	ep         *endpointState // nil for a job with no endpoint (unroutable or invalid)
	probe      bool           // the one attempt a paused endpoint is allowed
	result     result
	status     int
	errText    string
	response   string
	retryAfter time.Duration
	deadReason string
	attempted  bool
	delay      time.Duration // set by the completer for resultRetry
	notBefore  time.Time     // its turn under the endpoint's rate limit
	took       time.Duration // how long its attempt took
	started    time.Time     // when its attempt started
	errClass   string        // what kind of failure, for the attempt log (errorClass)
}
