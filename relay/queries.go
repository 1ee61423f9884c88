package relay

import "strconv"

// The relay's SQL. Every write made after a delivery is fenced by the lease
// token the row was claimed with (lease = $token), except deleting a row
// (or pair) whose every delivery succeeded, which is right whoever holds it
// now: a relay that claimed it since will deliver it once more at worst,
// and its own writes then find nothing to change.

// claimHotSQL claims up to $1 due messages in seq order. The planner walks
// the primary key; the UPDATE touches only unindexed columns, so it is a HOT
// update when the page has room (fillfactor 50, migration 004). The `= ANY(ARRAY(...))`
// form keeps the plan an index scan when the prepared statement goes generic
// (an UPDATE ... FROM c can turn into a hash join over the whole table).
// $2 = lease in milliseconds, $3 = lease token. $5 bounds the payload bytes
// claimed: the rows claimed are those that start within it (the first
// always does, unless $5 <= 0), so a claim holds at most $5 plus one
// payload. octet_length reads a stored value's size without detoasting it;
// the rows locked but left out are free again when the statement ends.
//
// With $4 (some endpoint is ordered), each keyed row also reports what
// still holds its key, through the key indexes: an older message of the key
// in the hot lane, the endpoints with an older pair of the key in the retry
// lane, and those with an older dead pair. These subqueries run only for
// the rows returned, never for the rows scanned.
//
// It also takes the rows still leased to a relay declared dead ($6 is the
// claiming relay's id, its holder from now on): they are among the rows the
// scan walks past anyway, and the dead relays are read once per statement
// from the small outbox.relays, so the plan stays the primary key walk. A
// relay never takes its own rows so: if it was declared dead, its requests
// for them may still be open until its heartbeat learns it and cancels them
// (which the argument in docs/guarantees.md rules out, unless clocks fail).
// The first column counts the rows taken over (the same on every row).
const claimHotSQL = `WITH c AS (
    SELECT seq, octet_length(payload::text) AS size, visible_at > now() AS taken FROM outbox.messages
    WHERE visible_at <= now() OR (holder = ANY(ARRAY(SELECT id FROM outbox.relays WHERE dead_at IS NOT NULL)) AND holder <> $6)
    ORDER BY seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), fits AS (
    SELECT seq, taken FROM (SELECT seq, taken, sum(size) OVER (ORDER BY seq) - size AS before FROM c) s
    WHERE before < $5
)
UPDATE outbox.messages m
SET visible_at = now() + $2 * interval '1 millisecond', attempts = m.attempts + 1, lease = $3, holder = $6
WHERE m.seq = ANY(ARRAY(SELECT seq FROM fits))
RETURNING (SELECT count(*) FROM fits WHERE taken), m.seq, m.id, m.topic, m.payload::text, coalesce(m.key, ''), coalesce(m.endpoint, ''),
    coalesce(m.headers::text, ''), m.created_at, m.attempts,
    CASE WHEN $4::bool AND m.key IS NOT NULL THEN EXISTS (
        SELECT 1 FROM outbox.messages p WHERE p.key = m.key AND p.seq < m.seq) ELSE false END,
    CASE WHEN $4::bool AND m.key IS NOT NULL THEN ARRAY(
        SELECT DISTINCT d.endpoint FROM outbox.deliveries d WHERE d.key = m.key AND d.seq < m.seq) END,
    CASE WHEN $4::bool AND m.key IS NOT NULL THEN ARRAY(
        SELECT DISTINCT x.endpoint FROM outbox.dead x WHERE x.key = m.key AND x.seq < m.seq AND x.endpoint IS NOT NULL) END`

// The retry claim claims up to $1 due (message, endpoint) pairs from the
// retry lane, soonest first. next_attempt_at becomes the lease expiry, so a
// pair whose relay died is due again when it lapses, or sooner: reapSQL
// makes the pairs of a relay declared dead due at once ($7 is the claiming
// relay's id, the pair's holder). $4 names the endpoints
// to serve: configured, not disabled, neither paused by their breaker nor
// out of room. Pairs of other endpoints stay untouched.
//
// For ordered endpoints ($5; $6 those with on_dead: skip), only the head of
// a key is claimed: a pair with an older pending message of its key (in the
// hot lane, in the retry lane for the same endpoint, or dead for it unless
// skipped) is parked instead, at next_attempt_at = 'infinity', out of every
// later claim's way until promoteSQL wakes it.
//
// It comes in two forms, claimRetryByEndpointSQL and
// claimRetryByWaitingSQL, that differ only in how they find the due pairs
// (retryDueByEndpoint, retryDueByWaiting); retryClaimSQL picks one.
const retryClaimHead = `WITH c AS (
    SELECT d.seq, d.endpoint,
        (d.key IS NULL OR NOT (d.endpoint = ANY(coalesce($5::text[], '{}'))) OR (
            NOT EXISTS (SELECT 1 FROM outbox.messages p WHERE p.key = d.key AND p.seq < d.seq)
            AND NOT EXISTS (SELECT 1 FROM outbox.deliveries q
                WHERE q.key = d.key AND q.endpoint = d.endpoint AND q.seq < d.seq)
            AND (d.endpoint = ANY(coalesce($6::text[], '{}')) OR NOT EXISTS (SELECT 1 FROM outbox.dead x
                WHERE x.key = d.key AND x.endpoint = d.endpoint AND x.seq < d.seq))
        )) AS head
`

const retryClaimTail = `
)
UPDATE outbox.deliveries d
SET next_attempt_at = CASE WHEN c.head THEN now() + $2 * interval '1 millisecond' ELSE 'infinity' END,
    attempts = d.attempts + CASE WHEN c.head THEN 1 ELSE 0 END,
    lease = CASE WHEN c.head THEN $3::bigint END,
    holder = CASE WHEN c.head THEN $7::bigint END
FROM c
WHERE d.seq = c.seq AND d.endpoint = c.endpoint
RETURNING d.seq, d.endpoint, d.id, d.topic, d.payload::text, coalesce(d.key, ''), coalesce(d.headers::text, ''),
          d.created_at, d.attempts, extract(epoch from now() - d.first_attempt_at)::float8, c.head`

// retryDueByEndpoint takes the soonest due pairs of each endpoint in $4
// through deliveries_endpoint_due_idx, then the soonest of those: its cost
// grows with the number of endpoints served (one short index scan each),
// never with the pairs of endpoints left out.
const retryDueByEndpoint = `    FROM unnest($4::text[]) AS e(name)
` + retryDueOfEach

// retryDueByWaiting does what retryDueByEndpoint does for the endpoints
// that have pairs in the retry lane, found by skipping from one to the next
// through deliveries_endpoint_due_idx (one index probe each), and served
// ($4, matched in a hash): its cost grows with the endpoints waiting in the
// lane, however many are served, and still never with the pairs of an
// endpoint left out.
const retryDueByWaiting = `    FROM (
        WITH RECURSIVE waiting AS (
            (SELECT endpoint FROM outbox.deliveries ORDER BY endpoint LIMIT 1)
            UNION ALL
            SELECT (SELECT d.endpoint FROM outbox.deliveries d WHERE d.endpoint > w.endpoint ORDER BY d.endpoint LIMIT 1)
            FROM waiting w WHERE w.endpoint IS NOT NULL
        )
        SELECT endpoint FROM waiting WHERE endpoint IS NOT NULL
        INTERSECT
        SELECT unnest($4::text[])
    ) AS e(name)
` + retryDueOfEach

// retryDueOfEach takes the soonest due pairs of each endpoint e.name
// through deliveries_endpoint_due_idx, then the soonest of those.
const retryDueOfEach = `    CROSS JOIN LATERAL (
        SELECT * FROM outbox.deliveries d
        WHERE d.endpoint = e.name AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.seq
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) d
    ORDER BY d.next_attempt_at, d.seq
    LIMIT $1`

const (
	claimRetryByEndpointSQL = retryClaimHead + retryDueByEndpoint + retryClaimTail
	claimRetryByWaitingSQL  = retryClaimHead + retryDueByWaiting + retryClaimTail
)

// retryClaimSQL picks the retry claim's form for the number of endpoints it
// serves. Either never reads pairs it cannot take, however many wait for a
// disabled, paused or removed endpoint (a scan in due order would read them
// all first; see migrations/006). Up to byEndpointMax, one short index scan
// per endpoint served costs little; past it, a service with thousands of
// endpoints, one probe per endpoint waiting in the retry lane costs less
// (and a due-order scan, with the names matched one by one, cost 200 ms).
func retryClaimSQL(served int) string {
	if served <= byEndpointMax {
		return claimRetryByEndpointSQL
	}
	return claimRetryByWaitingSQL
}

// byEndpointMax is the most endpoints a retry claim scans one by one.
const byEndpointMax = 256

// promoteSQL wakes the oldest parked pair of each (key, endpoint) among the
// keys $1 whose messages were just settled: it is due again, and the retry
// claim decides whether it is now its key's head.
const promoteSQL = `UPDATE outbox.deliveries d SET next_attempt_at = now()
FROM (
    SELECT DISTINCT ON (key, endpoint) key, endpoint, seq FROM outbox.deliveries
    WHERE key = ANY($1::text[]) AND next_attempt_at = 'infinity'
    ORDER BY key, endpoint, seq
) h
WHERE d.seq = h.seq AND d.endpoint = h.endpoint AND d.next_attempt_at = 'infinity'`

// sweepParkedSQL wakes parked pairs that nothing holds any more. It covers
// the race promoteSQL cannot: a pair parked by one relay's claim just after
// another relay settled the message it waited for; and pairs of an endpoint
// that is no longer ordered ($2: the ordered endpoints), which nothing else
// would wake. $1: endpoints with on_dead: skip. It finds parked pairs
// through deliveries_due_idx.
const sweepParkedSQL = `UPDATE outbox.deliveries d SET next_attempt_at = now()
WHERE d.next_attempt_at = 'infinity' AND (NOT (d.endpoint = ANY(coalesce($2::text[], '{}'))) OR (
    NOT EXISTS (SELECT 1 FROM outbox.messages p WHERE p.key = d.key AND p.seq < d.seq)
    AND NOT EXISTS (SELECT 1 FROM outbox.deliveries q WHERE q.key = d.key AND q.endpoint = d.endpoint AND q.seq < d.seq)
    AND (d.endpoint = ANY(coalesce($1::text[], '{}')) OR NOT EXISTS (SELECT 1 FROM outbox.dead x
        WHERE x.key = d.key AND x.endpoint = d.endpoint AND x.seq < d.seq))))`

// ackHotSQL deletes messages every endpoint acknowledged.
const ackHotSQL = `DELETE FROM outbox.messages WHERE seq = ANY($1::bigint[])`

// ackLoggedSQL is ackHotSQL with history.messages: the messages are copied
// into outbox.message_log by the statement that deletes them, and deleted
// without the copy if it fails (migrations/007). It returns that failure,
// or NULL.
const ackLoggedSQL = `SELECT outbox.ack_logged($1::bigint[])`

// logAttemptsSQL writes a flush's attempts to outbox.attempts in one
// statement; it returns the error it swallowed, or NULL (migrations/007).
const logAttemptsSQL = `SELECT outbox.log_attempts($1::timestamptz[], $2::bigint[], $3::text[], $4::text[],
    $5::int[], $6::float8[], $7::int[], $8::text[], $9::text[], $10::text[])`

// historyPartitionsSQL makes the daily partitions of the history tables
// from today (UTC) for $1 days and drops those wholly older than $2 ms ago
// (none when $2 is negative), under historyLock, taken by the transaction
// so that one relay does it at a time. lock_timeout: creating and dropping
// a partition locks its parent table, and writers queue behind the lock;
// they wait at most 200ms (migrations/007), so this one must not wait for
// long either: it tries again on the next run.
const historyPartitionsSQL = `SELECT created, dropped FROM outbox.history_partitions(
    (now() AT TIME ZONE 'UTC')::date, $1::int,
    CASE WHEN $2::bigint < 0 THEN '-infinity' ELSE now() - $2 * interval '1 millisecond' END)`

// historyFunctionsSQL tells whether the history functions exist.
const historyFunctionsSQL = `SELECT to_regproc('outbox.log_attempts') IS NOT NULL AND to_regproc('outbox.ack_logged') IS NOT NULL`

// historyLockSQL takes historyLock for the transaction, if it is free.
const historyLockSQL = `SELECT pg_try_advisory_xact_lock($1)`

// historyLock makes one relay at a time maintain the history partitions.
const historyLock int64 = 0x4865726869737479

// historyLockTimeoutSQL bounds each lock historyPartitionsSQL waits for.
const historyLockTimeoutSQL = `SET LOCAL lock_timeout = '1s'`

// releaseHotSQL gives back claimed messages that were not attempted (the
// relay is stopping): visible at once, the claim not counted.
const releaseHotSQL = `UPDATE outbox.messages m
SET visible_at = now(), attempts = greatest(m.attempts - 1, 0), lease = NULL, holder = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS r(seq, lease)
WHERE m.seq = r.seq AND m.lease = r.lease`

// settleHotSQL moves messages that did not succeed everywhere out of the hot
// lane in one statement: the message row is deleted (fenced by its lease)
// and each pair still owed goes to the retry lane, each given-up pair to
// dead. Pairs: $3 seq, $4 endpoint (” = none), $5 attempts, $6 delay ms,
// $7 status (0 = none), $8 error, $9 response, $10 dead reason (” = retry),
// $11 attempted (false: not attempted yet, keeps last_* empty). It returns
// how many messages it settled: fewer than asked were fenced off.
const settleHotHead = `WITH settled AS (
    DELETE FROM outbox.messages m
    USING unnest($1::bigint[], $2::bigint[]) AS s(seq, lease)
    WHERE m.seq = s.seq AND m.lease = s.lease
    RETURNING m.seq, m.id, m.topic, m.payload, m.key, m.endpoint, m.headers, m.created_at
), pairs AS (
    SELECT * FROM unnest($3::bigint[], $4::text[], $5::int[], $6::bigint[], $7::int[], $8::text[], $9::text[], $10::text[], $11::bool[])
        AS p(seq, endpoint, attempts, delay_ms, status, error, response, dead_reason, attempted)
), retry AS (
    INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, key, named_endpoint, headers, created_at, attempts,
        first_attempt_at, last_attempt_at, next_attempt_at, last_status, last_error, last_response)
    SELECT s.seq, p.endpoint, s.id, s.topic, s.payload, s.key, s.endpoint, s.headers, s.created_at, p.attempts,
        now(), now(), now() + p.delay_ms * interval '1 millisecond',
        nullif(p.status, 0), nullif(p.error, ''), nullif(p.response, '')
    FROM settled s JOIN pairs p ON p.seq = s.seq
    WHERE p.dead_reason = ''
), dead AS (
    INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
        first_attempt_at, last_attempt_at, last_status, last_error, last_response, reason)
    SELECT s.seq, nullif(p.endpoint, ''), s.id, s.topic, s.payload, s.key, s.headers, s.created_at, p.attempts,
        CASE WHEN p.attempted THEN now() END, CASE WHEN p.attempted THEN now() END,
        nullif(p.status, 0), nullif(p.error, ''), nullif(p.response, ''), p.dead_reason
    FROM settled s JOIN pairs p ON p.seq = s.seq
    WHERE p.dead_reason <> ''`

const settleHotSQL = settleHotHead + `
)
SELECT count(*) FROM settled`

// settleHotAlertingSQL is settleHotSQL that also writes a
// herald.message.dead event for each of the first $12 rows it moved to
// dead, in the same statement (see deadAlertsSQL). It returns the messages
// settled, the events written and the deaths left unreported.
var settleHotAlertingSQL = settleHotHead + `
    RETURNING ` + deadAlertColumns + `
)` + deadAlertsSQL("$12", "settled")

// ackRetrySQL deletes acknowledged pairs from the retry lane.
const ackRetrySQL = `DELETE FROM outbox.deliveries d
USING unnest($1::bigint[], $2::text[]) AS k(seq, endpoint)
WHERE d.seq = k.seq AND d.endpoint = k.endpoint`

// ackRetryLoggedSQL is ackRetrySQL with history.messages: a message whose
// last pair this delivers is copied into outbox.message_log, unless a pair
// of it died; the pairs are deleted without the copy if it fails
// (migrations/012). It returns that failure, or NULL.
const ackRetryLoggedSQL = `SELECT outbox.ack_retry_logged($1::bigint[], $2::text[])`

// rescheduleRetrySQL records a failed attempt of pairs in the retry lane.
// $4 delay ms; $8 attempted = false releases a pair that was not attempted:
// due at once, the claim not counted, last_* left as they were. The pair
// has no holder any more: its backoff is not cut short if the relay dies.
const rescheduleRetrySQL = `UPDATE outbox.deliveries d
SET next_attempt_at = now() + k.delay_ms * interval '1 millisecond', holder = NULL,
    attempts = CASE WHEN k.attempted THEN d.attempts ELSE greatest(d.attempts - 1, 0) END,
    last_attempt_at = CASE WHEN k.attempted THEN now() ELSE d.last_attempt_at END,
    last_status = CASE WHEN k.attempted THEN nullif(k.status, 0) ELSE d.last_status END,
    last_error = CASE WHEN k.attempted THEN nullif(k.error, '') ELSE d.last_error END,
    last_response = CASE WHEN k.attempted THEN nullif(k.response, '') ELSE d.last_response END,
    lease = NULL
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::text[], $7::text[], $8::bool[])
    AS k(seq, endpoint, lease, delay_ms, status, error, response, attempted)
WHERE d.seq = k.seq AND d.endpoint = k.endpoint AND d.lease = k.lease`

// buryRetrySQL moves given-up pairs from the retry lane to dead.
const buryRetrySQL = buryRetryGone + buryRetryInsert

const buryRetryGone = `WITH gone AS (
    DELETE FROM outbox.deliveries d
    USING unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[])
        AS k(seq, endpoint, lease, status, error, response, reason)
    WHERE d.seq = k.seq AND d.endpoint = k.endpoint AND d.lease = k.lease
    RETURNING d.*, k.status AS k_status, k.error AS k_error, k.response AS k_response, k.reason AS k_reason
)
`

const buryRetryInsert = `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
    first_attempt_at, last_attempt_at, last_status, last_error, last_response, reason)
SELECT seq, endpoint, id, topic, payload, key, headers, created_at, attempts,
    first_attempt_at, now(), nullif(k_status, 0), nullif(k_error, ''), nullif(k_response, ''), k_reason
FROM gone`

// buryRetryAlertingSQL is buryRetrySQL that also writes a
// herald.message.dead event for each of the first $8 pairs it buried, in
// the same statement (see deadAlertsSQL). It returns the pairs buried, the
// events written and the deaths left unreported.
var buryRetryAlertingSQL = buryRetryGone + `, dead AS (
` + buryRetryInsert + `
    RETURNING ` + deadAlertColumns + `
)` + deadAlertsSQL("$8", "dead")

// deadAlertColumns are what a dead row returns for its event.
const deadAlertColumns = `id, seq, topic, key, endpoint, reason, attempts, last_status, last_error, created_at, died_at`

// deadAlertsSQL ends a statement whose CTE "dead" returns deadAlertColumns
// of the rows it moved to outbox.dead: it writes a herald.message.dead
// event (docs/alerts.md, relay.DeadAlert) for each of the first budget of
// them, keyed by endpoint, in the same statement, so that an event exists
// exactly when its death committed. A message of a herald.* topic raises
// none: an event about an event could loop. It returns the rows counted
// in the CTE named counted, the events written, and the deaths left for
// the relay's summary.
func deadAlertsSQL(budget, counted string) string {
	return `, alerted AS (
    INSERT INTO outbox.messages (topic, key, payload)
    SELECT '` + AlertMessageDead + `', d.endpoint, json_build_object(
        'version', ` + strconv.Itoa(AlertVersion) + `, 'event', '` + AlertMessageDead + `', 'summary', false,
        'message_id', d.id, 'seq', d.seq, 'topic', d.topic, 'key', d.key, 'endpoint', d.endpoint,
        'reason', d.reason, 'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error,
        'created_at', d.created_at, 'died_at', d.died_at)
    FROM (SELECT * FROM dead WHERE left(topic, ` + strconv.Itoa(len(alertTopicPrefix)) + `) <> '` + alertTopicPrefix + `'
          ORDER BY seq, endpoint LIMIT ` + budget + `) d
    RETURNING 1
)
SELECT (SELECT count(*) FROM ` + counted + `), (SELECT count(*) FROM alerted),
    (SELECT count(*) FROM dead WHERE left(topic, ` + strconv.Itoa(len(alertTopicPrefix)) + `) <> '` + alertTopicPrefix + `')
        - (SELECT count(*) FROM alerted)`
}

// insertAlertSQL writes one of Herald's events ($1 topic, $2 key, $3
// payload) as a message.
const insertAlertSQL = `INSERT INTO outbox.messages (topic, key, payload) VALUES ($1, $2, $3::json)`

// shiftClocksSQL moves the retry-budget clock of an endpoint's waiting
// pairs forward by an outage's length ($2 ms), never past now: time spent
// paused does not count towards max_elapsed_time.
const shiftClocksSQL = `UPDATE outbox.deliveries
SET first_attempt_at = least(now(), first_attempt_at + $2 * interval '1 millisecond')
WHERE endpoint = $1`

// deadTuplesSQL reads the dead row versions of the relay's busy tables,
// from the statistics collector (approximate, a second or so behind).
const deadTuplesSQL = `SELECT relname, n_dead_tup FROM pg_stat_user_tables
WHERE schemaname = 'outbox' AND relname IN ('messages', 'deliveries')`

// vacuumLock makes one relay at a time vacuum.
const vacuumLock int64 = 0x4865726176616375

// recordBreakerSQL writes a transition of one relay's breaker for one
// endpoint ($1 endpoint, $2 relay, $3 open, $4 since, $5 probe_at, $6 the
// transition's time): a write of an earlier transition than the row's
// changes nothing. It also prunes rows untouched for a day (a relay that
// stopped or died; closed breakers), other than the one it writes: the
// table stays as small as the endpoints times the live relays.
const recordBreakerSQL = `WITH pruned AS (
    DELETE FROM outbox.breakers
    WHERE updated_at < now() - interval '1 day' AND coalesce(probe_at, updated_at) < now() - interval '1 day'
      AND NOT (endpoint = $1 AND relay = $2)
)
INSERT INTO outbox.breakers AS b (endpoint, relay, open, since, probe_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (endpoint, relay) DO UPDATE
SET open = excluded.open, since = excluded.since, probe_at = excluded.probe_at, updated_at = excluded.updated_at
WHERE b.updated_at <= excluded.updated_at`

// Relay liveness (see liveness.go and docs/guarantees.md). Every time is
// PostgreSQL's; the relay's own clock only measures how long since it sent
// a statement.

// registerSQL adds a running relay: $1 its random id, $2 heartbeat_timeout
// in milliseconds.
const registerSQL = `INSERT INTO outbox.relays (id, alive_until) VALUES ($1, now() + $2 * interval '1 millisecond')`

// renewSQL is a heartbeat. It renews only a relay not declared dead whose
// alive_until has not passed: a relay that lapsed never comes back under
// the same id. reapSQL's row lock serialises the two, so a relay is either
// renewed or declared dead, never renewed after another relay saw it dead.
const renewSQL = `UPDATE outbox.relays SET alive_until = now() + $2 * interval '1 millisecond'
WHERE id = $1 AND dead_at IS NULL AND alive_until >= now()`

// retireSQL ends a stopping relay's liveness once nothing of it is in
// flight: the rows it could not write outcomes for are taken over at the
// next heartbeat of any relay, not after their lease.
const retireSQL = `UPDATE outbox.relays SET alive_until = now() WHERE id = $1 AND dead_at IS NULL`

// reapSQL declares dead the relays whose alive_until has passed, makes
// their retry-lane pairs due at once (the hot claim takes their messages by
// itself), and forgets the relays dead for longer than $1 ms (the lease:
// their rows are due by then anyway). The pairs are found through
// deliveries_due_idx among those not yet due, and only when a relay was
// declared dead (the EXISTS is evaluated once). It returns how many relays
// it declared dead, how many pairs it made due, and how many milliseconds
// from its now() the earliest alive_until of the other live relays is ($2
// the reaping relay's id; NULL when there is none): the relay reaps again
// then (see Relay.runHeartbeat). The outer SELECT sees the relays as they
// were before the statement, so those it just declared dead, already past
// their alive_until, are not counted.
const reapSQL = `WITH dead AS (
    UPDATE outbox.relays SET dead_at = now()
    WHERE dead_at IS NULL AND alive_until < now()
    RETURNING id
), rescued AS (
    UPDATE outbox.deliveries d SET next_attempt_at = now(), lease = NULL, holder = NULL
    WHERE EXISTS (SELECT 1 FROM dead) AND d.holder IN (SELECT id FROM dead)
        AND d.next_attempt_at > now() AND d.next_attempt_at < 'infinity'
    RETURNING 1
), forgotten AS (
    DELETE FROM outbox.relays WHERE dead_at < now() - $1 * interval '1 millisecond'
)
SELECT (SELECT count(*) FROM dead), (SELECT count(*) FROM rescued),
    (SELECT extract(epoch FROM min(alive_until) - now()) * 1000 FROM outbox.relays
     WHERE dead_at IS NULL AND alive_until >= now() AND id <> $2)::float8`

// syncCommitSQL makes the transaction of a liveness write commit
// synchronously.
const syncCommitSQL = `SET LOCAL synchronous_commit = on`
