package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
)

// exampleDB stands in for the service's own database in the examples.
func exampleDB() *pgxpool.Pool {
	t := &heraldtest.Standalone{}
	return heraldtest.PoolFor(t, heraldtest.URL(t))
}

// A service writes its business change and the outbox message in one
// transaction: the message exists if and only if the order does.
func ExampleEnqueue() {
	ctx := context.Background()
	db := exampleDB()

	tx, err := db.Begin(ctx)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit

	if _, err := tx.Exec(ctx, `CREATE TABLE orders (id bigint PRIMARY KEY, total_cents bigint)`); err != nil {
		panic(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders VALUES (42, 1999)`); err != nil {
		panic(err)
	}
	err = outbox.Enqueue(ctx, tx, outbox.Message{
		Topic:   "orders.created",
		Key:     "order-42", // messages with one key are delivered in commit order to ordered endpoints
		Payload: json.RawMessage(`{"order_id": 42, "total_cents": 1999}`),
	})
	if err != nil {
		panic(err)
	}
	if err := tx.Commit(ctx); err != nil {
		panic(err)
	}

	var topic, payload string
	if err := db.QueryRow(ctx, `SELECT topic, payload::text FROM outbox.messages`).Scan(&topic, &payload); err != nil {
		panic(err)
	}
	fmt.Println(topic, payload)
	// Output: orders.created {"order_id": 42, "total_cents": 1999}
}

// Several messages go in one round trip. Setting the id makes a repeated
// enqueue of the same message a no-op while it is pending, and receivers see
// that id as webhook-id.
func ExampleWriter_Enqueue() {
	ctx := context.Background()
	db := exampleDB()

	w := outbox.Writer{SkipNotify: true} // relays find these at their next poll
	err := w.Enqueue(ctx, db,
		outbox.Message{ID: "msg_invoice_7_paid", Topic: "invoices.paid", Payload: json.RawMessage(`{"invoice": 7}`)},
		outbox.Message{Topic: "invoices.paid", Payload: json.RawMessage(`{"invoice": 8}`), Endpoint: "accounting"},
	)
	if err != nil {
		panic(err)
	}
	// Retried by the service after an unclear failure: nothing new is written.
	_ = w.Enqueue(ctx, db, outbox.Message{ID: "msg_invoice_7_paid", Topic: "invoices.paid", Payload: json.RawMessage(`{"invoice": 7}`)})

	var n int
	_ = db.QueryRow(ctx, `SELECT count(*) FROM outbox.messages`).Scan(&n)
	fmt.Println(n, "messages")
	// Output: 2 messages
}
