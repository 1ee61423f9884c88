package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Herald's own events (docs/alerts.md). They are written into
// outbox.messages, so they are delivered like any message, and only while
// some endpoint subscribes their topic: a relay with no such endpoint
// writes nothing more than before.
const (
	AlertBreakerOpened = "herald.endpoint.breaker_opened"
	AlertBreakerClosed = "herald.endpoint.breaker_closed"
	AlertDisabled      = "herald.endpoint.disabled"
	AlertEnabled       = "herald.endpoint.enabled"
	AlertMessageDead   = "herald.message.dead"
	// AlertVersion is the schema version every event carries in "version":
	// a change that removes or retypes a field makes a new version.
	AlertVersion = 1
	// alertTopicPrefix marks the topics Herald reserves for its events. A
	// message of such a topic that dies raises no herald.message.dead: an
	// alert about an alert could loop.
	alertTopicPrefix = "herald."
)

// BreakerAlert is the payload of herald.endpoint.breaker_opened and
// herald.endpoint.breaker_closed.
type BreakerAlert struct {
	Version  int    `json:"version"`
	Event    string `json:"event"`
	Endpoint string `json:"endpoint"`
	// Relay names the relay whose breaker changed (host:pid): breakers live
	// in each relay's memory, so each relay reports its own transitions.
	Relay string    `json:"relay"`
	At    time.Time `json:"at"`
	// ProbeAt is when the relay tries the endpoint again (opened); null
	// when closed.
	ProbeAt *time.Time `json:"probe_at"`
	// PausedMS is how long the breaker was open (closed); 0 when opened.
	PausedMS int64 `json:"paused_ms"`
	// Suppressed counts this endpoint's transitions not reported since the
	// previous event about it (see breakerAlertGap).
	Suppressed int `json:"suppressed"`
}

// EndpointAlert is the payload of herald.endpoint.disabled and
// herald.endpoint.enabled, written by `herald endpoints disable|enable`
// and by a relay's auto-disable.
type EndpointAlert struct {
	Version  int       `json:"version"`
	Event    string    `json:"event"`
	Endpoint string    `json:"endpoint"`
	At       time.Time `json:"at"`
	// Reason is the disabled_reason (null when none, and when enabled).
	Reason *string `json:"reason"`
}

// DeadAlert is the payload of herald.message.dead for one dead row (one
// message for one endpoint, or a message of no endpoint). It is built in SQL
// (deadAlertsSQL); this type documents it and the tests check it.
type DeadAlert struct {
	Version    int       `json:"version"`
	Event      string    `json:"event"`
	Summary    bool      `json:"summary"` // false
	MessageID  string    `json:"message_id"`
	Seq        int64     `json:"seq"`
	Topic      string    `json:"topic"`
	Key        *string   `json:"key"`
	Endpoint   *string   `json:"endpoint"` // null: the message had no endpoint (unroutable)
	Reason     string    `json:"reason"`   // exhausted, gone, rejected, unroutable, invalid
	Attempts   int       `json:"attempts"`
	LastStatus *int      `json:"last_status"`
	LastError  *string   `json:"last_error"`
	CreatedAt  time.Time `json:"created_at"`
	DiedAt     time.Time `json:"died_at"`
}

// DeadSummaryAlert is the payload of herald.message.dead that stands for
// the deaths a relay did not report one by one (past deadAlertsPerSecond).
type DeadSummaryAlert struct {
	Version int       `json:"version"`
	Event   string    `json:"event"`
	Summary bool      `json:"summary"` // true
	Relay   string    `json:"relay"`
	Count   int64     `json:"count"`
	At      time.Time `json:"at"`
}

// The bounds that keep alerts from flooding or looping (docs/alerts.md).
const (
	// deadAlertsPerSecond is how many herald.message.dead events one relay
	// writes per second, one per dead row; the deaths past it are counted
	// and reported in one summary event per deadSummaryInterval.
	deadAlertsPerSecond = 10
	deadSummaryInterval = time.Second
	// breakerAlertGap is the least time between two breaker events about an
	// endpoint that itself receives breaker events: its own failures would
	// otherwise feed it events about them. Transitions within the gap are
	// counted in the next event's "suppressed".
	breakerAlertGap = time.Minute
	// alertWriteTimeout bounds the write of one event.
	alertWriteTimeout = 10 * time.Second
)

// alerts is a relay's state for its events.
type alerts struct {
	// deadWindow and deadUsed count the dead events written in the current
	// second. Only the completer's goroutine touches them.
	deadWindow time.Time
	deadUsed   int
	// deadSuppressed counts deaths not reported one by one and not yet in
	// a summary. The completer adds, the summary writer takes.
	deadSuppressed atomic.Int64

	mu      sync.Mutex
	breaker map[string]*breakerAlertState // by endpoint, guarded by mu
}

type breakerAlertState struct {
	last       time.Time
	suppressed int
}

// subscribed reports whether some endpoint of rt receives topic.
func (rt *router) subscribed(topic string) bool {
	return len(rt.route(topic, "")) > 0
}

// deadAlertBudget returns how many herald.message.dead events the next
// outcome write may make: none while no endpoint subscribes the topic
// (then the write is the one it always was), else what is left of this
// second's deadAlertsPerSecond. Called by the completer only.
func (r *Relay) deadAlertBudget(now time.Time) (budget int, on bool) {
	if !r.router.Load().subscribed(AlertMessageDead) {
		return 0, false
	}
	a := &r.alerts
	if now.Sub(a.deadWindow) >= time.Second {
		a.deadWindow, a.deadUsed = now, 0
	}
	return max(deadAlertsPerSecond-a.deadUsed, 0), true
}

// deadAlertsWritten records what an outcome write reported: events written,
// and deaths left for the summary.
func (r *Relay) deadAlertsWritten(written, suppressed int64) {
	r.alerts.deadUsed += int(written)
	if suppressed > 0 {
		r.alerts.deadSuppressed.Add(suppressed)
	}
}

// writeDeadSummary writes one herald.message.dead summary for the deaths
// not reported one by one since the last. Their rows are in outbox.dead;
// only the count is at stake, and it is kept for the next try when the
// write fails.
func (r *Relay) writeDeadSummary(ctx context.Context) error {
	n := r.alerts.deadSuppressed.Load()
	if n == 0 {
		return nil
	}
	payload, err := json.Marshal(DeadSummaryAlert{Version: AlertVersion, Event: AlertMessageDead, Summary: true,
		Relay: relayName(), Count: n, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, alertWriteTimeout)
	defer cancel()
	if _, err := r.pool.Exec(ctx, insertAlertSQL, AlertMessageDead, nil, string(payload)); err != nil {
		return err
	}
	r.alerts.deadSuppressed.Add(-n)
	return nil
}

// breakerAlert writes a breaker event about ep, on its own goroutine, if
// some endpoint subscribes it. An endpoint that receives breaker events
// gets at most one about itself per breakerAlertGap: its outage cannot feed
// it a stream of events about that outage. Breakers live in each relay's
// memory, so each relay reports its own transitions. A write that fails is
// logged, not retried: the next transition is reported with its own state.
func (r *Relay) breakerAlert(ep *endpointState, opened bool, at, probeAt time.Time, paused time.Duration) {
	topic := AlertBreakerClosed
	if opened {
		topic = AlertBreakerOpened
	}
	rt := r.router.Load()
	if !rt.subscribed(topic) {
		return
	}
	suppressed := 0
	if receivesBreakerAlerts(rt, ep.Name) {
		a := &r.alerts
		a.mu.Lock()
		if a.breaker == nil {
			a.breaker = map[string]*breakerAlertState{}
		}
		st := a.breaker[ep.Name]
		if st == nil {
			st = &breakerAlertState{}
			a.breaker[ep.Name] = st
		}
		if !st.last.IsZero() && at.Sub(st.last) < breakerAlertGap {
			st.suppressed++
			a.mu.Unlock()
			return
		}
		st.last, suppressed, st.suppressed = at, st.suppressed, 0
		a.mu.Unlock()
	}
	ev := BreakerAlert{Version: AlertVersion, Event: topic, Endpoint: ep.Name, Relay: relayName(), At: at.UTC(),
		PausedMS: paused.Milliseconds(), Suppressed: suppressed}
	if opened {
		p := probeAt.UTC()
		ev.ProbeAt = &p
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		r.log.Error().Err(err).Msg("could not encode a breaker event")
		return
	}
	r.callbacks.Add(1)
	go func() {
		defer r.callbacks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), alertWriteTimeout)
		defer cancel()
		if _, err := r.pool.Exec(ctx, insertAlertSQL, topic, ep.Name, string(payload)); err != nil {
			r.log.Warn().Err(err).Str("endpoint", ep.Name).Str("topic", topic).Msg("could not write a breaker event into outbox.messages")
		}
	}()
}

// receivesBreakerAlerts reports whether the endpoint named name is among
// those the breaker events go to.
func receivesBreakerAlerts(rt *router, name string) bool {
	for _, topic := range []string{AlertBreakerOpened, AlertBreakerClosed} {
		for _, st := range rt.route(topic, "") {
			if st.Name == name {
				return true
			}
		}
	}
	return false
}

// DecodeAlert reads the payload of one of Herald's events of schema
// version AlertVersion: a *BreakerAlert, *EndpointAlert, *DeadAlert or
// *DeadSummaryAlert, chosen by "event" (and "summary"). It is strict, so
// that it checks the documented schema too: every field present, no other.
func DecodeAlert(body []byte) (any, error) {
	var head struct {
		Version int    `json:"version"`
		Event   string `json:"event"`
		Summary bool   `json:"summary"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	if head.Version != AlertVersion {
		return nil, fmt.Errorf("alert: version: want %d, got %d", AlertVersion, head.Version)
	}
	var v any
	switch head.Event {
	case AlertBreakerOpened, AlertBreakerClosed:
		v = &BreakerAlert{}
	case AlertDisabled, AlertEnabled:
		v = &EndpointAlert{}
	case AlertMessageDead:
		v = &DeadAlert{}
		if head.Summary {
			v = &DeadSummaryAlert{}
		}
	default:
		return nil, fmt.Errorf("alert: event: unknown %q", head.Event)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if _, ok := fields[name]; !ok {
			return nil, fmt.Errorf("alert %s: field %q missing", head.Event, name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("alert %s: %w", head.Event, err)
	}
	return v, nil
}

// IsAlertTopic reports whether topic is in the namespace Herald reserves
// for its own events (herald.*).
func IsAlertTopic(topic string) bool { return strings.HasPrefix(topic, alertTopicPrefix) }
