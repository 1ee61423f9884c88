package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
)

func TestMessagesShowListResend(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	// `herald run` copies the file's endpoint "test" there.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, source) VALUES ('test', 'http://127.0.0.1:1/', 'config')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, headers, created_at, attempts, reason, last_status, last_error)
		VALUES (1, 'test', 'msg_1', 'orders.paid', '{"n": 1}', '{"Authorization": "Bearer hunter2", "X-Tenant": "acme"}',
		        now() - interval '2 hours', 12, 'exhausted', 503, 'status 503')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class, error, response)
		VALUES (now() - interval '1 hour', 1, 'msg_1', 'test', 12, 8, 503, 'status', 'status 503', 'try later')`)
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := herald(t, append([]string{"--config", b.cfg, "messages"}, args...)...)
		require.Zero(t, code, errOut)
		require.NotContains(t, out, "hunter2")
		return out
	}

	out := run("show", "msg_1")
	for _, want := range []string{"orders.paid", "Authorization: [redacted]", "X-Tenant: acme", `{"n": 1}`,
		"dead", "exhausted: status 503", "attempts (1):", "try later"} {
		require.Contains(t, out, want)
	}
	var m ops.Message
	require.NoError(t, json.Unmarshal([]byte(run("show", "--json", "msg_1")), &m), "flags before the id too")
	require.Equal(t, "msg_1", m.ID)
	require.Len(t, m.Dead, 1)
	require.Equal(t, "[redacted]", m.Headers["Authorization"])

	code, _, errOut := herald(t, "--config", b.cfg, "messages", "show", "msg_nowhere")
	require.Equal(t, 1, code, "an unknown id is an error")
	require.Contains(t, errOut, "msg_nowhere: no such message")

	require.Contains(t, run("list", "--status", "dead"), "msg_1")
	require.Contains(t, run("list", "--since", "1h"), "(no messages)", "created two hours ago")
	var page ops.MessageList
	require.NoError(t, json.Unmarshal([]byte(run("list", "--json", "--endpoint", "test", "--since", "3h")), &page))
	require.Len(t, page.Messages, 1)
	require.Equal(t, "dead", page.Messages[0].Status)
	for flag, args := range map[string][]string{
		"--since":  {"list", "--since", "yesterday"},
		"--status": {"list", "--status", "lost"},
		"--after":  {"list", "--after", "nonsense"},
		"-new-id":  {"list", "--new-id"},
		"-dry-run": {"show", "msg_1", "--dry-run"},
		"ID":       {"resend"},
	} {
		code, _, errOut := herald(t, append([]string{"--config", b.cfg, "messages"}, args...)...)
		require.Equal(t, 2, code, "%v", args)
		require.Contains(t, errOut, flag, "%v: the error names the flag", args)
	}

	require.Contains(t, run("resend", "msg_1", "--dry-run"), "would resend the dead message as msg_1 to the subscribers of orders.paid")
	require.Contains(t, run("resend", "msg_1", "--endpoint", "test"), "resent the dead message as msg_1 to endpoint test")
	code, _, errOut = herald(t, "--config", b.cfg, "messages", "resend", "msg_1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "still pending")
	var res ops.ResendResult
	require.NoError(t, json.Unmarshal([]byte(run("resend", "msg_1", "--new-id", "--json")), &res))
	require.NotEqual(t, "msg_1", res.ID)
	code, _, errOut = herald(t, "--config", b.cfg, "messages", "resend", "msg_1", "--endpoint", "nope")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--endpoint")

	require.NoError(t, json.Unmarshal([]byte(run("list", "--json", "--status", "pending")), &page))
	require.Len(t, page.Messages, 2, "the two copies")
}

func TestStatusExitCode(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('acme', 'https://acme.example.com', '{orders.*}')`)
	code, out, errOut := herald(t, "--config", b.cfg, "status")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "acme")
	require.Contains(t, out, "nothing needs attention")

	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload, created_at) VALUES ('m1', 'orders.paid', '{}', now() - interval '1 hour')`)
	code, out, errOut = herald(t, "--config", b.cfg, "status")
	require.Equal(t, 1, code, "a message an hour old")
	require.Contains(t, out, "acme: oldest owed message is 1h0m0s old (more than 15m0s)")
	require.Contains(t, errOut, "needs attention")
	code, _, errOut = herald(t, "--config", b.cfg, "status", "--max-pending-age", "2h")
	require.Zero(t, code, errOut)
	code, _, errOut = herald(t, "--config", b.cfg, "status", "--max-pending-age", "0")
	require.Zero(t, code, "0 turns the age rule off: %s", errOut)

	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason) VALUES (5, 'acme', 'm5', 'orders.paid', '{}', now(), 'gone')`)
	code, out, _ = herald(t, "--config", b.cfg, "status", "--json", "--max-pending-age", "2h")
	require.Equal(t, 1, code, "a dead message")
	var s ops.Status
	require.NoError(t, json.Unmarshal([]byte(out), &s), "--json prints JSON only on stdout")
	require.Equal(t, []string{"acme: 1 dead messages"}, s.Attention)

	code, _, errOut = herald(t, "--config", b.cfg, "status", "--max-pending-age", "soon")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "-max-pending-age")
}

// TestStatusRatesFollowHistoryAttempts: with history.attempts failures in
// the configuration, the one logged attempt (a failure) is not a 0%
// success rate: the table prints n/a and says why, and the JSON has null
// rates and rates_unavailable.
func TestStatusRatesFollowHistoryAttempts(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, topics) VALUES ('acme', 'https://acme.example.com', '{orders.*}')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class)
		VALUES (now() - interval '1 minute', 1, 'm1', 'acme', 1, 1, 503, 'status')`)
	code, out, errOut := herald(t, "--config", b.cfg, "status")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "0.0% of 1", "history.attempts all (the default): a rate")

	f, err := os.OpenFile(b.cfg, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("history:\n  attempts: failures\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	code, out, errOut = herald(t, "--config", b.cfg, "status")
	require.Zero(t, code, errOut)
	require.NotContains(t, out, "0.0%")
	require.Regexp(t, `acme .* n/a +n/a`, out)
	require.Contains(t, out, "success rates: n/a (history.attempts is failures)")

	code, out, errOut = herald(t, "--config", b.cfg, "status", "--json")
	require.Zero(t, code, errOut)
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.Equal(t, "history.attempts is failures", s["rates_unavailable"])
	ep := s["endpoints"].([]any)[0].(map[string]any)
	require.Nil(t, ep["success_rate_5m"])
	require.Nil(t, ep["attempts_5m"])
}
