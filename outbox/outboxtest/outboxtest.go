// Package outboxtest helps services test that their code enqueues the
// messages they expect, inside their own transaction.
package outboxtest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Enqueued is a message as it sits in outbox.messages.
type Enqueued struct {
	ID       string
	Topic    string
	Payload  json.RawMessage
	Key      string
	Endpoint string
	Headers  map[string]string
}

// RequireEnqueuedTx asserts that tx can see exactly one pending message with
// the given topic, and returns it. It reads through tx, so it sees messages
// the test's transaction has written but not committed.
func RequireEnqueuedTx(ctx context.Context, tb testing.TB, tx pgx.Tx, topic string) Enqueued {
	tb.Helper()
	msgs := ListEnqueuedTx(ctx, tb, tx, topic)
	if len(msgs) != 1 {
		tb.Fatalf("outboxtest: want 1 message with topic %q, found %d", topic, len(msgs))
	}
	return msgs[0]
}

// ListEnqueuedTx returns the pending messages with the given topic, in the
// order they were written.
func ListEnqueuedTx(ctx context.Context, tb testing.TB, tx pgx.Tx, topic string) []Enqueued {
	tb.Helper()
	rows, err := tx.Query(ctx, `SELECT id, topic, payload::text, coalesce(key, ''), coalesce(endpoint, ''), headers
		FROM outbox.messages WHERE topic = $1 ORDER BY seq`, topic)
	if err != nil {
		tb.Fatalf("outboxtest: query: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Enqueued, error) {
		var e Enqueued
		var payload string
		err := r.Scan(&e.ID, &e.Topic, &payload, &e.Key, &e.Endpoint, &e.Headers)
		e.Payload = json.RawMessage(payload)
		return e, err
	})
	if err != nil {
		tb.Fatalf("outboxtest: scan: %v", err)
	}
	return out
}
