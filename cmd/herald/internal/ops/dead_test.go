package ops_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
)

// insertSix writes six dead rows: four died two hours ago, msg_4 now.
func (b *testBundle) insertSix(t *testing.T) {
	t.Helper()
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, created_at, attempts, reason, last_status, last_error, died_at) VALUES
		(1, 'acme',  'msg_1', 't', '{}', 'k', now(), 12, 'exhausted',  503, 'status 503', now() - interval '2 hours'),
		(2, 'other', 'msg_2', 't', '{}', NULL, now(), 12, 'exhausted', 503, 'status 503', now() - interval '2 hours'),
		(3, 'acme',  'msg_3', 't', '{}', NULL, now(), 1, 'gone',       410, NULL,         now() - interval '2 hours'),
		(4, 'acme',  'msg_4', 't', '{}', NULL, now(), 12, 'exhausted', NULL, 'timeout',   now()),
		(5, NULL,    'msg_5', 't', '{}', NULL, now(), 0, 'unroutable', NULL, 'no endpoint subscribes to topic t', now() - interval '2 hours'),
		(6, 'other', 'msg_6', 't', '{}', NULL, now(), 1, 'gone',       410, NULL,         now() - interval '2 hours')`)
}

func TestListDeadHonoursEveryFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertSix(t)
	list := func(f ops.DeadFilter) []string {
		t.Helper()
		got, err := ops.ListDead(b.ctx, b.pool, f)
		require.NoError(t, err)
		n, err := ops.CountDead(b.ctx, b.pool, f)
		require.NoError(t, err)
		require.Equal(t, int64(len(got)), n, "CountDead counts what ListDead lists")
		ids := []string{}
		for _, m := range got {
			ids = append(ids, m.ID)
		}
		return ids
	}
	require.Equal(t, []string{"msg_6", "msg_5", "msg_4", "msg_3", "msg_2", "msg_1"}, list(ops.DeadFilter{}), "newest first")
	require.Equal(t, []string{"msg_4", "msg_3", "msg_1"}, list(ops.DeadFilter{Endpoint: "acme"}))
	require.Equal(t, []string{"msg_6", "msg_3"}, list(ops.DeadFilter{Reason: "gone"}))
	require.Equal(t, []string{"msg_5"}, list(ops.DeadFilter{ID: "msg_5"}))
	require.Equal(t, []string{"msg_3", "msg_1"}, list(ops.DeadFilter{Endpoint: "acme", OlderThan: time.Hour}))
	require.Equal(t, []string{"msg_6", "msg_5"}, list(ops.DeadFilter{Limit: 2}))

	got, err := ops.ListDead(b.ctx, b.pool, ops.DeadFilter{ID: "msg_1"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	status := 503
	m := got[0]
	require.Equal(t, ops.DeadMessage{DeadID: m.DeadID, Seq: 1, ID: "msg_1", Topic: "t", Endpoint: "acme", Key: "k", Reason: "exhausted",
		Attempts: 12, LastStatus: &status, LastError: "status 503", CreatedAt: m.CreatedAt, DiedAt: m.DiedAt}, m)
	require.WithinDuration(t, time.Now().Add(-2*time.Hour), m.DiedAt, time.Minute)

	got, err = ops.ListDead(b.ctx, b.pool, ops.DeadFilter{ID: "msg_5"})
	require.NoError(t, err)
	require.Empty(t, got[0].Endpoint, "no endpoint")
	require.Nil(t, got[0].LastStatus, "no status")
}

func TestDeadFilterErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name  string
		run   func() error
		field string
	}{
		{"unknown reason", func() error { _, err := ops.ListDead(b.ctx, b.pool, ops.DeadFilter{Reason: "exhausetd"}); return err }, "reason"},
		{"negative limit", func() error { _, err := ops.CountDead(b.ctx, b.pool, ops.DeadFilter{Limit: -1}); return err }, "limit"},
		{"negative age", func() error {
			_, err := ops.ReplayDead(b.ctx, b.pool, ops.DeadFilter{OlderThan: -time.Hour})
			return err
		}, "older_than"},
		{"replay of everything without all", func() error { _, err := ops.ReplayDead(b.ctx, b.pool, ops.DeadFilter{Limit: 5}); return err }, "all"},
		{"dry run too", func() error { _, err := ops.ReplayDeadDryRun(b.ctx, b.pool, ops.DeadFilter{}); return err }, "all"},
		{"purge without age", func() error { _, err := ops.PurgeDead(b.ctx, b.pool, ops.DeadFilter{All: true}); return err }, "older_than"},
		{"its dry run too", func() error { _, err := ops.PurgeDeadDryRun(b.ctx, b.pool, ops.DeadFilter{ID: "x"}); return err }, "older_than"},
	}
	for _, tt := range tests {
		err := tt.run()
		var fe *ops.FilterError
		require.True(t, errors.As(err, &fe), "%s: %v", tt.name, err)
		require.Equal(t, tt.field, fe.Field, tt.name)
	}
}

func TestPurgeDeadHonoursEveryFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertSix(t)
	purge := func(f ops.DeadFilter) int64 {
		t.Helper()
		f.OlderThan = time.Hour
		dry, err := ops.PurgeDeadDryRun(b.ctx, b.pool, f)
		require.NoError(t, err)
		res, err := ops.PurgeDead(b.ctx, b.pool, f)
		require.NoError(t, err)
		require.Equal(t, ops.PurgeResult{DryRun: true, Purged: res.Purged}, dry, "the dry run counts what the purge deletes")
		return res.Purged
	}
	require.Equal(t, int64(1), purge(ops.DeadFilter{Endpoint: "acme", Reason: "exhausted"}))
	require.Equal(t, []string{"msg_2@other", "msg_3@acme", "msg_4@acme", "msg_5@-", "msg_6@other"}, heraldtest.DeadIDs(t, b.pool))
	require.Equal(t, int64(1), purge(ops.DeadFilter{Reason: "gone", Limit: 1}))
	require.Equal(t, []string{"msg_2@other", "msg_4@acme", "msg_5@-", "msg_6@other"}, heraldtest.DeadIDs(t, b.pool), "the limit is honoured")
	require.Equal(t, int64(1), purge(ops.DeadFilter{ID: "msg_5"}))
	require.Equal(t, int64(2), purge(ops.DeadFilter{}))
	require.Equal(t, []string{"msg_4@acme"}, heraldtest.DeadIDs(t, b.pool), "a message dead for less than OlderThan stays")
}

// TestReplayDeadPutsEachRowWhereItBelongs: a row dead for an endpoint goes
// to the retry lane for that endpoint only, with its original seq; a row
// without goes to the hot lane naming the endpoint it named; a row whose
// re-insert conflicts stays, reported with why; the relays are woken; a
// dry run reports the same and changes nothing.
func TestReplayDeadPutsEachRowWhereItBelongs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, created_at, attempts, last_error, reason) VALUES
		(10, 'acme', 'msg_pair',   'orders', '{"a":1}', 'k1', now(), 12, 'status 503', 'exhausted'),
		(11, NULL,   'msg_named',  'orders', '{}', NULL, now(), 0, 'endpoint acme is not configured', 'unroutable'),
		(12, NULL,   'msg_nobody', 'nobody', '{}', NULL, now(), 0, 'no endpoint subscribes to topic nobody', 'unroutable'),
		(13, 'acme', 'msg_busy',   'orders', '{}', NULL, now(), 12, NULL, 'exhausted'),
		(14, 'acme', 'msg_twice',  'orders', '{}', NULL, now(), 12, NULL, 'exhausted'),
		(14, 'acme', 'msg_twice',  'orders', '{}', NULL, now(), 12, NULL, 'exhausted'),
		(15, NULL,   'msg_hot',    'orders', '{}', NULL, now(), 0, NULL, 'unroutable')`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts,
		first_attempt_at, last_attempt_at, next_attempt_at) VALUES (13, 'acme', 'msg_busy', 'orders', '{}', now(), 3, now(), now(), now())`)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_hot', 'orders', '{}')`)
	before := heraldtest.DeadIDs(t, b.pool)

	dry, err := ops.ReplayDeadDryRun(b.ctx, b.pool, ops.DeadFilter{All: true})
	require.NoError(t, err)
	require.Equal(t, before, heraldtest.DeadIDs(t, b.pool), "a dry run changes nothing")

	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(b.ctx, "LISTEN "+outbox.NotifyChannel)
	require.NoError(t, err)

	res, err := ops.ReplayDead(b.ctx, b.pool, ops.DeadFilter{All: true})
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	dry.DryRun = false
	require.Equal(t, dry, res, "the dry run reports what the replay does")
	require.Equal(t, 4, res.Replayed)
	whys := map[string]string{}
	for _, s := range res.Skipped {
		whys[s.ID+"@"+s.Endpoint] = s.Why
	}
	require.Equal(t, map[string]string{
		"msg_busy@acme":  "the pair is already in outbox.deliveries (still being delivered)",
		"msg_twice@acme": "an older dead row of the same pair goes first (replay again)",
		"msg_hot@":       "a message with this id is already in outbox.messages",
	}, whys)
	require.Equal(t, []string{"msg_busy@acme", "msg_twice@acme", "msg_hot@-"}, heraldtest.DeadIDs(t, b.pool), "only rows put back are deleted")

	var retry, hot string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT
		(SELECT string_agg(seq || ':' || id || '@' || endpoint || ':' || attempts, ',' ORDER BY seq) FROM outbox.deliveries),
		(SELECT string_agg(id || '@' || coalesce(endpoint, '-'), ',' ORDER BY id) FROM outbox.messages)`).Scan(&retry, &hot))
	require.Equal(t, "10:msg_pair@acme:0,13:msg_busy@acme:3,14:msg_twice@acme:0", retry,
		"pairs go back with their seq for their endpoint, with a fresh budget; the pending pair is left as it was")
	require.Equal(t, "msg_hot@-,msg_named@acme,msg_nobody@-", hot, "unrouted rows go to the hot lane, naming the endpoint they named")

	waitCtx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err, "the replay wakes the relays")
	require.Equal(t, outbox.NotifyChannel, n.Channel)
}

func TestReplayDeadHonoursLimitAndAge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertSix(t)
	res, err := ops.ReplayDead(b.ctx, b.pool, ops.DeadFilter{OlderThan: time.Hour, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, ops.ReplayResult{Replayed: 2}, res)
	require.Equal(t, []string{"msg_3@acme", "msg_4@acme", "msg_5@-", "msg_6@other"}, heraldtest.DeadIDs(t, b.pool), "the oldest two old enough")
	res, err = ops.ReplayDead(b.ctx, b.pool, ops.DeadFilter{OlderThan: time.Hour})
	require.NoError(t, err)
	require.Equal(t, 3, res.Replayed)
	require.Equal(t, []string{"msg_4@acme"}, heraldtest.DeadIDs(t, b.pool), "a message dead for less than OlderThan stays")
}

// TestPurgeDeadReportsAnotherPurge: while another process purges, a purge
// says so instead of reporting that nothing was old enough.
func TestPurgeDeadReportsAnotherPurge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertSix(t)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(b.ctx, `SELECT pg_advisory_xact_lock($1)`, ops.PurgeLock)
	require.NoError(t, err)

	res, err := ops.PurgeDead(b.ctx, b.pool, ops.DeadFilter{OlderThan: time.Hour})
	require.ErrorIs(t, err, ops.ErrPurgeBusy)
	require.Zero(t, res.Purged)
	require.Len(t, heraldtest.DeadIDs(t, b.pool), 6)

	require.NoError(t, tx.Rollback(b.ctx))
	res, err = ops.PurgeDead(b.ctx, b.pool, ops.DeadFilter{OlderThan: time.Hour})
	require.NoError(t, err)
	require.Equal(t, int64(5), res.Purged)
}
