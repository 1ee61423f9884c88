package ops_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
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
