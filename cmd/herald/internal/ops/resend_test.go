package ops_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// startRelay runs a real relay with the endpoints named in names, each
// receiving on its own httptest server, which reports "<name> <webhook-id>
// <body>" on the returned channel. Every endpoint subscribes to "orders.*".
func (b *testBundle) startRelay(t *testing.T, names ...string) <-chan string {
	t.Helper()
	got := make(chan string, 16)
	client := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	var eps []relay.Endpoint
	for _, name := range names {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
			got <- name + " " + r.Header.Get("webhook-id") + " " + string(body)
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		sender, err := client.Endpoint(webhook.EndpointConfig{Name: name, URL: srv.URL,
			Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Timeout: 5 * time.Second})
		require.NoError(t, err)
		eps = append(eps, relay.Endpoint{Name: name, Topics: []string{"orders.*"}, Sender: sender, Timeout: 5 * time.Second})
	}
	r, err := relay.New(b.pool, relay.Config{Endpoints: eps, Listen: true, PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})
	return got
}

// receive waits for n deliveries and returns them in arrival order.
func receive(t *testing.T, got <-chan string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		select {
		case g := <-got:
			out = append(out, g)
		case <-time.After(15 * time.Second):
			t.Fatalf("want %d deliveries, got %q", n, out)
		}
	}
	return out
}

// TestResendIsDeliveredByARelay: a dead message and a delivered one, resent
// with their ids or a new one, to one endpoint or to their topic's
// subscribers, reach a real receiver through a real relay.
func TestResendIsDeliveredByARelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url) VALUES ('billing', 'https://billing.example.com')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason)
		VALUES (1, 'billing', 'msg_dead', 'orders.paid', '{"n": 1}', now(), 12, 'exhausted')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.message_log (delivered_at, seq, id, topic, payload, created_at)
		VALUES (now(), 2, 'msg_done', 'orders.sent', '{"n": 2}', now())`)
	got := b.startRelay(t, "billing", "shipping")

	res, err := ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead", Endpoint: "billing"})
	require.NoError(t, err)
	require.Equal(t, ops.ResendResult{ID: "msg_dead", From: "dead", Topic: "orders.paid", Endpoint: "billing", Seq: res.Seq}, res)
	require.Equal(t, []string{`billing msg_dead {"n": 1}`}, receive(t, got, 1), "to billing only, with the same webhook-id")
	require.Equal(t, []string{"msg_dead@billing"}, heraldtest.DeadIDs(t, b.pool), "the dead row stays")

	res, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_done", NewID: true})
	require.NoError(t, err)
	require.Equal(t, "delivered", res.From)
	require.NotEqual(t, "msg_done", res.ID)
	require.Regexp(t, `^msg_[0-9a-f]{32}$`, res.ID)
	require.ElementsMatch(t, []string{`billing ` + res.ID + ` {"n": 2}`, `shipping ` + res.ID + ` {"n": 2}`}, receive(t, got, 2),
		"to every subscriber of its topic, with the new id")
}

func TestResendRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason)
		VALUES (1, 'billing', 'msg_dead', 'orders.paid', '{}', now(), 12, 'exhausted')`)

	_, err := ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_nowhere"})
	require.True(t, errors.Is(err, ops.ErrNoMessage), "%v", err)

	_, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead", Endpoint: "nope"})
	var fe *ops.FilterError
	require.True(t, errors.As(err, &fe), "%v", err)
	require.Equal(t, "endpoint", fe.Field)

	res, err := ops.ResendMessageDryRun(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead"})
	require.NoError(t, err)
	require.True(t, res.DryRun)
	require.Equal(t, "orders.paid", res.Topic)
	var pending int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM outbox.messages`).Scan(&pending))
	require.Zero(t, pending, "a dry run writes nothing")

	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (1, 'shipping', 'msg_dead', 'orders.paid', '{}', now(), 1, now(), now(), now())`)
	res, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead"})
	require.NoError(t, err)
	require.Equal(t, []string{"shipping"}, res.StillRetrying, "said, not refused: the receiver deduplicates")
	_, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead"})
	require.True(t, errors.Is(err, ops.ErrStillPending), "the first copy is still pending: %v", err)
	_, err = ops.ResendMessageDryRun(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead"})
	require.True(t, errors.Is(err, ops.ErrStillPending), "a dry run says so too: %v", err)
	res, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: "msg_dead", NewID: true})
	require.NoError(t, err, "a new id is always possible")
	require.NotEqual(t, "msg_dead", res.ID)
}
