package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestRunHoldsMessagesOfEndpointRowsItCannotRead: a row of outbox.endpoints that
// cannot be read (a header value that is not a string, an infinite
// timestamp) or used (a malformed secret) neither stops herald from
// starting nor a running herald from applying the other rows' changes; it
// is logged by name, without its secrets or header values.
func TestRunHoldsMessagesOfEndpointRowsItCannotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := heraldBinary(t)
	got := make(chan string, 10)
	a, c := namedReceiver(t, "a", got), namedReceiver(t, "c", got)
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics, headers)
		VALUES ('bad', $1, ARRAY[$2], '{*}', '{"Authorization": "Bearer hunter2", "X-Retry": 3}')`, c.URL, testSecret)
	// Readable, but not usable: left out when it is built.
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ('badsecret', $1, '{whsec_hunter2!}', '{*}')`, c.URL)

	cmd, logs := startHerald(t, bin, writeConfig(t, url, a.URL))
	expect := func(want ...string) { t.Helper(); expectDeliveries(t, got, logs, want...) }
	exec(`INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_1', 'one', '{}')`)
	expect("a msg_1")
	require.Contains(t, logs.String(), `"endpoint":"bad"`)
	require.Contains(t, logs.String(), `\"X-Retry\" is a number`)
	require.Contains(t, logs.String(), `"endpoint":"badsecret"`)

	// A second unreadable row and a good one, added while herald runs.
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, disabled_at) VALUES ('worse', $1, ARRAY[$2], 'infinity')`, c.URL, testSecret)
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ('third', $1, ARRAY[$2], '{three}')`, c.URL, testSecret)
	// One refresh may find both rows, or each its own.
	addedThird := regexp.MustCompile(`"added":\[[^\]]*"third"`)
	require.Eventually(t, func() bool { return addedThird.MatchString(logs.String()) }, 10*time.Second, 20*time.Millisecond,
		"herald logged:\n%s", logs)
	exec(`INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_2', 'three', '{}')`)
	expect("a msg_2", "c msg_2")
	require.Contains(t, logs.String(), `"endpoint":"worse"`)

	// The unreadable and unusable endpoints subscribe to '*': their pairs of
	// each message wait in the retry lane, with the reason, until the rows
	// are mended; they are never dropped.
	waiting := func(id string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox.deliveries WHERE id = $1
			AND endpoint IN ('bad', 'badsecret') AND last_error <> ''`, id).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return waiting("msg_1") == 2 && waiting("msg_2") == 2 }, 10*time.Second, 20*time.Millisecond,
		"the unusable endpoints' pairs wait; herald logged:\n%s", logs)
	exec(`UPDATE outbox.endpoints SET headers = '{"X-Retry": "3"}' WHERE name = 'bad'`)
	expect("c msg_1", "c msg_2")
	stopWithSIGTERM(t, cmd, logs)
	require.NotContains(t, logs.String(), "hunter2", "no secret or header value in logs")
}
