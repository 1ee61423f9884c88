package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/relay"
)

// QueueStatus is the depth of the outbox's three lanes.
type QueueStatus struct {
	// Pending is how many messages wait in the hot lane (new or in flight).
	Pending int64 `json:"pending" db:"pending"`
	// Retrying is how many message-endpoint pairs wait for a retry.
	Retrying int64 `json:"retrying" db:"retrying"`
	// Dead is how many rows outbox.dead holds.
	Dead int64 `json:"dead" db:"dead"`
	// OldestPendingSeconds is the age of the oldest message in the hot
	// lane; 0 when it is empty.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds" db:"oldest_pending_seconds"`
	// Endpoints is the retry lane per endpoint, by name; empty when it is
	// empty.
	Endpoints []EndpointQueueStatus `json:"endpoints" db:"endpoints"`
}

// EndpointQueueStatus is one endpoint's part of the retry lane.
type EndpointQueueStatus struct {
	Endpoint string `json:"endpoint"`
	// Retrying is how many of its pairs wait for a retry (or, parked, for
	// the endpoint to be usable again).
	Retrying int64 `json:"retrying"`
	// OldestSeconds is the age of the oldest message among them.
	OldestSeconds float64 `json:"oldest_seconds"`
}

// GetQueueStatus reads the outbox's depth (see queueStatusSQL for its cost).
func GetQueueStatus(ctx context.Context, db DB) (QueueStatus, error) {
	rows, err := db.Query(ctx, queueStatusSQL)
	if err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[QueueStatus])
	if err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	return s, nil
}

// StatusMaxPendingAgeDefault is how old the oldest message owed to an
// endpoint may be before GetStatus says it needs attention.
const StatusMaxPendingAgeDefault = 15 * time.Minute

// StatusAttemptsSample bounds the attempts a success rate is computed from:
// the most recent of the window, per endpoint, so that the cost of status
// does not grow with the traffic.
const StatusAttemptsSample = 1000

// breakerStaleAfter is how long past its next probe an open breaker's row
// is still believed: a live relay with messages for the endpoint probes
// then and writes again; one that stopped or died does not.
const breakerStaleAfter = time.Minute

// StatusOptions tunes GetStatus.
type StatusOptions struct {
	// MaxPendingAge: an endpoint whose oldest owed message is older needs
	// attention. nil means StatusMaxPendingAgeDefault and 0 never, as
	// with herald status --max-pending-age; negative is refused. The
	// admin API reads it from ?max_pending_age= (a Go duration).
	MaxPendingAge *time.Duration `json:"max_pending_age"`
	// HistoryAttempts is the history.attempts the relays run with: success
	// rates are computed only when it is all, since with failures every
	// logged attempt is a failure and with off none is logged. Empty means
	// relay.HistoryAttemptsDefault. Not a query parameter: the admin API
	// fills it from the configuration it serves, as the CLI does.
	HistoryAttempts relay.AttemptLog `json:"-"`
}

// Status is the state of every endpoint, and what needs attention.
type Status struct {
	Endpoints []EndpointStatus `json:"endpoints"`
	// Pending counts the hot lane; OldestPendingSeconds is the age of its
	// oldest message (0 when empty).
	Pending              int64   `json:"pending"`
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	// DeadUnrouted counts dead messages that never had an endpoint
	// (unroutable, invalid).
	DeadUnrouted int64 `json:"dead_unrouted"`
	// Attention lists what needs an operator, one line each; empty when
	// nothing does. A face exits 1 (or reports unhealthy) when it is not.
	Attention []string `json:"attention"`
	// NeedsAttention is len(Attention) > 0, for a monitor that checks one
	// field (the admin API answers 200 either way).
	NeedsAttention bool `json:"needs_attention"`
	// RatesUnavailable says why every endpoint's attempt counts and success
	// rates are null ("history.attempts is failures"); empty when they were
	// computed.
	RatesUnavailable string `json:"rates_unavailable,omitempty"`
}

// EndpointStatus is one endpoint's state.
type EndpointStatus struct {
	Name           string `json:"name"`
	Disabled       bool   `json:"disabled"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Pending counts the hot lane's messages routed to it (by topic, as the
	// relays route, or naming it); Retrying its pairs in the retry lane;
	// Dead its rows in outbox.dead.
	Pending  int64 `json:"pending"`
	Retrying int64 `json:"retrying"`
	Dead     int64 `json:"dead"`
	// OldestPendingSeconds is the age of the oldest message it is owed
	// (pending or retrying); 0 when none.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	// Success rates are over the last 5 and 60 minutes of outbox.attempts
	// (at most the StatusAttemptsSample most recent attempts of each
	// window), nil when there was no attempt. They need history.attempts:
	// all; otherwise the counts and the rates are nil and
	// Status.RatesUnavailable says why.
	Attempts5m     *int64   `json:"attempts_5m"`
	SuccessRate5m  *float64 `json:"success_rate_5m"`
	Attempts60m    *int64   `json:"attempts_60m"`
	SuccessRate60m *float64 `json:"success_rate_60m"`
	// Breaker is "closed", or "open" when a relay's breaker for it is open
	// (BreakerRelays name them), as outbox.breakers records.
	Breaker          string     `json:"breaker"`
	BreakerOpenSince *time.Time `json:"breaker_open_since,omitempty"`
	NextProbeAt      *time.Time `json:"next_probe_at,omitempty"`
	BreakerRelays    []string   `json:"breaker_relays,omitempty"`
	// Attention lists what needs an operator about this endpoint.
	Attention []string `json:"attention"`
}

// statusRow is statusSQL's row.
type statusRow struct {
	Hot []struct {
		Topic         string  `json:"topic"`
		Endpoint      string  `json:"endpoint"`
		N             int64   `json:"n"`
		OldestSeconds float64 `json:"oldest_seconds"`
	} `db:"hot"`
	Retry []struct {
		Endpoint      string  `json:"endpoint"`
		N             int64   `json:"n"`
		OldestSeconds float64 `json:"oldest_seconds"`
	} `db:"retry"`
	Dead []struct {
		Endpoint string `json:"endpoint"`
		N        int64  `json:"n"`
	} `db:"dead"`
	Attempts []struct {
		Endpoint string `json:"endpoint"`
		Minutes  int    `json:"minutes"`
		N        int64  `json:"n"`
		OK       int64  `json:"ok"`
	} `db:"attempts"`
	Breakers []struct {
		Endpoint string     `json:"endpoint"`
		Since    time.Time  `json:"since"`
		ProbeAt  *time.Time `json:"probe_at"`
		Relays   []string   `json:"relays"`
	} `db:"breakers"`
}

// GetStatus reads the state of every endpoint of outbox.endpoints (and of
// any endpoint the retry lane or outbox.dead still names) and says what
// needs attention:
//   - a breaker open on some relay,
//   - dead messages (for the endpoint, or without one),
//   - an owed message older than opts.MaxPendingAge,
//   - a disabled endpoint with messages waiting.
//
// See statusSQL for its cost.
func GetStatus(ctx context.Context, db DB, opts StatusOptions) (Status, error) {
	maxAge := StatusMaxPendingAgeDefault
	if opts.MaxPendingAge != nil {
		maxAge = *opts.MaxPendingAge
	}
	if maxAge < 0 {
		return Status{}, &FilterError{Field: "max_pending_age", Value: maxAge.String(), Err: errors.New("must not be negative (0: never)")}
	}
	var ratesUnavailable string
	switch mode := cmp.Or(opts.HistoryAttempts, relay.HistoryAttemptsDefault); mode {
	case relay.AttemptLogAll:
	case relay.AttemptLogFailures, relay.AttemptLogOff:
		ratesUnavailable = "history.attempts is " + string(mode)
	default:
		return Status{}, fmt.Errorf("status: history.attempts %q is not all, failures or off", mode)
	}
	eps, _, err := ListEndpoints(ctx, db)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	// Without every attempt logged there is no rate to compute: the
	// attempts part of statusSQL is given no endpoint, and costs nothing.
	names := []string{}
	if ratesUnavailable == "" {
		for _, ep := range eps {
			names = append(names, ep.Name)
		}
	}
	rows, err := db.Query(ctx, statusSQL, pgx.NamedArgs{"names": names, "sample": StatusAttemptsSample,
		"stale_ms": breakerStaleAfter.Milliseconds()})
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[statusRow])
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}

	byName := map[string]*EndpointStatus{}
	s := Status{Endpoints: make([]EndpointStatus, 0, len(eps)), Attention: []string{}, RatesUnavailable: ratesUnavailable}
	get := func(name string) *EndpointStatus {
		if st := byName[name]; st != nil {
			return st
		}
		st := &EndpointStatus{Name: name, Breaker: "closed", Attention: []string{}}
		if ratesUnavailable == "" {
			// Counted, so 0 until an attempt says otherwise.
			st.Attempts5m, st.Attempts60m = new(int64), new(int64)
		}
		byName[name] = st
		return st
	}
	for _, ep := range eps {
		st := get(ep.Name)
		st.Disabled, st.DisabledReason = ep.Disabled, ep.DisabledReason
	}
	owed := func(st *EndpointStatus, oldest float64) {
		st.OldestPendingSeconds = max(st.OldestPendingSeconds, oldest)
	}
	for _, h := range r.Hot {
		s.Pending += h.N
		s.OldestPendingSeconds = max(s.OldestPendingSeconds, h.OldestSeconds)
		if h.Endpoint != "" {
			st := get(h.Endpoint)
			st.Pending += h.N
			owed(st, h.OldestSeconds)
			continue
		}
		for _, ep := range eps {
			if slices.ContainsFunc(ep.Topics, func(p string) bool { return relay.MatchTopic(p, h.Topic) }) {
				st := get(ep.Name)
				st.Pending += h.N
				owed(st, h.OldestSeconds)
			}
		}
	}
	for _, rt := range r.Retry {
		st := get(rt.Endpoint)
		st.Retrying = rt.N
		owed(st, rt.OldestSeconds)
	}
	for _, d := range r.Dead {
		if d.Endpoint == "" {
			s.DeadUnrouted = d.N
			continue
		}
		get(d.Endpoint).Dead = d.N
	}
	for _, a := range r.Attempts {
		st := get(a.Endpoint)
		rate := float64(a.OK) / float64(a.N)
		if a.Minutes == 5 {
			st.Attempts5m, st.SuccessRate5m = &a.N, &rate
		} else {
			st.Attempts60m, st.SuccessRate60m = &a.N, &rate
		}
	}
	for _, b := range r.Breakers {
		st := get(b.Endpoint)
		since := b.Since
		st.Breaker, st.BreakerOpenSince, st.NextProbeAt, st.BreakerRelays = "open", &since, b.ProbeAt, b.Relays
	}

	for _, name := range slices.Sorted(maps.Keys(byName)) {
		st := byName[name]
		if st.Breaker == "open" {
			st.Attention = append(st.Attention, fmt.Sprintf("circuit breaker open since %s on %s",
				st.BreakerOpenSince.UTC().Format(time.RFC3339), strings.Join(st.BreakerRelays, ", ")))
		}
		if st.Dead > 0 {
			st.Attention = append(st.Attention, fmt.Sprintf("%d dead messages", st.Dead))
		}
		if maxAge > 0 && st.OldestPendingSeconds > maxAge.Seconds() {
			st.Attention = append(st.Attention, fmt.Sprintf("oldest owed message is %s old (more than %s)",
				time.Duration(st.OldestPendingSeconds*float64(time.Second)).Round(time.Second), maxAge))
		}
		if st.Disabled && st.Pending+st.Retrying > 0 {
			st.Attention = append(st.Attention, fmt.Sprintf("disabled with %d messages waiting", st.Pending+st.Retrying))
		}
		for _, a := range st.Attention {
			s.Attention = append(s.Attention, name+": "+a)
		}
		s.Endpoints = append(s.Endpoints, *st)
	}
	if s.DeadUnrouted > 0 {
		s.Attention = append(s.Attention, fmt.Sprintf("%d dead messages without an endpoint (unroutable or invalid)", s.DeadUnrouted))
	}
	s.NeedsAttention = len(s.Attention) > 0
	return s, nil
}
