package main

// The SQL of `herald dead` and of the dead-message purge that `herald run`
// schedules. outbox.dead is read and written only by operators and by that
// purge: nothing here is on the delivery path.

// deadWhere selects dead rows by filter: $1 message id, $2 endpoint, $3
// reason; an empty one matches everything.
const deadWhere = `($1 = '' OR id = $1) AND ($2 = '' OR endpoint = $2) AND ($3 = '' OR reason = $3)`

// listDeadSQL reads the newest $4 dead rows the filter selects, through
// the primary key.
const listDeadSQL = `SELECT dead_id, id, topic, coalesce(endpoint, '-'), reason, attempts,
    coalesce(last_status::text, '-'), coalesce(last_error, ''), died_at
FROM outbox.dead WHERE ` + deadWhere + ` ORDER BY dead_id DESC LIMIT $4`

// replayDeadSQL puts back the oldest $4 (0: every) dead rows the filter
// selects, in one statement, and returns each with why it was skipped (”
// when it was put back).
//
// A row that died for an endpoint goes to the retry lane for that endpoint
// only, with its original seq, due now, with a fresh retry budget and no
// trace of the earlier attempts: the ordered retry claim (relay/queries.go
// claimRetrySQL) finds a key's head by seq, so a replayed message goes
// before the later messages of its key, as it should. A row without an
// endpoint (no endpoint subscribed to its topic) goes back to the hot lane
// to be routed again; it gets a new seq there. Earlier relays wrote a
// message that named a missing endpoint that way too, keeping the name
// only in last_error ("endpoint NAME is not configured", relay/completer.go):
// such a message goes back naming that endpoint, so that it is never
// routed to the topic's other subscribers.
//
// A dead row is deleted only if its own re-insert happened: a pair already
// in the retry lane or an id already in the hot lane makes ON CONFLICT DO
// NOTHING skip the insert, and the dead row stays. Of several dead rows of
// the same pair (or, without an endpoint, the same id), only the oldest is
// put back in one replay: the others would conflict with it. The rows are
// locked (FOR UPDATE) so that two replays cannot both put one back.
const replayDeadSQL = `WITH picked AS (
    SELECT * FROM outbox.dead
    WHERE ` + deadWhere + `
    ORDER BY dead_id
    LIMIT nullif($4::bigint, 0)
    FOR UPDATE
), pairs AS (
    SELECT DISTINCT ON (seq, endpoint) * FROM picked WHERE endpoint IS NOT NULL ORDER BY seq, endpoint, dead_id
), unrouted AS (
    SELECT DISTINCT ON (id) * FROM picked WHERE endpoint IS NULL ORDER BY id, dead_id
), to_retry AS (
    INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
        first_attempt_at, last_attempt_at, next_attempt_at)
    SELECT seq, endpoint, id, topic, payload, key, headers, created_at, 0, now(), now(), now()
    FROM pairs ORDER BY seq, endpoint
    ON CONFLICT (seq, endpoint) DO NOTHING
    RETURNING seq, endpoint
), to_route AS (
    INSERT INTO outbox.messages (id, topic, payload, key, endpoint, headers, created_at)
    SELECT id, topic, payload, key,
        CASE WHEN reason = 'unroutable'
            THEN substring(last_error FROM '^endpoint ([a-z0-9][a-z0-9_.-]{0,62}) is not configured$') END,
        headers, created_at
    FROM unrouted ORDER BY seq
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), revived AS (
    DELETE FROM outbox.dead WHERE dead_id IN (
        SELECT p.dead_id FROM pairs p JOIN to_retry USING (seq, endpoint)
        UNION ALL
        SELECT u.dead_id FROM unrouted u JOIN to_route USING (id))
    RETURNING dead_id
)
SELECT p.dead_id, p.id, coalesce(p.endpoint, ''), CASE
    WHEN p.dead_id IN (SELECT dead_id FROM revived) THEN ''
    WHEN p.endpoint IS NOT NULL AND p.dead_id NOT IN (SELECT dead_id FROM pairs)
        THEN 'an older dead row of the same pair goes first (replay again)'
    WHEN p.endpoint IS NULL AND p.dead_id NOT IN (SELECT dead_id FROM unrouted)
        THEN 'an older dead row with the same message id goes first (replay again)'
    WHEN p.endpoint IS NOT NULL THEN 'the pair is already in outbox.deliveries (still being delivered)'
    ELSE 'a message with this id is already in outbox.messages' END
FROM picked p ORDER BY p.dead_id`

// purgeLockSQL makes one process at a time purge (see purgeLock).
const purgeLockSQL = `SELECT pg_try_advisory_xact_lock($1)`

// purgeDeadSQL deletes up to $5 dead rows the filter selects that died
// more than $4 ms ago, through dead_died_at_idx.
const purgeDeadSQL = `DELETE FROM outbox.dead WHERE dead_id IN (
    SELECT dead_id FROM outbox.dead
    WHERE died_at < now() - $4 * interval '1 millisecond' AND ` + deadWhere + `
    LIMIT $5)`

// wakeSQL wakes the relays, which LISTEN on outbox.NotifyChannel, when the
// transaction commits.
const wakeSQL = `SELECT pg_notify($1, '')`
