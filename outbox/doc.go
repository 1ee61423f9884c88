// Package outbox writes messages to Herald's transactional outbox.
//
// A service writes its business change and the outbox message in one
// PostgreSQL transaction; Herald (`herald run`) later delivers each committed
// message to the webhook endpoints subscribed to its topic.
//
// # Visibility
//
// Enqueue never begins or commits a transaction. Called with the business
// transaction, its messages become visible to the relay only when that
// transaction commits and vanish if it rolls back. Called with a pool or a
// connection outside a transaction, each call commits on its own.
//
// # Delivery guarantee
//
// At least once: a committed message is retried until an endpoint answers
// 2xx (or its retry budget runs out and it is parked as dead). A message may
// arrive more than once, always with the same webhook-id, so receivers
// deduplicate on it (package webhook helps).
//
// # Without Go
//
// Any language writes the same row with plain SQL:
//
//	INSERT INTO outbox.messages (topic, payload) VALUES ('orders.created', '{"order_id": 42}');
//
// optionally with key, endpoint, headers and id columns, and
// `NOTIFY herald_outbox` in the same transaction for the lowest latency.
package outbox
