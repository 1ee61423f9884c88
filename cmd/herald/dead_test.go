package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
)

type deadBundle struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool
	cfg  string
}

func setupDead(t *testing.T) *deadBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	url := heraldtest.URL(t)
	return &deadBundle{ctx: ctx, url: url, pool: heraldtest.PoolFor(t, url), cfg: writeConfig(t, url, "http://127.0.0.1:1/")}
}

func TestDeadSubcommandsRefuseFlagsTheyIgnore(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"dead", "purge", "--older-than", "1h", "--limit", "5"}, "-limit"},
		{[]string{"dead", "purge", "--older-than", "1h", "--all"}, "-all"},
		{[]string{"dead", "list", "--older-than", "1h"}, "-older-than"},
		{[]string{"dead", "list", "--all"}, "-all"},
		{[]string{"dead", "replay", "--all", "--older-than", "1h"}, "-older-than"},
	}
	for _, tt := range tests {
		code, _, errOut := herald(t, append([]string{"--config", b.cfg}, tt.args...)...)
		require.Equal(t, 2, code, "%v is refused", tt.args)
		require.Contains(t, errOut, tt.flag, "the error names the flag")
	}
}

func TestDeadPurgeHonoursEveryFilter(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason, died_at) VALUES
		(1, 'acme',  'msg_1', 't', '{}', now(), 'exhausted',  now() - interval '2 hours'),
		(2, 'other', 'msg_2', 't', '{}', now(), 'exhausted',  now() - interval '2 hours'),
		(3, 'acme',  'msg_3', 't', '{}', now(), 'gone',       now() - interval '2 hours'),
		(4, 'acme',  'msg_4', 't', '{}', now(), 'exhausted',  now()),
		(5, NULL,    'msg_5', 't', '{}', now(), 'unroutable', now() - interval '2 hours'),
		(6, 'other', 'msg_6', 't', '{}', now(), 'gone',       now() - interval '2 hours')`)
	purge := func(args ...string) string {
		t.Helper()
		code, out, errOut := herald(t, append([]string{"--config", b.cfg, "dead", "purge", "--older-than", "1h"}, args...)...)
		require.Zero(t, code, errOut)
		return out
	}

	require.Contains(t, purge("--endpoint", "acme", "--reason", "exhausted"), "purged 1 ")
	require.Equal(t, []string{"msg_2@other", "msg_3@acme", "msg_4@acme", "msg_5@-", "msg_6@other"}, heraldtest.DeadIDs(t, b.pool),
		"only acme's old exhausted message is gone")
	require.Contains(t, purge("--reason", "gone"), "purged 2 ")
	require.Equal(t, []string{"msg_2@other", "msg_4@acme", "msg_5@-"}, heraldtest.DeadIDs(t, b.pool))
	require.Contains(t, purge("--id", "msg_5"), "purged 1 ")
	require.Equal(t, []string{"msg_2@other", "msg_4@acme"}, heraldtest.DeadIDs(t, b.pool))
	require.Contains(t, purge(), "purged 1 ")
	require.Equal(t, []string{"msg_4@acme"}, heraldtest.DeadIDs(t, b.pool), "a message dead for less than --older-than stays")
}

func TestDeadReplayHonoursLimit(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason) VALUES
		(1, 'test', 'msg_1', 't', '{}', now(), 'exhausted'),
		(2, 'test', 'msg_2', 't', '{}', now(), 'exhausted'),
		(3, 'test', 'msg_3', 't', '{}', now(), 'exhausted')`)
	code, out, errOut := herald(t, "--config", b.cfg, "dead", "replay", "--all", "--limit", "2")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "replayed 2 ")
	require.Equal(t, []string{"msg_3@test"}, heraldtest.DeadIDs(t, b.pool), "the oldest two dead rows are replayed")
}

// TestDeadReplayKeepsWhatItCannotPutBack: a dead row whose re-insert
// conflicts (its pair already in the retry lane, its id already in the hot
// lane, or a second dead row of the same pair or id in the same replay)
// stays in outbox.dead and is reported as skipped, with the reason.
func TestDeadReplayKeepsWhatItCannotPutBack(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason) VALUES
		(10, 'test', 'msg_pair', 't', '{"a":1}', now(), 'exhausted'),
		(11, NULL,   'msg_hot',  't', '{"b":2}', now(), 'unroutable'),
		(12, 'test', 'msg_twice', 't', '{"c":3}', now(), 'exhausted'),
		(12, 'test', 'msg_twice', 't', '{"c":3}', now(), 'exhausted'),
		(13, NULL,   'msg_again', 't', '{}', now(), 'unroutable'),
		(14, NULL,   'msg_again', 't', '{}', now(), 'unroutable'),
		(15, 'test', 'msg_ok', 't', '{}', now(), 'exhausted')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (10, 'test', 'msg_pair', 't', '{"a":1}', now(), 3, now(), now(), now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_hot', 't', '{"new":true}')`)

	code, out, errOut := herald(t, "--config", b.cfg, "dead", "replay", "--all")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "replayed 3 ")
	require.Contains(t, out, "skipped 4 ")
	require.Contains(t, out, "msg_pair")
	require.Contains(t, out, "already in outbox.deliveries")
	require.Contains(t, out, "msg_hot")
	require.Contains(t, out, "already in outbox.messages")
	require.Equal(t, []string{"msg_pair@test", "msg_hot@-", "msg_twice@test", "msg_again@-"}, heraldtest.DeadIDs(t, b.pool),
		"every dead row that was not put back is still there")

	var retryAttempts, hotPayload string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT string_agg(id || ':' || attempts, ',' ORDER BY seq) FROM outbox.deliveries),
		(SELECT string_agg(payload::text, ',') FROM outbox.messages WHERE id = 'msg_hot')`).Scan(&retryAttempts, &hotPayload))
	require.Equal(t, "msg_pair:3,msg_twice:0,msg_ok:0", retryAttempts, "the pending pair is left as it was")
	require.Equal(t, `{"new":true}`, hotPayload, "the message in the hot lane is left as it was")
}

// TestDeadReplayPutsEachRowWhereItBelongs: a row dead for an endpoint goes
// to the retry lane for that endpoint only, with its original seq and a
// clean slate; a row with no endpoint goes back to the hot lane, naming the
// endpoint its message named (rows written before dead rows kept it have
// it only in last_error); the relays are woken.
func TestDeadReplayPutsEachRowWhereItBelongs(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
			first_attempt_at, last_attempt_at, last_status, last_error, last_response, reason) VALUES
		(10, 'acme', 'msg_pair', 'orders', '{"a":1}', 'k1', '{"X-Tenant":"acme"}', now() - interval '1 day', 12,
			now() - interval '1 day', now() - interval '1 hour', 503, 'status 503', 'busy', 'exhausted'),
		(11, NULL, 'msg_nobody', 'nobody', '{"b":2}', 'k2', NULL, now(), 0, NULL, NULL, NULL,
			'no endpoint subscribes to topic nobody', NULL, 'unroutable'),
		(12, NULL, 'msg_named', 'orders', '{"c":3}', NULL, NULL, now(), 0, NULL, NULL, NULL,
			'endpoint acme is not configured', NULL, 'unroutable')`)
	// The next message of key k1 for acme, already waiting in the retry lane.
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (20, 'acme', 'msg_next', 'orders', '{}', 'k1', now(), 1, now(), now(), 'infinity')`)

	conn, err := pgx.Connect(b.ctx, b.url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(b.ctx, "LISTEN "+outbox.NotifyChannel)
	require.NoError(t, err)

	code, out, errOut := herald(t, "--config", b.cfg, "dead", "replay", "--all")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "replayed 3 ")
	require.Empty(t, heraldtest.DeadIDs(t, b.pool))

	type retryRow struct {
		Seq           int64
		Endpoint      string
		ID            string
		Key           *string
		Headers       *string
		Attempts      int
		Lease         *int64
		Due           bool
		Fresh         bool
		LastStatus    *int
		LastError     *string
		LastResponse  *string
		CreatedAtKept bool
	}
	rows, err := b.pool.Query(b.ctx, `SELECT seq, endpoint, id, key, headers::text, attempts, lease, next_attempt_at <= now(),
			first_attempt_at > now() - interval '1 minute' AND last_attempt_at > now() - interval '1 minute',
			last_status, last_error, last_response, created_at < now() - interval '1 hour'
		FROM outbox.deliveries ORDER BY seq`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[retryRow])
	require.NoError(t, err)
	require.Len(t, got, 2)
	k1, tenant := "k1", `{"X-Tenant": "acme"}`
	require.Equal(t, retryRow{Seq: 10, Endpoint: "acme", ID: "msg_pair", Key: &k1, Headers: &tenant, Due: true, Fresh: true, CreatedAtKept: true}, got[0],
		"the pair is back for acme only, with its seq (so before msg_next of its key), due now, with a fresh budget and no trace of earlier attempts")
	require.Equal(t, "msg_next", got[1].ID)

	type hotRow struct {
		ID       string
		Seq      int64
		Key      *string
		Endpoint *string
	}
	rows, err = b.pool.Query(b.ctx, `SELECT id, seq, key, endpoint FROM outbox.messages ORDER BY id`)
	require.NoError(t, err)
	hot, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hotRow])
	require.NoError(t, err)
	require.Len(t, hot, 2)
	acme, k2 := "acme", "k2"
	require.Equal(t, hotRow{ID: "msg_named", Seq: hot[0].Seq, Endpoint: &acme}, hot[0], "it goes to the endpoint it named, and only there")
	require.Equal(t, hotRow{ID: "msg_nobody", Seq: hot[1].Seq, Key: &k2}, hot[1], "routed again by topic")

	waitCtx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(waitCtx)
	require.NoError(t, err, "the replay wakes the relays")
	require.Equal(t, outbox.NotifyChannel, n.Channel)
}

// TestDeadReplayKeepsKeyOrder: on an ordered endpoint, a replayed message
// is delivered before the later messages of its key that waited behind it.
func TestDeadReplayKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	got := make(chan string, 10)
	recv := namedReceiver(t, "a", got)
	cfg, err := os.ReadFile(writeConfig(t, b.url, recv.URL))
	require.NoError(t, err)
	cfgPath := filepath.Join(t.TempDir(), "ordered.yaml")
	require.NoError(t, os.WriteFile(cfgPath, append(cfg, "    ordered: true\n"...), 0o600))

	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, created_at, attempts, reason)
		VALUES (10, 'test', 'msg_old', 't', '{}', 'k', now(), 12, 'exhausted')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (20, 'test', 'msg_new', 't', '{}', 'k', now(), 1, now(), now(), now())`)
	cmd, logs := startHerald(t, heraldBinary(t), cfgPath)
	// msg_new waits behind the dead msg_old (on_dead: block) until the
	// relay parks it.
	require.Eventually(t, func() bool {
		var parked bool
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT next_attempt_at = 'infinity' FROM outbox.deliveries WHERE seq = 20`).Scan(&parked))
		return parked
	}, 15*time.Second, 20*time.Millisecond, "herald logged:\n%s", logs)

	code, out, errOut := herald(t, "--config", cfgPath, "dead", "replay", "--id", "msg_old")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "replayed 1 ")
	for _, want := range []string{"a msg_old", "a msg_new"} {
		select {
		case g := <-got:
			require.Equal(t, want, g, "the replayed message goes first")
		case <-time.After(15 * time.Second):
			t.Fatalf("want %s; herald logged:\n%s", want, logs)
		}
	}
	stopWithSIGTERM(t, cmd, logs)
}

// TestDeadPurgeAndReplayShowCountAndProgress: a purge or replay says how
// many rows it is about to act on, and a purge reports each chunk, on
// stderr, so that --json keeps stdout for the result alone.
func TestDeadPurgeAndReplayShowCountAndProgress(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason, died_at)
		SELECT i, 'acme', 'msg_' || i, 't', '{}', now(), 'exhausted', now() - interval '2 hours' FROM generate_series(1, 6001) AS i`)
	code, out, errOut := herald(t, "--config", b.cfg, "dead", "replay", "--id", "msg_1", "--json")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "1 dead messages selected")
	require.Equal(t, `{"replayed":1}`, strings.Join(strings.Fields(out), ""))

	code, out, errOut = herald(t, "--config", b.cfg, "dead", "purge", "--older-than", "1h", "--json")
	require.Zero(t, code, errOut)
	require.Equal(t, `{"purged":6000}`, strings.Join(strings.Fields(out), ""), "stdout holds the JSON only")
	require.Equal(t, "herald: 6000 dead messages selected; purging them in chunks\nherald: purged 5000 so far\nherald: purged 6000 so far\n", errOut)
}
