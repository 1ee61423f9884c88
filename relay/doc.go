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
// # Leases and fencing
//
// A claimed row is invisible to other relays until its lease lapses; a relay
// that dies mid-delivery leaves its rows to be claimed again after the lease.
// An attempt starts only if it is sure to end (its timeout) before the lease
// does, so two relays never deliver one message at the same time. Every
// write after a delivery carries the claim's lease token and changes nothing
// if another relay has claimed the row since.
//
// # Guarantee
//
// At least once. No transaction is open while a request is in flight. A
// crash between an endpoint's 2xx and the write of the outcome causes a
// second delivery with the same webhook-id, never a loss.
package relay
