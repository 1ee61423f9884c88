package ops_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestGetMessageShowsEveryPlace: one id pending, retrying for one endpoint,
// dead for another, delivered earlier, with its attempts in time order and
// its secret-looking headers masked.
func TestGetMessageShowsEveryPlace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, key, headers, created_at) VALUES
		('msg_x', 'orders.paid', '{"order_id": 42}', 'order-42',
		 '{"X-Tenant": "acme", "Authorization": "Bearer hunter2", "X-Api-Key": "hunter2", "X-Retry": 3}', now() - interval '1 hour')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at, last_status, last_error, last_response) VALUES
		(7, 'billing', 'msg_x', 'orders.paid', '{"order_id": 42}', now(), 3, now(), now(), now() + interval '1 minute', 503, 'status 503', 'busy'),
		(7, 'parked', 'msg_x', 'orders.paid', '{"order_id": 42}', now(), 1, now(), now(), 'infinity', NULL, 'timeout', NULL),
		(8, 'billing', 'msg_other', 'orders.paid', '{}', now(), 1, now(), now(), now(), NULL, NULL, NULL)`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason, last_status, last_response)
		VALUES (7, 'shipping', 'msg_x', 'orders.paid', '{"order_id": 42}', now(), 1, 'gone', 410, 'gone for good')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.message_log (delivered_at, seq, id, topic, payload, created_at)
		VALUES (now() - interval '30 minutes', 3, 'msg_x', 'orders.paid', '{"order_id": 42}', now() - interval '1 hour')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class, error, response) VALUES
		(now() - interval '2 minutes', 7, 'msg_x', 'billing', 2, 30, 503, 'status', 'status 503', 'busy'),
		(now() - interval '3 minutes', 7, 'msg_x', 'billing', 1, 12.5, NULL, 'timeout', 'timeout after 10s', NULL),
		(now() - interval '1 minute', 7, 'msg_x', 'shipping', 1, 4, 410, 'status', 'status 410', 'gone for good'),
		(now() - interval '1 minute', 8, 'msg_other', 'billing', 1, 4, 200, NULL, NULL, NULL)`)

	m, err := ops.GetMessage(b.ctx, b.pool, "msg_x")
	require.NoError(t, err)
	require.Equal(t, "orders.paid", m.Topic)
	require.Equal(t, "order-42", m.Key)
	require.JSONEq(t, `{"order_id": 42}`, string(m.Payload))
	require.Equal(t, map[string]string{"X-Tenant": "acme", "Authorization": "[redacted]", "X-Api-Key": "[redacted]", "X-Retry": "3"}, m.Headers)
	require.WithinDuration(t, time.Now().Add(-time.Hour), m.CreatedAt, time.Minute)

	require.NotNil(t, m.Pending)
	require.Nil(t, m.Pending.LeasedUntil, "not claimed")
	require.Len(t, m.Retrying, 2)
	require.Equal(t, "billing", m.Retrying[0].Endpoint)
	require.Equal(t, 3, m.Retrying[0].Attempts)
	require.Equal(t, 503, *m.Retrying[0].LastStatus)
	require.Equal(t, "busy", m.Retrying[0].LastResponse)
	require.NotNil(t, m.Retrying[0].NextAttemptAt)
	require.Nil(t, m.Retrying[1].NextAttemptAt, "a parked pair has no next attempt time")
	require.Nil(t, m.Retrying[1].LastStatus)
	require.Len(t, m.Dead, 1)
	require.Equal(t, "gone", m.Dead[0].Reason)
	require.Equal(t, "gone for good", m.Dead[0].LastResponse)
	require.Len(t, m.Delivered, 1)
	require.Equal(t, int64(3), m.Delivered[0].Seq)

	require.Len(t, m.Attempts, 3, "only msg_x's")
	require.Equal(t, []int{1, 2, 1}, []int{m.Attempts[0].Attempt, m.Attempts[1].Attempt, m.Attempts[2].Attempt}, "in time order")
	require.Equal(t, "timeout", m.Attempts[0].ErrorClass)
	require.Nil(t, m.Attempts[0].Status)
	require.InDelta(t, 12.5, m.Attempts[0].DurationMS, 0.001)
	require.Equal(t, "shipping", m.Attempts[2].Endpoint)
	require.Zero(t, m.AttemptsOmitted)

	out, err := json.Marshal(m)
	require.NoError(t, err)
	require.NotContains(t, string(out), "hunter2", "no secret in the JSON")
}

// TestGetMessageFromOnePlace: a message found only in the log, or only in
// the attempts, is shown; an unknown id is ErrNoMessage.
func TestGetMessageFromOnePlace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.message_log (delivered_at, seq, id, topic, endpoint, payload, created_at)
		VALUES (now(), 3, 'msg_logged', 't', 'acme', '[1, 2]', now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status)
		VALUES (now(), 4, 'msg_attempted', 'acme', 1, 3, 204)`)

	m, err := ops.GetMessage(b.ctx, b.pool, "msg_logged")
	require.NoError(t, err)
	require.Nil(t, m.Pending)
	require.Equal(t, "acme", m.Target)
	require.JSONEq(t, `[1, 2]`, string(m.Payload))
	require.Empty(t, m.Attempts)
	require.NotNil(t, m.Attempts, "an empty list, not null, in JSON")

	m, err = ops.GetMessage(b.ctx, b.pool, "msg_attempted")
	require.NoError(t, err)
	require.Len(t, m.Attempts, 1)
	require.Empty(t, m.Topic, "only its attempt is known")

	_, err = ops.GetMessage(b.ctx, b.pool, "msg_nowhere")
	require.True(t, errors.Is(err, ops.ErrNoMessage), "%v", err)
	require.Contains(t, err.Error(), "msg_nowhere")

	for _, id := range []string{"", strings.Repeat("x", 256)} {
		_, err = ops.GetMessage(b.ctx, b.pool, id)
		var fe *ops.FilterError
		require.True(t, errors.As(err, &fe), "%v", err)
		require.Equal(t, "id", fe.Field)
		_, err = ops.ResendMessage(b.ctx, b.pool, ops.ResendRequest{ID: id})
		require.True(t, errors.As(err, &fe), "%v", err)
	}
}

func TestSensitiveHeader(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Authorization": true, "x-auth-token": true, "X-Api-Key": true, "Cookie": true, "X-Client-Secret": true,
		"X-Signature": true, "Proxy-Authorization": true, "X-Session-Id": true,
		"X-Tenant": false, "Content-Language": false, "X-Request-Id": false,
	} {
		require.Equal(t, want, ops.SensitiveHeader(name), name)
	}
}

// insertEveryState writes one message in each state, created an hour
// apart: m_pending newest, then m_retry (two endpoints), m_dead, m_done.
func (b *testBundle) insertEveryState(t *testing.T) {
	t.Helper()
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, endpoint, created_at) VALUES
		('m_pending', 'orders.paid', '{}', 'acme', now() - interval '1 hour')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at, last_status, last_error) VALUES
		(2, 'acme', 'm_retry', 'orders.paid', '{}', now() - interval '2 hours', 3, now(), now(), 'infinity', 503, 'status 503'),
		(2, 'other', 'm_retry', 'orders.paid', '{}', now() - interval '2 hours', 1, now(), now(), now(), NULL, 'timeout')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason, last_status)
		VALUES (3, 'acme', 'm_dead', 'invoices.sent', '{}', now() - interval '3 hours', 12, 'exhausted', 500)`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.message_log (delivered_at, seq, id, topic, payload, created_at)
		VALUES (now() - interval '4 hours', 4, 'm_done', 'orders.paid', '{}', now() - interval '4 hours')`)
}

func TestListMessagesHonoursEveryFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertEveryState(t)
	list := func(f ops.MessageFilter) []string {
		t.Helper()
		page, err := ops.ListMessages(b.ctx, b.pool, f)
		require.NoError(t, err)
		out := []string{}
		for _, m := range page.Messages {
			out = append(out, m.ID+"@"+m.Endpoint+":"+m.Status)
		}
		return out
	}
	require.Equal(t, []string{"m_pending@acme:pending", "m_retry@other:retrying", "m_retry@acme:retrying",
		"m_dead@acme:dead", "m_done@:delivered"}, list(ops.MessageFilter{}), "newest first")
	require.Equal(t, []string{"m_pending@acme:pending", "m_retry@acme:retrying", "m_dead@acme:dead"},
		list(ops.MessageFilter{Endpoint: "acme"}))
	require.Equal(t, []string{"m_dead@acme:dead"}, list(ops.MessageFilter{Topic: "invoices.sent"}))
	for _, s := range ops.MessageStates {
		got := list(ops.MessageFilter{Status: s})
		require.NotEmpty(t, got, s)
		for _, g := range got {
			require.Contains(t, g, ":"+s)
		}
	}
	now := time.Now()
	require.Equal(t, []string{"m_pending@acme:pending", "m_retry@other:retrying", "m_retry@acme:retrying"},
		list(ops.MessageFilter{Since: now.Add(-150 * time.Minute)}))
	require.Equal(t, []string{"m_dead@acme:dead", "m_done@:delivered"}, list(ops.MessageFilter{Until: now.Add(-150 * time.Minute)}))
	require.Equal(t, []string{"m_dead@acme:dead"}, list(ops.MessageFilter{Since: now.Add(-5 * time.Hour), Until: now.Add(-150 * time.Minute), Status: "dead"}))

	page, err := ops.ListMessages(b.ctx, b.pool, ops.MessageFilter{Status: "retrying", Endpoint: "acme"})
	require.NoError(t, err)
	require.Len(t, page.Messages, 1)
	m := page.Messages[0]
	require.Nil(t, m.At, "parked: no next attempt time")
	require.Equal(t, 3, m.Attempts)
	require.Equal(t, 503, *m.LastStatus)
	require.Equal(t, "status 503", m.LastError)
	require.Empty(t, page.Next, "the last page")
}

// TestListMessagesPagesByKeyset: pages of two cover every line once, in
// order, also when a message has lines for several endpoints and when rows
// are added before the cursor meanwhile.
func TestListMessagesPagesByKeyset(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertEveryState(t)
	var all []string
	f := ops.MessageFilter{Limit: 2}
	for range 10 {
		page, err := ops.ListMessages(b.ctx, b.pool, f)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Messages), 2)
		for _, m := range page.Messages {
			all = append(all, m.ID+"@"+m.Endpoint)
		}
		if page.Next == "" {
			break
		}
		if len(all) == 2 {
			// A newer message arrives between pages: it is not on the
			// next pages, which continue where the first ended.
			heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('m_new', 't', '{}')`)
		}
		f.After = page.Next
	}
	require.Equal(t, []string{"m_pending@acme", "m_retry@other", "m_retry@acme", "m_dead@acme", "m_done@"}, all)
}

func TestMessageFilterErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	for field, f := range map[string]ops.MessageFilter{
		"status": {Status: "lost"},
		"limit":  {Limit: -1},
		"after":  {After: "not-a-cursor"},
		"until":  {Since: now, Until: now.Add(-time.Hour)},
	} {
		_, err := ops.ListMessages(b.ctx, b.pool, f)
		var fe *ops.FilterError
		require.True(t, errors.As(err, &fe), "%s: %v", field, err)
		require.Equal(t, field, fe.Field)
	}
	_, err := ops.ParseTime("since", "yesterday", now)
	var fe *ops.FilterError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "since", fe.Field)
	got, err := ops.ParseTime("since", "24h", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-24*time.Hour), got)
	got, err = ops.ParseTime("until", "2026-12-01T10:00:00Z", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), got.UTC())
}
