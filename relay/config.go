package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/herald-relay/herald/webhook"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Defaults and bounds of Config.
const (
	// MaxInFlightDefault is wide enough for slow receivers: requests in
	// flight, not the machine, bound what a relay sends to receivers that
	// take their time (200 endpoints answering in 200 ms need 1,600 in
	// flight for 8,000/s). Each endpoint's MaxInFlight does the real
	// limiting; a worker is a goroutine started per request.
	MaxInFlightDefault = 4096
	// EndpointMaxInFlightDefault is Endpoint.MaxInFlight's default: the
	// window (MaxInFlightDefault) is too wide to be one receiver's.
	EndpointMaxInFlightDefault = 64
	// MaxInFlightBytesDefault bounds the payload bytes a relay holds.
	MaxInFlightBytesDefault = 64 << 20
	LeaseDefault            = 60 * time.Second
	// LeaseMargin is the least by which Lease must exceed every endpoint's
	// timeout: the headroom a claimed delivery has to wait for a worker.
	LeaseMargin = 5 * time.Second
	// attemptMargin is the least lease an attempt must leave unused when it
	// ends: room for clock skew between relay and database and for the write.
	attemptMargin          = time.Second
	PollIntervalDefault    = time.Second
	AckIntervalDefault     = 5 * time.Millisecond
	AckBatchDefault        = 1024
	ShutdownTimeoutDefault = 30 * time.Second
	VacuumThresholdDefault = 20000
	// HeartbeatIntervalDefault is how often a relay proves it is alive.
	HeartbeatIntervalDefault = 250 * time.Millisecond
	// HeartbeatTimeoutDefault is how long a heartbeat keeps a relay alive
	// (by PostgreSQL's clock): a relay that stops sending heartbeats has its
	// work taken over this long after its last one. The relay cancels its
	// own requests when it has had no heartbeat through for this less
	// heartbeatMargin, so a PostgreSQL stall longer than that less a
	// HeartbeatInterval (1.05s) costs duplicates (docs/guarantees.md). 1.8s,
	// not 2s: a killed relay's work is then taken over within 2s of the
	// kill in every herald-bench kill run (1.68-1.76s; with 2s, 1.81-2.10s).
	HeartbeatTimeoutDefault = 1800 * time.Millisecond
	// heartbeatMargin is how much sooner than PostgreSQL a relay considers
	// its own heartbeat lapsed, and cancels its requests in flight: room for
	// its clock against PostgreSQL's (parts per million: a millisecond at
	// most), for the watchdog being scheduled late (45 ms at worst measured
	// on a loaded 2-core machine, race detector on), and for a cancelled
	// request to end at the receiver (a one-way trip of the network). Ten
	// times what was measured, not a stopped process: docs/guarantees.md.
	heartbeatMargin = 500 * time.Millisecond
	// claimTimeout bounds one claim round trip.
	claimTimeout = 30 * time.Second
	// vacuumCheckInterval is how often dead row versions are counted.
	vacuumCheckInterval = time.Second
	// Circuit breaker defaults.
	BreakerFailureThresholdDefault = 10
	// BreakerOff as BreakerConfig.FailureThreshold disables the breaker.
	BreakerOff                     = -1
	BreakerProbeIntervalDefault    = 5 * time.Second
	BreakerMaxProbeIntervalDefault = 5 * time.Minute
	// busyPollInterval is how soon the claimer looks again after a claim
	// that found messages (but fewer than it asked for); each claim that
	// finds none doubles the wait, up to PollInterval. Producers that skip
	// NOTIFY are then found within milliseconds while they keep writing,
	// at the cost of a few empty claims after each burst.
	busyPollInterval = 5 * time.Millisecond
	// retryPollInterval bounds how often the retry lane is polled while the
	// hot lane keeps the claimer busy.
	retryPollInterval = 50 * time.Millisecond
	// progressInterval is how often a busy relay logs its progress.
	progressInterval = 10 * time.Second
	// HistoryAttemptsDefault logs every attempt: the answer to "what did
	// you send, and what did they say?" is there by default, for 10-18 us
	// of PostgreSQL CPU per attempt, written in the outcome flush
	// (docs/performance.md, History).
	HistoryAttemptsDefault = AttemptLogAll
	// HistoryRetentionDefault keeps a week of history: the questions a
	// support desk gets are about the last days ("what did you send us
	// yesterday?"), and a week is what a busy relay can afford to keep (an
	// attempt takes about 220 bytes: 19 GB a day at a sustained 1,000/s;
	// docs/performance.md, History).
	HistoryRetentionDefault = 7 * 24 * time.Hour
	// historyDaysAhead is how many days of partitions exist ahead of today:
	// history is written even if maintenance does not run for a week.
	historyDaysAhead = 7
	// historyMaintenanceTimeout bounds one run of MaintainHistory.
	historyMaintenanceTimeout = time.Minute
)

// Config configures a Relay. The zero value of every field but Endpoints
// means its default.
type Config struct {
	// Endpoints receive the messages. May be empty: messages are then kept
	// as unroutable.
	Endpoints []Endpoint
	// Retry computes the next attempt after a failure. Defaults to
	// DefaultRetryPolicy().
	Retry RetryPolicy
	// MaxInFlight bounds the pairs a relay holds across all endpoints:
	// HTTP requests in flight, and pairs queued in memory for an endpoint at
	// its own MaxInFlight. It is a ceiling on memory (a goroutine and a
	// connection per request, tens of KiB) rather than the pace: each
	// endpoint's MaxInFlight paces it, and a claim never takes more than
	// the endpoints can start or queue (each queues as many as its
	// MaxInFlight, at least 16), so a wider window does not make claimed
	// pairs wait longer for their turn. Defaults to 4096:
	// 200 endpoints whose receivers answer in 200 ms get over 8,000
	// deliveries/s on 2 cores, in under 300 MB (README, Performance).
	MaxInFlight int
	// MaxInFlightBytes bounds the payload bytes of the messages a relay has
	// claimed and not yet finished, so that a few huge payloads cannot
	// exhaust its memory: a claim of the hot lane takes messages up to what
	// is left of it, and at least one when nothing is in flight (a message
	// larger than the bound goes alone). Defaults to 64 MiB.
	MaxInFlightBytes int64
	// Lease is how long a claimed message stays invisible to other relays.
	// It must exceed every endpoint's timeout by LeaseMargin, so that a
	// request always ends before its lease does. Defaults to 60s.
	Lease time.Duration
	// PollInterval is how often an idle relay looks for new messages when
	// no notification wakes it. After a claim that found messages it looks
	// again within 5ms, doubling the wait while it finds none, up to
	// PollInterval. Defaults to 1s.
	PollInterval time.Duration
	// Listen makes the relay LISTEN for producers' notifications, which wake
	// it within milliseconds of a commit. Defaults to false in this struct;
	// the herald command turns it on (relay.listen).
	Listen bool
	// AckInterval is the longest a finished delivery waits before its
	// outcome is written. Defaults to 5ms.
	AckInterval time.Duration
	// AckBatch flushes outcomes as soon as this many are pending. Defaults to
	// AckBatchDefault (1024): the completer writes one flush at a time, and
	// under a backlog it was busy most of the drain with 256 (a flush's
	// round trip and commit are paid per batch).
	AckBatch int
	// ShutdownTimeout is how long Stop lets requests in flight finish before
	// cancelling them. Defaults to 30s.
	ShutdownTimeout time.Duration
	// Logger receives structured progress and failure logs. Defaults to a
	// no-op logger.
	Logger zerolog.Logger
	// HeartbeatInterval is how often the relay renews its liveness in
	// outbox.relays. Defaults to HeartbeatIntervalDefault (250ms).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long one heartbeat keeps the relay alive, by
	// PostgreSQL's clock. Once it has passed without a heartbeat, the other
	// relays declare the relay dead and claims take over its rows without
	// waiting out their lease. The relay itself cancels its requests in
	// flight 500ms sooner (by its own clock, counted from when it sent its
	// last heartbeat that succeeded), and registers again under a new id,
	// so that two relays never deliver one message at the same time. At
	// least 3 x HeartbeatInterval and 500ms + 2 x HeartbeatInterval.
	// Defaults to HeartbeatTimeoutDefault (1.8s).
	HeartbeatTimeout time.Duration
	// Metrics, if set, records Prometheus metrics.
	Metrics *Metrics
	// TracerProvider, if set, traces each claim (a span linked to the
	// claimed messages' traces) and each delivery attempt (a span that is
	// a child of the producer's, whose traceparent the request carries to
	// the endpoint). Defaults to nil: no tracing, at no cost (a no-op
	// provider counts as nil).
	TracerProvider trace.TracerProvider
	// Breaker pauses an endpoint after consecutive failures and probes it
	// with one delivery at growing intervals. Its zero value is the
	// default breaker; see BreakerConfig.
	Breaker BreakerConfig
	// DisableAfter disables an endpoint whose breaker has been open this
	// long, by calling OnDisable (which should persist it, so that every
	// relay and a restart see it). 0 never disables.
	DisableAfter time.Duration
	// OnDisable is called once, on its own goroutine, when an endpoint has
	// failed for DisableAfter.
	OnDisable func(endpoint, reason string)
	// VacuumThreshold makes the relay VACUUM outbox.messages or
	// outbox.deliveries itself once either holds this many dead row
	// versions, for when autovacuum is off or falls behind: dead versions
	// at the head of the claim's index scan make every claim slower.
	// Defaults to 20000; negative never vacuums.
	VacuumThreshold int
	// History configures what the relay records of its deliveries in
	// outbox.attempts and outbox.message_log; see HistoryConfig.
	History HistoryConfig
}

// HistoryConfig configures the delivery history. Both tables are
// partitioned by day: MaintainHistory (at Start, then on the caller's
// schedule) creates the partitions ahead and drops those past Retention.
type HistoryConfig struct {
	// Attempts says which delivery attempts are logged in outbox.attempts:
	// AttemptLogAll, AttemptLogFailures (not the 2xx) or AttemptLogOff.
	// Defaults to HistoryAttemptsDefault (all).
	Attempts AttemptLog
	// Messages copies each message delivered to all its endpoints into
	// outbox.message_log, with its payload and headers, in the statement
	// that deletes it from the hot lane, or its last pair from the retry
	// lane. Defaults to false.
	Messages bool
	// Retention is how long history is kept: MaintainHistory drops a day's
	// partitions once the whole day is older than this, so rows live
	// between Retention and Retention plus a day. Negative keeps every
	// day. Defaults to HistoryRetentionDefault (7 days).
	Retention time.Duration
}

func (c Config) withDefaults() Config {
	c.MaxInFlight = cmp.Or(c.MaxInFlight, MaxInFlightDefault)
	c.MaxInFlightBytes = cmp.Or(c.MaxInFlightBytes, MaxInFlightBytesDefault)
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.AckInterval = cmp.Or(c.AckInterval, AckIntervalDefault)
	c.AckBatch = cmp.Or(c.AckBatch, AckBatchDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.Breaker.FailureThreshold = cmp.Or(c.Breaker.FailureThreshold, BreakerFailureThresholdDefault)
	c.Breaker.ProbeInterval = cmp.Or(c.Breaker.ProbeInterval, BreakerProbeIntervalDefault)
	c.Breaker.MaxProbeInterval = max(cmp.Or(c.Breaker.MaxProbeInterval, BreakerMaxProbeIntervalDefault), c.Breaker.ProbeInterval)
	c.VacuumThreshold = cmp.Or(c.VacuumThreshold, VacuumThresholdDefault)
	c.History.Attempts = cmp.Or(c.History.Attempts, HistoryAttemptsDefault)
	c.History.Retention = cmp.Or(c.History.Retention, HistoryRetentionDefault)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, HeartbeatIntervalDefault)
	c.HeartbeatTimeout = cmp.Or(c.HeartbeatTimeout, HeartbeatTimeoutDefault)
	if c.Retry == nil {
		c.Retry = DefaultRetryPolicy()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("MaxInFlight must be at least 1 (got %d)", c.MaxInFlight))
	}
	if c.MaxInFlightBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxInFlightBytes must be at least 1 (got %d)", c.MaxInFlightBytes))
	}
	if c.AckBatch < 1 {
		errs = append(errs, fmt.Errorf("AckBatch must be at least 1 (got %d)", c.AckBatch))
	}
	switch c.History.Attempts {
	case AttemptLogAll, AttemptLogFailures, AttemptLogOff:
	default:
		errs = append(errs, fmt.Errorf("History.Attempts must be all, failures or off (got %q)", c.History.Attempts))
	}
	if c.HeartbeatInterval < 0 {
		errs = append(errs, fmt.Errorf("HeartbeatInterval must be positive (got %s)", c.HeartbeatInterval))
	}
	if least := HeartbeatTimeoutLeast(c.HeartbeatInterval); c.HeartbeatTimeout < least {
		errs = append(errs, fmt.Errorf("HeartbeatTimeout %s must be at least 3 x HeartbeatInterval and 500ms + 2 x HeartbeatInterval (%s)",
			c.HeartbeatTimeout, least))
	}
	seen := make(map[string]bool, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		if ep.Name == "" {
			errs = append(errs, fmt.Errorf("Endpoints[%d]: Name is empty", i))
		}
		if seen[ep.Name] {
			errs = append(errs, fmt.Errorf("Endpoints[%d]: duplicate name %q", i, ep.Name))
		}
		seen[ep.Name] = true
		if ep.Unusable != nil {
			continue // it is never sent to: nothing else of it matters
		}
		if ep.Sender == nil {
			errs = append(errs, fmt.Errorf("Endpoints[%d] (%s): Sender is nil", i, ep.Name))
		}
		if ep.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("Endpoints[%d] (%s): Timeout must be positive", i, ep.Name))
		}
		if c.Lease < ep.Timeout+LeaseMargin {
			errs = append(errs, fmt.Errorf("Lease %s must be at least endpoint %s's timeout %s + %s",
				c.Lease, ep.Name, ep.Timeout, LeaseMargin))
		}
	}
	return errors.Join(errs...)
}

// HeartbeatTimeoutLeast is the shortest HeartbeatTimeout for interval:
// two heartbeats may be late or lost without the relay cancelling its
// requests, its own deadline being HeartbeatTimeout - 500ms after each.
func HeartbeatTimeoutLeast(interval time.Duration) time.Duration {
	return max(3*interval, heartbeatMargin+2*interval)
}

// BreakerConfig configures the per-endpoint circuit breaker.
type BreakerConfig struct {
	// FailureThreshold is the number of consecutive failed attempts that
	// pause an endpoint; BreakerOff (or any negative number) disables the
	// breaker. Defaults to BreakerFailureThresholdDefault (10).
	FailureThreshold int
	// ProbeInterval is how long a paused endpoint waits before one probe
	// delivery; it doubles after each failed probe. Defaults to
	// BreakerProbeIntervalDefault (5s).
	ProbeInterval time.Duration
	// MaxProbeInterval caps ProbeInterval's growth. Defaults to
	// BreakerMaxProbeIntervalDefault (5m).
	MaxProbeInterval time.Duration
}

// Sender makes one delivery attempt; *webhook.Endpoint implements it. It
// returns the receiver's acknowledgment, whose status the attempt log keeps
// (outbox.attempts.status), and for anything else an error that may be a
// *webhook.DeliveryError.
type Sender interface {
	Send(ctx context.Context, m *webhook.Message) (webhook.Result, error)
}

// Endpoint is a destination and the topics it subscribes to, as the relay
// routes and paces it. Layer: the relay library's input; how a request is
// made is the Sender's business (a *webhook.Endpoint in herald). One of the
// endpoint types that each carry a boundary: config.Endpoint (the YAML file
// and outbox.endpoints rows, herald only), webhook.EndpointConfig (how to
// reach a receiver), webhook.Endpoint (the sender built from it), this, and
// the relay's private endpointState (its running state).
type Endpoint struct {
	// Name identifies the endpoint in the database, logs and metrics.
	Name string
	// Topics are glob patterns; '*' matches any run of characters, dots
	// included. A message whose endpoint column names this endpoint is
	// delivered here whatever its topic.
	Topics []string
	// Sender delivers to the endpoint. If it has a Close() method, as
	// *webhook.Endpoint does, the relay calls it once SetEndpoints has
	// replaced or removed the endpoint and the requests it had in flight
	// have finished, unless a current endpoint has the same Sender. The
	// senders in use when the relay stops are the caller's to close.
	Sender Sender
	// Timeout is the Sender's per-attempt timeout; the relay never starts an
	// attempt unless the lease outlasts it.
	Timeout time.Duration
	// MaxInFlight bounds this endpoint's concurrent requests from one relay;
	// as many again wait in memory for a slot. Negative means no bound
	// beyond Config.MaxInFlight. Defaults to EndpointMaxInFlightDefault (64).
	MaxInFlight int
	// RateLimit bounds requests per second from one relay; 0 means none.
	// Claimed pairs wait in memory for their turn, up to a second ahead;
	// claims for the endpoint are sized to the turns within that second.
	RateLimit float64
	// RateBurst is the rate limiter's burst. Defaults to 1.
	RateBurst int
	// Ordered delivers the messages of one key in commit order: a message
	// is not sent before the key's previous message was acknowledged by
	// this endpoint (or died, see OnDeadSkip).
	Ordered bool
	// OnDeadSkip lets an ordered key move on past a message that died for
	// this endpoint. By default a dead message blocks its key until an
	// operator replays it.
	OnDeadSkip bool
	// Disabled keeps the endpoint's messages waiting in the retry lane,
	// unattempted, until it is enabled again.
	Disabled bool
	// Unusable, when set, says why the endpoint exists but cannot be used
	// now: a TLS file that does not load, settings that do not validate, a
	// timeout the lease cannot hold. The endpoint stays in routing, so that
	// nothing owed to it is acknowledged without it or dies as unroutable:
	// its pairs wait in the retry lane, unattempted (no attempt counted),
	// with this error as their last_error, until SetEndpoints brings a
	// usable version, which finds them due. Sender and Timeout may be unset.
	// The error is stored and logged: it must hold no secret.
	Unusable error
}
