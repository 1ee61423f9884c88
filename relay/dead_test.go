package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// deadEndpoints returns, for the dead rows of message id, each row's
// endpoint ("" for none) and reason, by endpoint.
func deadEndpoints(t *testing.T, pool *pgxpool.Pool, id string) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT coalesce(endpoint, ''), reason FROM outbox.dead WHERE id = $1`, id)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var ep, reason string
		require.NoError(t, rows.Scan(&ep, &reason))
		out[ep] = reason
	}
	require.NoError(t, rows.Err())
	return out
}

// TestInvalidMessageDiesForEachEndpointAndBlocksItsKey: a message that
// cannot be sent as it is (its headers are not valid) dies for each endpoint
// it was for, so that an ordered endpoint's later messages of its key wait
// for it (on_dead: block) and a replay goes to those endpoints only. When
// the endpoint stops being ordered, the messages parked behind it flow.
func TestInvalidMessageDiesForEachEndpointAndBlocksItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	ordered := endpoint(t, "ordered", rc.srv.URL, "orders.*")
	ordered.Ordered = true
	other := endpoint(t, "other", rc.srv.URL, "orders.*")
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ordered, other}})

	// Producers in other languages write SQL; a header value that is not a
	// string passes the table's CHECK but cannot be sent.
	_, err := pool.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload, key, headers)
		VALUES ('msg_bad', 'orders.created', '{}', 'order-1', '{"X-Count": 3}')`)
	require.NoError(t, err)
	enqueue(t, pool, outbox.Message{ID: "msg_next", Topic: "orders.paid", Key: "order-1", Payload: json.RawMessage(`{}`)})

	eventually(t, 10*time.Second, func() bool { return len(deadEndpoints(t, pool, "msg_bad")) == 2 }, "msg_bad dead for both endpoints")
	require.Equal(t, map[string]string{"ordered": "invalid", "other": "invalid"}, deadEndpoints(t, pool, "msg_bad"))

	// The unordered endpoint gets the next message; the ordered one holds
	// it behind the dead one.
	eventually(t, 10*time.Second, func() bool {
		return rc.uniqueIDs() == 1 && count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "msg_next delivered to the unordered endpoint and settled")
	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_next' AND endpoint = 'ordered' AND next_attempt_at = 'infinity'`) == 1
	}, "msg_next parked for the ordered endpoint behind the dead msg_bad")
	for _, q := range rc.requests() {
		require.Equal(t, "msg_next", q.id)
	}
	require.Len(t, rc.requests(), 1, "the ordered endpoint did not get msg_next past the dead msg_bad")

	// The operator turns ordering off: what was parked for order's sake
	// flows.
	ordered.Ordered = false
	require.NoError(t, r.SetEndpoints([]relay.Endpoint{ordered, other}))
	eventually(t, 10*time.Second, func() bool {
		return len(rc.requests()) == 2 && count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "msg_next delivered once the endpoint is no longer ordered")
}

// TestMessageNamingAnUnknownEndpointDiesForThatEndpoint: the dead row keeps
// the endpoint the message named, so that a replay sends it there and to no
// subscriber of its topic.
func TestMessageNamingAnUnknownEndpointDiesForThatEndpoint(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusOK })
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "subscriber", rc.srv.URL, "*")}})
	enqueue(t, pool, outbox.Message{ID: "msg_for_ghost", Topic: "t", Endpoint: "ghost", Key: "k", Payload: json.RawMessage(`{}`)})

	eventually(t, 10*time.Second, func() bool { return len(deadEndpoints(t, pool, "msg_for_ghost")) == 1 }, "dead")
	require.Equal(t, map[string]string{"ghost": "unroutable"}, deadEndpoints(t, pool, "msg_for_ghost"))
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.dead WHERE id = 'msg_for_ghost'
		AND last_error = 'endpoint ghost is not configured'`))
	require.Empty(t, rc.requests())
}
