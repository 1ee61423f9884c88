package main

// The suite's SQL. It reads herald's tables only to account for messages
// (and writes them only as a producer would: INSERT into outbox.messages).

// insertMessages commits a batch of messages; a retried batch after an
// unknown outcome is a no-op for the ids already there.
const insertMessages = `INSERT INTO outbox.messages (id, topic, payload, key, endpoint)
SELECT * FROM unnest($1::text[], $2::text[], $3::json[], $4::text[], $5::text[])
ON CONFLICT (id) DO NOTHING`

// countQueued is what is left to deliver: hot-lane messages and retry-lane
// pairs.
const countQueued = `SELECT (SELECT count(*) FROM outbox.messages) + (SELECT count(*) FROM outbox.deliveries)`

// selectQueued lists what is left: a hot-lane message with endpoint ”
// (owed to every endpoint it routes to) and retry-lane pairs.
const selectQueued = `SELECT '' AS endpoint, id FROM outbox.messages
UNION ALL SELECT endpoint, id FROM outbox.deliveries`

// selectDead lists dead messages; endpoint ” when the message had none.
const selectDead = `SELECT id, coalesce(endpoint, ''), reason FROM outbox.dead`

// terminateHerald ends herald's backends on database $1 (herald's pool sets
// application_name = 'herald'), not the suite's own.
const terminateHerald = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND application_name = 'herald' AND pid <> pg_backend_pid()`

// insertBadEndpoint is an operator's mistake: a header value that is a
// number, which the table's CHECK (an object) lets through.
const insertBadEndpoint = `INSERT INTO outbox.endpoints (name, url, secrets, topics, headers)
VALUES ('bad-headers', $1, ARRAY['` + chaosSecret + `'], '{}', '{"X-Retry": 3}')`
