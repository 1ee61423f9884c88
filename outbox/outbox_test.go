package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/outbox/outboxtest"
)

func TestEnqueueCommitAndRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Enqueue(ctx, tx, outbox.Message{Topic: "orders.created", Payload: json.RawMessage(`{"order_id": 1}`)}))
	got := outboxtest.RequireEnqueuedTx(ctx, t, tx, "orders.created")
	require.Equal(t, `{"order_id": 1}`, string(got.Payload))
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 0, count(t, pool.QueryRow, "orders.created"), "a rolled-back transaction leaves no message")

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Enqueue(ctx, tx, outbox.Message{Topic: "orders.created", Payload: json.RawMessage(`{"order_id": 2}`)}))
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 1, count(t, pool.QueryRow, "orders.created"))
}

func TestEnqueueBatchKeepsBytesAndFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	msgs := []outbox.Message{
		{Topic: "a", Payload: json.RawMessage(`{"z":1,  "a" : [1, 2]}`), Key: "k1", Endpoint: "billing", Headers: map[string]string{"X-Tenant": "acme"}, ID: "msg_fixed.1"},
		{Topic: "a", Payload: json.RawMessage(`"é\u0000 \"quoted\""`), Key: "ünïcode \"k\"\n"},
		{Topic: "a", Payload: json.RawMessage(`42`)},
	}
	require.NoError(t, outbox.Enqueue(ctx, pool, msgs...))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	list := outboxtest.ListEnqueuedTx(ctx, t, tx, "a")
	require.Len(t, list, 3)
	got := map[string]outboxtest.Enqueued{}
	for _, e := range list {
		got[e.Key] = e
	}
	require.Equal(t, "msg_fixed.1", got["k1"].ID)
	require.Equal(t, `{"z":1,  "a" : [1, 2]}`, string(got["k1"].Payload), "payload bytes are kept exactly")
	require.Equal(t, "billing", got["k1"].Endpoint)
	require.Equal(t, map[string]string{"X-Tenant": "acme"}, got["k1"].Headers)
	require.Equal(t, `"é\u0000 \"quoted\""`, string(got["ünïcode \"k\"\n"].Payload))
	require.Regexp(t, `^msg_[0-9a-f]{32}$`, got[""].ID, "a generated id")
	require.NotEqual(t, got["k1"].ID, got[""].ID)
}

func TestEnqueueKeepsOrderWithinAKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	var msgs []outbox.Message
	for i := range 20 {
		msgs = append(msgs, outbox.Message{Topic: "o", Key: []string{"b", "a", "c"}[i%3], Payload: json.RawMessage(fmt.Sprint(i))})
	}
	require.NoError(t, outbox.Enqueue(ctx, pool, msgs...))
	rows, err := pool.Query(ctx, `SELECT key, payload::text::int FROM outbox.messages ORDER BY seq`)
	require.NoError(t, err)
	last := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		require.NoError(t, rows.Scan(&key, &n))
		if prev, ok := last[key]; ok {
			require.Greater(t, n, prev, "key %s: seq order is the order the messages were given", key)
		}
		last[key] = n
	}
	require.NoError(t, rows.Err())
	require.Len(t, last, 3)
}

func TestEnqueueSameIDIsNoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	id := outbox.NewID()
	m := outbox.Message{ID: id, Topic: "t", Payload: json.RawMessage(`{}`)}
	require.NoError(t, outbox.Enqueue(ctx, pool, m))
	require.NoError(t, outbox.Enqueue(ctx, pool, m, m))
	require.Equal(t, 1, count(t, pool.QueryRow, "t"))
}

func TestEnqueueRejectsInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	for name, m := range map[string]outbox.Message{
		"no topic":     {Payload: json.RawMessage(`{}`)},
		"no payload":   {Topic: "t"},
		"invalid json": {Topic: "t", Payload: json.RawMessage(`{"a":`)},
	} {
		err := outbox.Enqueue(ctx, pool, outbox.Message{Topic: "ok", Payload: json.RawMessage(`1`)}, m)
		require.ErrorIs(t, err, outbox.ErrInvalidMessage, name)
		require.Contains(t, err.Error(), "message 1", name)
	}
	// The database's own checks guard plain SQL and bad ids.
	err := outbox.Enqueue(ctx, pool, outbox.Message{ID: "has space", Topic: "t", Payload: json.RawMessage(`1`)})
	require.ErrorContains(t, err, "messages_id_check")
	require.Equal(t, 0, count(t, pool.QueryRow, "ok"), "a failed batch writes nothing")
}

func TestEnqueueNotifiesOnCommitOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	listener := heraldtest.PoolFor(t, url)
	conn, err := listener.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+outbox.NotifyChannel)
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Enqueue(ctx, tx, outbox.Message{Topic: "t", Payload: json.RawMessage(`{}`)}))
	require.NoError(t, outbox.Writer{SkipNotify: true}.Enqueue(ctx, pool, outbox.Message{Topic: "t", Payload: json.RawMessage(`{}`)}))
	require.NoError(t, tx.Commit(ctx))
	wctx, cancel := context.WithTimeout(ctx, 5e9)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(wctx)
	require.NoError(t, err)
	require.Equal(t, outbox.NotifyChannel, n.Channel)
}

func TestEnqueueSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("pgx", heraldtest.URL(t))
	require.NoError(t, err)
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, outbox.EnqueueSQL(ctx, tx, outbox.Message{Topic: "sql", Payload: json.RawMessage(`{"n":"a\"b\\c {x,y}"}`), Key: "k,{}"}))
	require.NoError(t, tx.Commit())
	var payload, key string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT payload::text, key FROM outbox.messages WHERE topic = 'sql'`).Scan(&payload, &key))
	require.Equal(t, `{"n":"a\"b\\c {x,y}"}`, payload)
	require.Equal(t, "k,{}", key)
}

type queryRower[R interface{ Scan(...any) error }] func(ctx context.Context, sql string, args ...any) R

func count[R interface{ Scan(...any) error }](t *testing.T, q queryRower[R], topic string) int {
	t.Helper()
	var n int
	require.NoError(t, q(context.Background(), `SELECT count(*) FROM outbox.messages WHERE topic = $1`, topic).Scan(&n))
	return n
}

func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	pool := heraldtest.Pool(b)
	payload := json.RawMessage(`{"order_id":"ord-0000000042","customer_id":"cus-00000042","amount_cents":4242,"currency":"EUR","items":3}`)
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			msgs := make([]outbox.Message, size)
			for i := range msgs {
				msgs[i] = outbox.Message{Topic: "orders.created", Payload: payload, Key: fmt.Sprint(i)}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := outbox.Enqueue(ctx, pool, msgs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
