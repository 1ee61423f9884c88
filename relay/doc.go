// Package relay delivers Herald's outbox: it claims committed messages,
// POSTs each to the webhook endpoints subscribed to its topic, and records
// the outcome, retrying failures with exponential backoff.
//
// # Lanes
//
// New messages wait in outbox.messages (the hot lane). A claim takes a batch
// of them in primary-key order with FOR UPDATE SKIP LOCKED and sets a lease
// (a HOT update). When every endpoint acknowledges, the row is deleted: two
// row writes per delivered message beyond the producer's insert. A
// (message, endpoint) pair that fails moves to outbox.deliveries (the retry
// lane), so a dead endpoint never clutters the hot lane. Pairs Herald gives
// up on go to outbox.dead with the reason.
//
// # The path of a message, file by file
//
//   - claimer.go: the claim loop; claimOnce claims from both lanes in one
//     round trip, bounded by the in-flight window (count and bytes).
//   - router.go: each claimed row is routed to its endpoints (topic globs,
//     a named endpoint), or marked invalid, unroutable or blocked by order.
//   - dispatch.go: admission per endpoint (paused, full, rate-limited),
//     pairs handed to workers or queued in memory.
//   - worker.go: one attempt, within the lease, and its result.
//   - breaker.go and endpoint_state.go: per-endpoint circuit breaker,
//     in-flight count, queue and rate limiter.
//   - completer.go: each finished row's fate (acknowledged, retried,
//     released, dead), written in batches that survive passing errors and
//     hostile texts.
//   - retry.go: the retry policy.
//   - listener.go: LISTEN for producers' notifications.
//   - maintenance.go and backoff.go: the progress log, the order sweep, the
//     relay's own VACUUM, and the backoff of failing database work.
//   - queries.go: all the SQL; config.go: every public setting.
//   - relay.go: the lifecycle (New, Start, Stop, SetEndpoints).
//
// # Leases and fencing
//
// A claimed row is invisible to other relays until its lease lapses; a relay
// that dies mid-delivery leaves its rows to be claimed again after the lease.
// An attempt starts only if it is sure to end (its timeout) before the lease
// does, so two relays never deliver one message at the same time. Every
// write after a delivery that records a failure, a release or a death
// carries the claim's lease token and changes nothing if another relay has
// claimed the row since; deleting a row every endpoint acknowledged is right
// whoever holds it, and is not fenced.
//
// # Guarantee
//
// At least once. No transaction is open while a request is in flight. A
// crash between an endpoint's 2xx and the write of the outcome causes a
// second delivery with the same webhook-id, never a loss.
package relay
