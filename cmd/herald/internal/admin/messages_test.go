package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// insertMessages writes one message in each state: msg_p pending (named to
// billing, with a secret-looking header), msg_r retrying for billing, msg_d
// dead for billing with two attempts, msg_l delivered (message log), each
// created a minute after the one before.
func (b *testBundle) insertMessages(t *testing.T) {
	t.Helper()
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('billing', 'https://billing.example.com', '{orders.*}')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.message_log (delivered_at, seq, id, topic, payload, created_at)
		VALUES (now(), 1, 'msg_l', 'orders.sent', '{"n": 1}', now() - interval '4 minutes')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason, last_status, last_error)
		VALUES (2, 'billing', 'msg_d', 'orders.paid', '{"n": 2}', now() - interval '3 minutes', 2, 'exhausted', 503, 'status 503')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class, error) VALUES
		(now() - interval '2 minutes', 2, 'msg_d', 'billing', 1, 10, NULL, 'timeout', 'timeout after 10s'),
		(now() - interval '1 minute', 2, 'msg_d', 'billing', 2, 20, 503, 'status', 'status 503')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at, last_status) VALUES
		(3, 'billing', 'msg_r', 'orders.paid', '{"n": 3}', now() - interval '2 minutes', 1, now(), now(), now() + interval '1 minute', 500)`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, endpoint, headers, created_at)
		VALUES ('msg_p', 'orders.new', '{"n": 4}', 'billing', '{"X-Api-Key": "hunter2", "X-Tenant": "acme"}', now() - interval '1 minute')`)
}

// list calls GET path and returns its page as "id status" lines.
func (b *testBundle) list(t *testing.T, path string) ([]string, string) {
	t.Helper()
	var page ops.MessageList
	b.ok(t, "GET", path, "", 200, &page)
	lines := []string{}
	for _, m := range page.Messages {
		lines = append(lines, m.ID+" "+m.Status)
	}
	return lines, page.Next
}

func TestMessageRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertMessages(t)

	all := []string{"msg_p pending", "msg_r retrying", "msg_d dead", "msg_l delivered"}
	got, next := b.list(t, "/v1/messages")
	require.Equal(t, all, got, "newest first")
	require.Empty(t, next)
	got, _ = b.list(t, "/v1/messages?status=dead&endpoint=billing")
	require.Equal(t, []string{"msg_d dead"}, got)
	got, _ = b.list(t, "/v1/messages?topic=orders.paid&since=150s")
	require.Equal(t, []string{"msg_r retrying"}, got, "since as a duration ago")
	until := url.QueryEscape(time.Now().Add(-150 * time.Second).UTC().Format(time.RFC3339Nano))
	got, _ = b.list(t, "/v1/messages?until="+until)
	require.Equal(t, []string{"msg_d dead", "msg_l delivered"}, got, "until as an RFC 3339 time")

	// The keyset cursor pages through the same lines, one at a time.
	var paged []string
	path := "/v1/messages?limit=1"
	for range len(all) + 1 {
		page, next := b.list(t, path)
		paged = append(paged, page...)
		if next == "" {
			break
		}
		path = "/v1/messages?limit=1&after=" + url.QueryEscape(next)
	}
	require.Equal(t, all, paged)

	// Bad filters name their parameter.
	for query, field := range map[string]string{
		"since=yesterday": "since", "until=-1h": "until", "status=lost": "status", "after=bm90IGEgY3Vyc29y": "after",
		"after=" + strings.Repeat("x", 1025): "after", "limit=-1": "limit", "limit=10001": "limit", "limit=ten": "limit",
		"since=1h&until=2h": "until", "colour=red": "colour",
	} {
		b.fails(t, "GET", "/v1/messages?"+query, "", 400, field)
	}

	// Show: every place and every attempt; secret-looking headers masked.
	var m ops.Message
	b.ok(t, "GET", "/v1/messages/msg_d", "", 200, &m)
	require.Equal(t, "orders.paid", m.Topic)
	require.JSONEq(t, `{"n": 2}`, string(m.Payload))
	require.Len(t, m.Dead, 1)
	require.Equal(t, "exhausted", m.Dead[0].Reason)
	require.Len(t, m.Attempts, 2)
	require.Equal(t, "timeout", m.Attempts[0].ErrorClass, "in time order")
	require.Equal(t, 503, *m.Attempts[1].Status)
	b.ok(t, "GET", "/v1/messages/msg_p", "", 200, &m)
	require.NotNil(t, m.Pending)
	require.Equal(t, map[string]string{"X-Api-Key": "[redacted]", "X-Tenant": "acme"}, m.Headers)
	b.ok(t, "GET", "/v1/messages/msg_r", "", 200, &m)
	require.Equal(t, "billing", m.Retrying[0].Endpoint)
	// An id may hold "/" (messages_id_check), escaped in the path.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason)
		VALUES (5, 'billing', 'orders/42', 'orders.paid', '{}', now() - interval '1 hour', 'gone')`)
	b.ok(t, "GET", "/v1/messages/orders%2F42", "", 200, &m)
	require.Equal(t, "orders/42", m.ID)
	require.Len(t, m.Dead, 1)
	b.fails(t, "GET", "/v1/messages/orders/42", "", 404, "")
	b.fails(t, "GET", "/v1/messages/msg_nowhere", "", 404, "")
	b.fails(t, "GET", "/v1/messages/"+strings.Repeat("x", 256), "", 400, "id")
	b.fails(t, "GET", "/v1/messages/msg_d?attempts=1", "", 400, "attempts")

	// Resend: a dry run changes nothing; the real one puts a copy in the
	// hot lane, where a second one with the same id is a conflict.
	var res ops.ResendResult
	b.ok(t, "POST", "/v1/messages/msg_d/resend", `{"dry_run": true}`, 200, &res)
	require.True(t, res.DryRun)
	require.Equal(t, "dead", res.From)
	require.Empty(t, res.Endpoint, "to its topic's subscribers, like a new message")
	got, _ = b.list(t, "/v1/messages?status=pending")
	require.Equal(t, []string{"msg_p pending"}, got, "a dry run resends nothing")
	b.ok(t, "POST", "/v1/messages/msg_d/resend", ``, 200, &res)
	require.Equal(t, ops.ResendResult{ID: "msg_d", From: "dead", Topic: "orders.paid", Seq: res.Seq}, res)
	got, _ = b.list(t, "/v1/messages?status=pending")
	require.Equal(t, []string{"msg_d pending", "msg_p pending"}, got, "the copy is created now")
	b.fails(t, "POST", "/v1/messages/msg_d/resend", `{}`, 409, "")
	b.ok(t, "POST", "/v1/messages/msg_d/resend", `{"new_id": true}`, 200, &res)
	require.NotEqual(t, "msg_d", res.ID)
	b.ok(t, "POST", "/v1/messages/orders%2F42/resend", `{"endpoint": "billing"}`, 200, &res)
	require.Equal(t, ops.ResendResult{ID: "orders/42", From: "dead", Topic: "orders.paid", Endpoint: "billing", Seq: res.Seq}, res)

	b.fails(t, "POST", "/v1/messages/msg_p/resend", `{}`, 404, "")
	b.fails(t, "POST", "/v1/messages/msg_l/resend", `{"endpoint": "nope"}`, 400, "endpoint")
	b.fails(t, "POST", "/v1/messages/msg_l/resend", `{"id": "msg_d"}`, 400, "id")
	b.fails(t, "POST", "/v1/messages/msg_l/resend", `{"new_id": "yes"}`, 400, "new_id")
	b.fails(t, "POST", "/v1/messages/msg_l/resend", `{"dry_run": 1}`, 400, "dry_run")
	b.fails(t, "POST", "/v1/messages/msg_l/resend", `{"all": true}`, 400, "all")
}

// TestResendThroughTheAPIIsDelivered: a dead message resent through the API
// reaches a real receiver through a real relay, signed and with its id.
func TestResendThroughTheAPIIsDelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertMessages(t)
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		got <- r.Header.Get("webhook-id") + " " + string(body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	// The retrying pair and the pending message are billing's too: they
	// go out with the resent copy.
	heraldtest.Exec(t, b.pool, `DELETE FROM outbox.deliveries; DELETE FROM outbox.messages`)

	sender, err := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true}).Endpoint(webhook.EndpointConfig{
		Name: "billing", URL: srv.URL, Secrets: []string{secretA}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	r, err := relay.New(b.pool, relay.Config{Listen: true, PollInterval: 50 * time.Millisecond,
		Endpoints: []relay.Endpoint{{Name: "billing", Topics: []string{"orders.*"}, Sender: sender, Timeout: 5 * time.Second}}})
	require.NoError(t, err)
	require.NoError(t, r.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})

	var res ops.ResendResult
	b.ok(t, "POST", "/v1/messages/msg_d/resend", `{}`, 200, &res)
	select {
	case g := <-got:
		require.Equal(t, `msg_d {"n": 2}`, g)
	case <-time.After(15 * time.Second):
		t.Fatal("the resent message was not delivered")
	}
}

func TestStatusRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)

	status := func(query string) ops.Status {
		t.Helper()
		var s ops.Status
		b.ok(t, "GET", "/v1/status"+query, "", 200, &s)
		return s
	}
	s := status("")
	require.False(t, s.NeedsAttention)
	require.Empty(t, s.Endpoints)

	// A message owed to billing for 20 minutes: past the default 15m.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('billing', 'https://billing.example.com', '{orders.*}')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, created_at) VALUES ('m1', 'orders.paid', '{}', now() - interval '20 minutes')`)
	s = status("")
	require.True(t, s.NeedsAttention, "200 all the same: %q", s.Attention)
	require.Len(t, s.Endpoints, 1)
	require.Equal(t, int64(1), s.Endpoints[0].Pending)
	require.Contains(t, s.Endpoints[0].Attention[0], "oldest owed message is 20m")
	require.False(t, status("?max_pending_age=30m").NeedsAttention)
	// As herald status --max-pending-age: 0 turns the check off, and a
	// negative age is refused, not read as something else.
	require.False(t, status("?max_pending_age=0").NeedsAttention, "0: never, as the CLI's --max-pending-age 0")
	b.fails(t, "GET", "/v1/status?max_pending_age=-1s", "", 400, "max_pending_age")

	// A dead message needs attention whatever the age.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason)
		VALUES (9, 'billing', 'm0', 'orders.paid', '{}', now(), 'gone')`)
	// An open breaker and logged attempts fill the rest of the document.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.breakers (endpoint, relay, open, since, probe_at, updated_at)
		VALUES ('billing', 'host-a:1', true, now() - interval '5 minutes', now() + interval '10 seconds', now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class) VALUES
		(now() - interval '1 minute', 1, 'a', 'billing', 1, 1, 200, NULL), (now() - interval '2 minutes', 2, 'b', 'billing', 1, 1, 503, 'status')`)
	s = status("?max_pending_age=30m")
	require.Len(t, s.Attention, 2, "%q", s.Attention)
	require.Contains(t, s.Attention, "billing: 1 dead messages")
	require.Equal(t, "open", s.Endpoints[0].Breaker)
	require.InDelta(t, 0.5, *s.Endpoints[0].SuccessRate5m, 0.001)
	raw := b.raw(t, "GET", "/v1/status")
	require.Contains(t, raw, `"needs_attention": true`)

	b.fails(t, "GET", "/v1/status?max_pending_age=soon", "", 400, "max_pending_age")
	b.fails(t, "GET", "/v1/status?verbose=1", "", 400, "verbose")
}

// TestStatusRatesFollowHistoryAttempts: served with history.attempts off,
// GET /v1/status has null counts and rates and says why (openapi.json
// validates the answer), and the setting is not a query parameter.
func TestStatusRatesFollowHistoryAttempts(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.History.Attempts = config.HistoryAttemptsOff
	b := setupWith(t, cfg)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('billing', 'https://billing.example.com', '{orders.*}')`)
	var s ops.Status
	b.ok(t, "GET", "/v1/status", "", 200, &s)
	require.Equal(t, "history.attempts is off", s.RatesUnavailable)
	require.Len(t, s.Endpoints, 1)
	require.Nil(t, s.Endpoints[0].Attempts5m, "not 0 attempts: none was logged")
	require.Nil(t, s.Endpoints[0].SuccessRate60m)
	require.Contains(t, b.raw(t, "GET", "/v1/status"), `"rates_unavailable": "history.attempts is off"`)
	b.fails(t, "GET", "/v1/status?history_attempts=all", "", 400, "history_attempts")
}

// raw calls with the read token, requires 200 and returns the body.
func (b *testBundle) raw(t *testing.T, method, path string) string {
	t.Helper()
	status, _, out := b.call(t, method, path, readToken, "")
	require.Equal(t, 200, status, "%s", out)
	require.True(t, json.Valid(out))
	return string(out)
}
