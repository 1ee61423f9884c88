package ops_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
)

func TestQueueStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, err := ops.GetQueueStatus(b.ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, ops.QueueStatus{Endpoints: []ops.EndpointQueueStatus{}}, s, "an empty outbox")

	b.insertSix(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, created_at) VALUES
		('m1', 't', '{}', now() - interval '90 seconds'), ('m2', 't', '{}', now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES
		(97, 'other', 'm0', 't', '{}', now(), 1, now(), now(), now()),
		(98, 'acme', 'm0', 't', '{}', now() - interval '1 hour', 1, now(), now(), now()),
		(99, 'acme', 'm1', 't', '{}', now(), 1, now(), now(), 'infinity')`)
	s, err = ops.GetQueueStatus(b.ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, int64(2), s.Pending)
	require.Equal(t, int64(3), s.Retrying)
	require.Len(t, s.Endpoints, 2)
	require.Equal(t, "acme", s.Endpoints[0].Endpoint)
	require.Equal(t, int64(2), s.Endpoints[0].Retrying)
	require.InDelta(t, 3600, s.Endpoints[0].OldestSeconds, 60)
	require.Equal(t, "other", s.Endpoints[1].Endpoint)
	require.Equal(t, int64(1), s.Endpoints[1].Retrying)
	require.Equal(t, int64(6), s.Dead)
	require.InDelta(t, 90, s.OldestPendingSeconds, 30)
}

// TestStatusPerEndpoint: counts per endpoint (the hot lane routed by topic
// as the relays route), success rates from the attempts, breakers from
// outbox.breakers, and every rule that asks for attention.
func TestStatusPerEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, err := ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{})
	require.NoError(t, err)
	require.Empty(t, s.Attention, "an empty outbox needs nothing")
	require.False(t, s.NeedsAttention)
	require.Empty(t, s.Endpoints)

	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics, disabled_at, disabled_reason) VALUES
		('billing', 'https://b.example.com', '{orders.*}', NULL, NULL),
		('shipping', 'https://s.example.com', '{orders.paid}', NULL, NULL),
		('quiet', 'https://q.example.com', '{invoices.*}', NULL, NULL),
		('off', 'https://o.example.com', '{other}', now(), 'maintenance')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, endpoint, created_at) VALUES
		('m1', 'orders.paid', '{}', NULL, now() - interval '20 minutes'),
		('m2', 'orders.created', '{}', NULL, now()),
		('m3', 'anything', '{}', 'off', now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES
		(90, 'shipping', 'm0', 'orders.paid', '{}', now() - interval '1 minute', 1, now(), now(), now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason) VALUES
		(91, 'shipping', 'm9', 'orders.paid', '{}', now(), 'gone'),
		(92, NULL, 'm8', 'nobody', '{}', now(), 'unroutable')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class) VALUES
		(now() - interval '1 minute', 1, 'a', 'billing', 1, 1, 200, NULL),
		(now() - interval '2 minutes', 2, 'b', 'billing', 1, 1, 503, 'status'),
		(now() - interval '3 minutes', 3, 'c', 'billing', 1, 1, 204, NULL),
		(now() - interval '4 minutes', 4, 'd', 'billing', 1, 1, 200, NULL),
		(now() - interval '30 minutes', 5, 'e', 'billing', 1, 1, NULL, 'timeout'),
		(now() - interval '2 hours', 6, 'f', 'billing', 1, 1, NULL, 'timeout')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.breakers (endpoint, relay, open, since, probe_at, updated_at) VALUES
		('billing', 'host-a:1', true, now() - interval '5 minutes', now() + interval '10 seconds', now()),
		('billing', 'host-b:2', false, now(), NULL, now()),
		('quiet', 'host-dead:3', true, now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour')`)

	s, err = ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{MaxPendingAge: ptr(10 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, int64(3), s.Pending)
	require.Equal(t, int64(1), s.DeadUnrouted)
	byName := map[string]ops.EndpointStatus{}
	var names []string
	for _, e := range s.Endpoints {
		byName[e.Name] = e
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"billing", "off", "quiet", "shipping"}, names)

	billing := byName["billing"]
	require.Equal(t, int64(2), billing.Pending, "both orders.* messages")
	require.InDelta(t, 1200, billing.OldestPendingSeconds, 60)
	require.Equal(t, int64(4), *billing.Attempts5m)
	require.InDelta(t, 0.75, *billing.SuccessRate5m, 0.001)
	require.Equal(t, int64(5), *billing.Attempts60m)
	require.InDelta(t, 0.6, *billing.SuccessRate60m, 0.001)
	require.Equal(t, "open", billing.Breaker)
	require.Equal(t, []string{"host-a:1"}, billing.BreakerRelays)
	require.Len(t, billing.Attention, 2, "breaker open, oldest message 20 minutes old: %q", billing.Attention)

	shipping := byName["shipping"]
	require.Equal(t, int64(1), shipping.Pending)
	require.Equal(t, int64(1), shipping.Retrying)
	require.Equal(t, int64(1), shipping.Dead)
	require.Equal(t, "closed", shipping.Breaker)
	require.Nil(t, shipping.SuccessRate5m, "no attempts: no rate")
	require.Equal(t, int64(0), *shipping.Attempts5m, "no attempts: a count of 0")
	require.Equal(t, []string{"1 dead messages", "oldest owed message is 20m0s old (more than 10m0s)"}, shipping.Attention)

	quiet := byName["quiet"]
	require.Equal(t, "closed", quiet.Breaker, "a breaker row whose probe is an hour overdue is stale")
	require.Empty(t, quiet.Attention)

	off := byName["off"]
	require.True(t, off.Disabled)
	require.Equal(t, "maintenance", off.DisabledReason)
	require.Equal(t, int64(1), off.Pending, "the message naming it")
	require.Equal(t, []string{"disabled with 1 messages waiting"}, off.Attention)

	require.Len(t, s.Attention, 6)
	require.True(t, s.NeedsAttention)
	require.Contains(t, s.Attention, "shipping: 1 dead messages")
	require.Contains(t, s.Attention, "1 dead messages without an endpoint (unroutable or invalid)")

	s, err = ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{MaxPendingAge: ptr(time.Duration(0))})
	require.NoError(t, err)
	require.Len(t, s.Attention, 4, "no age rule")
}

// TestStatusRatesNeedEveryAttemptLogged: with history.attempts failures
// the logged attempts are all failures and with off there are none, so a
// rate computed from them would read 0% or "no attempts". Unless every
// attempt is logged, the rates and counts are null and RatesUnavailable
// says why.
func TestStatusRatesNeedEveryAttemptLogged(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('billing', 'https://b.example.com', '{orders.*}')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class) VALUES
		(now() - interval '1 minute', 1, 'a', 'billing', 1, 1, 503, 'status')`)

	for _, mode := range []relay.AttemptLog{relay.AttemptLogFailures, relay.AttemptLogOff} {
		s, err := ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{HistoryAttempts: mode})
		require.NoError(t, err)
		require.Equal(t, "history.attempts is "+string(mode), s.RatesUnavailable)
		require.Len(t, s.Endpoints, 1)
		e := s.Endpoints[0]
		require.Nil(t, e.SuccessRate5m, "%s: not 0%%", mode)
		require.Nil(t, e.SuccessRate60m, mode)
		require.Nil(t, e.Attempts5m, "%s: not a count of the logged attempts", mode)
		require.Nil(t, e.Attempts60m, mode)
	}

	for _, mode := range []relay.AttemptLog{relay.AttemptLogAll, ""} {
		s, err := ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{HistoryAttempts: mode})
		require.NoError(t, err)
		require.Empty(t, s.RatesUnavailable, "%q: every attempt is logged", mode)
		e := s.Endpoints[0]
		require.Equal(t, int64(1), *e.Attempts5m)
		require.InDelta(t, 0.0, *e.SuccessRate5m, 0.001)
	}

	_, err := ops.GetStatus(b.ctx, b.pool, ops.StatusOptions{HistoryAttempts: "some"})
	require.ErrorContains(t, err, "history.attempts")
}

func ptr[T any](v T) *T { return &v }
