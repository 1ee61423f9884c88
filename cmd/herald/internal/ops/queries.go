package ops

import "github.com/herald-relay/herald/relay"

// The SQL of package ops: every statement operators run on Herald's tables
// (the relay's own are in relay/queries.go), with named arguments (@name,
// pgx.NamedArgs).
//
// # Endpoints
//
// The endpoints' SQL. Every write to outbox.endpoints first locks the
// single row of outbox.endpoints_version (the table's statement trigger does
// it for single statements; transactions here do it explicitly first), so
// writers take turns and never deadlock on endpoint rows. Endpoints are few
// and change rarely: no query here needs an index beyond the primary key.

// columns is every column, in the order of row's fields.
const columns = `name, url, secrets, topics, headers, timeout_ms, max_in_flight, rate_limit, rate_burst,
    ordered, on_dead, permanent_statuses, follow_redirects,
    tls_ca_file, tls_cert_file, tls_key_file, tls_min_version, format, cloudevents_source,
    disabled_at, disabled_reason, source, created_at, updated_at`

const listSQL = `SELECT ` + columns + ` FROM outbox.endpoints ORDER BY name`

const getSQL = `SELECT ` + columns + ` FROM outbox.endpoints WHERE name = @name`

// lockSQL serialises writers of outbox.endpoints for the rest of the
// transaction (see migrations/002_endpoints.sql).
const lockSQL = `SELECT version FROM outbox.endpoints_version FOR UPDATE`

const versionSQL = `SELECT version FROM outbox.endpoints_version`

// Changes since a version (migrations/008): each row carries the version of
// its last change and each deletion leaves its name and version in
// outbox.endpoints_deleted, both through their version indexes. Read in one
// snapshot, markSQL is the highest version it shows, and every lower one is
// in it (writers take versions in turns and commit in that order).
const markSQL = `SELECT greatest(
    (SELECT coalesce(max(version), 0) FROM outbox.endpoints),
    (SELECT coalesce(max(version), 0) FROM outbox.endpoints_deleted))`

const changedSinceSQL = `SELECT ` + columns + ` FROM outbox.endpoints WHERE version > @mark ORDER BY name`

// deletedSinceSQL names the endpoints deleted since @mark and not inserted
// again; the empty name stands for a TRUNCATE.
const deletedSinceSQL = `SELECT d.name FROM outbox.endpoints_deleted d
WHERE d.version > @mark AND NOT EXISTS (SELECT 1 FROM outbox.endpoints e WHERE e.name = d.name)
ORDER BY d.name`

// snapshotSQL makes a transaction's reads one snapshot (when the DB cannot
// begin it so).
const snapshotSQL = `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`

const sourceSQL = `SELECT source FROM outbox.endpoints WHERE name = @name`

// settings are the columns an endpoint's configuration sets, as named
// arguments (see args), without its state (disabled_*) or source.
const settingsColumns = `name, url, secrets, topics, headers, timeout_ms, max_in_flight, rate_limit, rate_burst,
    ordered, on_dead, permanent_statuses, follow_redirects,
    tls_ca_file, tls_cert_file, tls_key_file, tls_min_version, format, cloudevents_source`

const settingsValues = `@name, @url, @secrets, @topics, @headers, @timeout_ms, @max_in_flight, @rate_limit, @rate_burst,
    @ordered, @on_dead, @permanent_statuses, @follow_redirects,
    @tls_ca_file, @tls_cert_file, @tls_key_file, @tls_min_version, @format, @cloudevents_source`

const settingsUpdate = `url = excluded.url, secrets = excluded.secrets, topics = excluded.topics,
    headers = excluded.headers, timeout_ms = excluded.timeout_ms, max_in_flight = excluded.max_in_flight,
    rate_limit = excluded.rate_limit, rate_burst = excluded.rate_burst, ordered = excluded.ordered,
    on_dead = excluded.on_dead, permanent_statuses = excluded.permanent_statuses,
    follow_redirects = excluded.follow_redirects, tls_ca_file = excluded.tls_ca_file,
    tls_cert_file = excluded.tls_cert_file, tls_key_file = excluded.tls_key_file,
    tls_min_version = excluded.tls_min_version, format = excluded.format,
    cloudevents_source = excluded.cloudevents_source`

// settingsDiffer is true when the existing row e differs from excluded in
// any setting: an upsert that would change nothing updates no row, so fires
// no trigger and wakes no relay.
const settingsDiffer = `(e.url, e.secrets, e.topics, e.headers, e.timeout_ms, e.max_in_flight, e.rate_limit,
    e.rate_burst, e.ordered, e.on_dead, e.permanent_statuses, e.follow_redirects, e.tls_ca_file,
    e.tls_cert_file, e.tls_key_file, e.tls_min_version, e.format, e.cloudevents_source)
  IS DISTINCT FROM (excluded.url, excluded.secrets, excluded.topics, excluded.headers, excluded.timeout_ms,
    excluded.max_in_flight, excluded.rate_limit, excluded.rate_burst, excluded.ordered, excluded.on_dead,
    excluded.permanent_statuses, excluded.follow_redirects, excluded.tls_ca_file, excluded.tls_cert_file,
    excluded.tls_key_file, excluded.tls_min_version, excluded.format, excluded.cloudevents_source)`

const insertSQL = `INSERT INTO outbox.endpoints (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    @source)
ON CONFLICT (name) DO NOTHING`

// upsertSQL writes every column; disabled_at keeps its time while the
// endpoint stays disabled.
const upsertSQL = `INSERT INTO outbox.endpoints AS e (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    @source)
ON CONFLICT (name) DO UPDATE SET ` + settingsUpdate + `,
    disabled_at = CASE WHEN @disabled::boolean THEN coalesce(e.disabled_at, now()) END,
    disabled_reason = excluded.disabled_reason,
    source = excluded.source
WHERE ` + settingsDiffer + `
   OR (e.disabled_at IS NOT NULL, e.disabled_reason, e.source)
      IS DISTINCT FROM (@disabled::boolean, excluded.disabled_reason, excluded.source)`

// syncUpsertSQL copies one endpoint of the configuration file: a new one
// is created (disabled if the file says so); an existing one of source
// config gets the file's settings and keeps its disabled state; a row of
// another source is left alone (SyncFromConfig then fails on it).
const syncUpsertSQL = `INSERT INTO outbox.endpoints AS e (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    'config')
ON CONFLICT (name) DO UPDATE SET ` + settingsUpdate + `
WHERE e.source = 'config' AND ` + settingsDiffer

// syncDeleteSQL removes the endpoints copied from the file earlier that are
// no longer in it.
const syncDeleteSQL = `DELETE FROM outbox.endpoints WHERE source = 'config' AND NOT (name = ANY (@names::text[]))`

// syncConflictsSQL finds names of the file held by rows of another source.
const syncConflictsSQL = `SELECT name, source FROM outbox.endpoints
WHERE name = ANY (@names::text[]) AND source <> 'config' ORDER BY name`

const removeSQL = `DELETE FROM outbox.endpoints WHERE name = @name AND source <> 'config'`

// disableSQL keeps the time of an earlier disable, and changes nothing when
// the endpoint is already disabled for the same reason. It returns how
// many endpoints it changed. An endpoint that was enabled raises
// herald.endpoint.disabled (docs/alerts.md) in the same statement, if some
// endpoint subscribes it: the event exists exactly when the change
// committed. A new reason for a disabled endpoint raises none.
var disableSQL = `WITH changed AS (
    UPDATE outbox.endpoints
    SET disabled_at = coalesce(disabled_at, now()), disabled_reason = nullif(@reason, '')
    WHERE name = @name AND (disabled_at IS NULL OR disabled_reason IS DISTINCT FROM nullif(@reason, ''))
    RETURNING name, disabled_at, disabled_reason
), alert AS (
    INSERT INTO outbox.messages (topic, key, payload)
    SELECT '` + relay.AlertDisabled + `', c.name, json_build_object('version', @version::int,
        'event', '` + relay.AlertDisabled + `', 'endpoint', c.name, 'at', c.disabled_at, 'reason', c.disabled_reason)
    FROM changed c
    WHERE c.disabled_at = now() AND ` + subscribedSQL(relay.AlertDisabled) + `
)
SELECT count(*) FROM changed`

// enableSQL returns how many endpoints it changed; each raises
// herald.endpoint.enabled as disableSQL raises herald.endpoint.disabled.
var enableSQL = `WITH changed AS (
    UPDATE outbox.endpoints SET disabled_at = NULL, disabled_reason = NULL
    WHERE name = @name AND disabled_at IS NOT NULL
    RETURNING name
), alert AS (
    INSERT INTO outbox.messages (topic, key, payload)
    SELECT '` + relay.AlertEnabled + `', c.name, json_build_object('version', @version::int,
        'event', '` + relay.AlertEnabled + `', 'endpoint', c.name, 'at', now(), 'reason', NULL)
    FROM changed c
    WHERE ` + subscribedSQL(relay.AlertEnabled) + `
)
SELECT count(*) FROM changed`

// subscribedSQL is true when some endpoint's topics match topic, one of
// Herald's events, as the relay routes (relay.MatchTopic: a pattern that
// starts with "herald.", in which '*' matches any run of characters and
// everything else itself), in LIKE: '\', '%' and '_' are escaped, '*' is
// '%'. topic is one of the relay's constants, never input.
func subscribedSQL(topic string) string {
	return `EXISTS (SELECT 1 FROM outbox.endpoints e, unnest(e.topics) AS t(pattern)
        WHERE left(t.pattern, 7) = 'herald.' AND '` + topic + `' LIKE replace(replace(replace(replace(t.pattern, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'))`
}

const existsSQL = `SELECT EXISTS (SELECT 1 FROM outbox.endpoints WHERE name = @name)`

// # Dead messages
//
// outbox.dead is read and written only by operators and by the purge that
// `herald run` schedules: nothing here is on the delivery path.

// deadWhere selects dead rows by a DeadFilter (see deadArgs): an empty id,
// endpoint or reason and a zero older_than_ms match everything.
const deadWhere = `(@id::text = '' OR id = @id)
    AND (@endpoint::text = '' OR endpoint = @endpoint)
    AND (@reason::text = '' OR reason = @reason)
    AND (@older_than_ms::bigint = 0 OR died_at < now() - @older_than_ms * interval '1 millisecond')`

// deadColumns are the columns of a DeadMessage.
const deadColumns = `dead_id, seq, id, topic, coalesce(endpoint, '') AS endpoint, coalesce(key, '') AS key,
    reason, attempts, last_status, coalesce(last_error, '') AS last_error, created_at, died_at`

// listDeadSQL reads the newest @limit (0: every) dead rows the filter
// selects, through the primary key.
const listDeadSQL = `SELECT ` + deadColumns + `
FROM outbox.dead WHERE ` + deadWhere + ` ORDER BY dead_id DESC LIMIT nullif(@limit::bigint, 0)`

// countDeadSQL counts what listDeadSQL would list, and what replayDeadSQL
// and purgeDeadSQL would act on, at most @limit (0: every).
const countDeadSQL = `SELECT count(*) FROM (
    SELECT 1 FROM outbox.dead WHERE ` + deadWhere + ` LIMIT nullif(@limit::bigint, 0)) AS selected`

// replayDeadSQL puts back the oldest @limit (0: every) dead rows the filter
// selects, in one statement, and returns each with why it was skipped (”
// when it was put back).
//
// A row that died for an endpoint goes to the retry lane for that endpoint
// only, with its original seq, due now, with a fresh retry budget and no
// trace of the earlier attempts: the ordered retry claim (relay/queries.go
// retryClaimHead) finds a key's head by seq, so a replayed message goes
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
    LIMIT nullif(@limit::bigint, 0)
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
SELECT p.dead_id, p.id, coalesce(p.endpoint, '') AS endpoint, CASE
    WHEN p.dead_id IN (SELECT dead_id FROM revived) THEN ''
    WHEN p.endpoint IS NOT NULL AND p.dead_id NOT IN (SELECT dead_id FROM pairs)
        THEN 'an older dead row of the same pair goes first (replay again)'
    WHEN p.endpoint IS NULL AND p.dead_id NOT IN (SELECT dead_id FROM unrouted)
        THEN 'an older dead row with the same message id goes first (replay again)'
    WHEN p.endpoint IS NOT NULL THEN 'the pair is already in outbox.deliveries (still being delivered)'
    ELSE 'a message with this id is already in outbox.messages' END AS why
FROM picked p ORDER BY p.dead_id`

// purgeLockSQL makes one process at a time purge (see purgeLock).
const purgeLockSQL = `SELECT pg_try_advisory_xact_lock(@lock)`

// purgeDeadSQL deletes up to @chunk dead rows the filter selects, through
// dead_died_at_idx.
const purgeDeadSQL = `DELETE FROM outbox.dead WHERE dead_id IN (
    SELECT dead_id FROM outbox.dead WHERE ` + deadWhere + ` LIMIT @chunk)`

// wakeSQL wakes the relays, which LISTEN on outbox.NotifyChannel, when the
// transaction commits.
const wakeSQL = `SELECT pg_notify(@channel, '')`

// # Queue status

// queueStatusSQL counts the three lanes, finds the age of the oldest
// message of the hot lane through its primary key (not a scan), and sums up
// the retry lane per endpoint in the same pass that counts it. The counts
// are full scans of the lanes: cheap while the outbox keeps up, which is
// when a scrape every few seconds is affordable. The hot lane has no
// per-endpoint figures: its messages are routed only when claimed.
const queueStatusSQL = `WITH retry AS (
    SELECT endpoint, count(*) AS retrying, min(created_at) AS oldest FROM outbox.deliveries GROUP BY endpoint
)
SELECT
    (SELECT count(*) FROM outbox.messages) AS pending,
    (SELECT coalesce(sum(retrying), 0) FROM retry)::bigint AS retrying,
    (SELECT count(*) FROM outbox.dead) AS dead,
    coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox.messages ORDER BY seq LIMIT 1)), 0)::float8
        AS oldest_pending_seconds,
    (SELECT coalesce(json_agg(json_build_object('endpoint', endpoint, 'retrying', retrying,
        'oldest_seconds', extract(epoch FROM now() - oldest)::float8) ORDER BY endpoint), '[]') FROM retry)
        AS endpoints`

// # Messages
//
// What `herald messages` reads: every lookup of one message goes through
// an index on id (messages_id_idx, deliveries_id_idx of migration 009,
// dead_id_idx, message_log_id_idx, attempts_id_idx).

// contentColumns are a message's content as JSON keys (see content).
const contentColumns = `'topic', topic, 'key', coalesce(key, ''), 'payload', payload, 'headers', headers,
    'created_at', created_at`

// showMessageSQL reads every place that holds the message @id in one
// statement, so in one snapshot: each as a JSON array (empty when none),
// and the most recent @attempts_limit attempts, oldest first, with how many
// there are in all. 'infinity' times (a parked retry, an unleased hot row)
// become null: they are states, not times.
const showMessageSQL = `SELECT
    (SELECT coalesce(json_agg(json_build_object(` + contentColumns + `, 'target', coalesce(endpoint, ''),
        'seq', seq, 'claims', attempts, 'leased_until', CASE WHEN visible_at > now() THEN visible_at END)), '[]')
     FROM outbox.messages WHERE id = @id) AS pending,
    (SELECT coalesce(json_agg(json_build_object(` + contentColumns + `, 'endpoint', endpoint, 'attempts', attempts,
        'next_attempt_at', CASE WHEN isfinite(next_attempt_at) THEN next_attempt_at END,
        'last_attempt_at', last_attempt_at, 'last_status', last_status, 'last_error', coalesce(last_error, ''),
        'last_response', coalesce(last_response, '')) ORDER BY endpoint), '[]')
     FROM outbox.deliveries WHERE id = @id) AS retrying,
    (SELECT coalesce(json_agg(json_build_object(` + contentColumns + `, 'dead_id', dead_id,
        'endpoint', coalesce(endpoint, ''), 'reason', reason, 'attempts', attempts, 'last_status', last_status,
        'last_error', coalesce(last_error, ''), 'last_response', coalesce(last_response, ''), 'died_at', died_at)
        ORDER BY dead_id DESC), '[]')
     FROM outbox.dead WHERE id = @id) AS dead,
    (SELECT coalesce(json_agg(json_build_object(` + contentColumns + `, 'target', coalesce(endpoint, ''),
        'delivered_at', delivered_at, 'seq', seq) ORDER BY delivered_at DESC), '[]')
     FROM outbox.message_log WHERE id = @id) AS delivered,
    (SELECT coalesce(json_agg(json_build_object('at', at, 'endpoint', endpoint, 'attempt', attempt,
        'duration_ms', duration_ms, 'status', status, 'error_class', coalesce(error_class, ''),
        'error', coalesce(error, ''), 'response', coalesce(response, '')) ORDER BY at, endpoint, attempt), '[]')
     FROM (SELECT * FROM outbox.attempts WHERE id = @id ORDER BY at DESC LIMIT @attempts_limit) a) AS attempts,
    (SELECT count(*) FROM outbox.attempts WHERE id = @id) AS attempts_total`

// listMessagesSQL lists the messages of every lane and of the message log,
// newest first by (created_at, id, rank, endpoint), one page of @limit rows
// after the keyset cursor (@c_*). The filters are pushed down into each
// branch; a --status filter leaves only its branch. No index orders the
// lanes by created_at, so a page reads every row its filters select and
// keeps the newest: cheap while the lanes are short, which is when the
// outbox keeps up; on a backlog of 1M messages narrow it with --status,
// --since and --topic (delivered messages are read through
// message_log_topic_idx, and --since prunes the log's daily partitions).
const listMessagesSQL = `SELECT status, rank, id, topic, endpoint, created_at, at, attempts, last_status, last_error
FROM (
    SELECT 'pending' AS status, 0 AS rank, id, topic, coalesce(endpoint, '') AS endpoint, created_at,
        CASE WHEN visible_at > now() THEN visible_at END AS at, attempts, NULL::integer AS last_status, '' AS last_error,
        created_at AS since_at
    FROM outbox.messages
    UNION ALL
    SELECT 'retrying', 1, id, topic, endpoint, created_at, CASE WHEN isfinite(next_attempt_at) THEN next_attempt_at END,
        attempts, last_status, coalesce(last_error, ''), created_at
    FROM outbox.deliveries
    UNION ALL
    SELECT 'dead', 2, id, topic, coalesce(endpoint, ''), created_at, died_at, attempts, last_status, coalesce(last_error, ''),
        created_at
    FROM outbox.dead
    UNION ALL
    SELECT 'delivered', 3, id, topic, coalesce(endpoint, ''), created_at, delivered_at, 0, NULL, '',
        -- a message is delivered after it is created: the partition key
        -- bounds the scan by the same --since
        delivered_at
    FROM outbox.message_log
) m
WHERE (@status::text = '' OR status = @status)
    AND (@topic::text = '' OR topic = @topic)
    AND (@endpoint::text = '' OR endpoint = @endpoint)
    AND (@since::timestamptz IS NULL OR (created_at >= @since AND since_at >= @since))
    AND (@until::timestamptz IS NULL OR created_at < @until)
    AND (NOT @has_cursor::boolean OR (created_at, id, rank, endpoint) < (@c_at::timestamptz, @c_id::text, @c_rank::integer, @c_endpoint::text))
ORDER BY created_at DESC, id DESC, rank DESC, endpoint DESC
LIMIT @limit`

// resendSourceSQL finds the content of the most recent dead or logged copy
// of the message @id (through dead_id_idx and message_log_id_idx).
const resendSourceSQL = `SELECT origin, topic, key, endpoint, payload, headers FROM (
    SELECT 'dead' AS origin, topic, key, NULL::text AS endpoint, payload, headers, died_at AS at
    FROM outbox.dead WHERE id = @id
    UNION ALL
    SELECT 'delivered', topic, key, endpoint, payload, headers, delivered_at
    FROM outbox.message_log WHERE id = @id
) copies ORDER BY at DESC LIMIT 1`

// resendSQL writes a copy in the hot lane like a producer would (a key
// takes the key's advisory lock in the messages_key_order trigger), and
// writes nothing when a message with the id is already there.
const resendSQL = `INSERT INTO outbox.messages (id, topic, payload, key, endpoint, headers)
VALUES (@id, @topic, @payload, @key, nullif(@endpoint::text, ''), @headers)
ON CONFLICT (id) DO NOTHING
RETURNING seq`

// statusSQL reads what `herald status` shows, in one statement (one
// snapshot), each part a JSON array:
//   - hot: the hot lane grouped by topic and named endpoint (routed to
//     endpoints in Go, as the relays route): one scan of the hot lane,
//   - retry: the retry lane per endpoint: one scan of the retry lane,
//   - dead: outbox.dead per endpoint, an index-only scan of
//     dead_endpoint_idx (migration 009),
//   - attempts: per endpoint of @names (none when history.attempts is not
//     all: GetStatus computes no rate then) and window (5 and 60 minutes), the
//     @sample most recent attempts through attempts_endpoint_idx, so that
//     its cost is bounded by endpoints x sample, not by the traffic,
//   - breakers: per endpoint, the relays whose breaker is open and not
//     stale (next probe less than @stale_ms ago).
//
// The two lane scans are what grows: cheap while the outbox keeps up, and
// measured in docs/operations.md at 1M rows.
const statusSQL = `SELECT
    (SELECT coalesce(json_agg(h), '[]') FROM (
        SELECT topic, coalesce(endpoint, '') AS endpoint, count(*) AS n,
            extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
        FROM outbox.messages GROUP BY topic, endpoint) h) AS hot,
    (SELECT coalesce(json_agg(r), '[]') FROM (
        SELECT endpoint, count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
        FROM outbox.deliveries GROUP BY endpoint) r) AS retry,
    (SELECT coalesce(json_agg(d), '[]') FROM (
        SELECT coalesce(endpoint, '') AS endpoint, count(*) AS n FROM outbox.dead GROUP BY endpoint) d) AS dead,
    (SELECT coalesce(json_agg(a), '[]') FROM (
        SELECT e.name AS endpoint, w.minutes, count(*) AS n, count(*) FILTER (WHERE s.error_class IS NULL) AS ok
        FROM unnest(@names::text[]) AS e(name)
        CROSS JOIN (VALUES (5), (60)) AS w(minutes)
        CROSS JOIN LATERAL (
            SELECT error_class FROM outbox.attempts
            WHERE endpoint = e.name AND at > now() - w.minutes * interval '1 minute'
            ORDER BY at DESC LIMIT @sample) AS s
        GROUP BY e.name, w.minutes) a) AS attempts,
    (SELECT coalesce(json_agg(b), '[]') FROM (
        SELECT endpoint, min(since) AS since, min(probe_at) AS probe_at, array_agg(relay ORDER BY relay) AS relays
        FROM outbox.breakers
        WHERE open AND (probe_at IS NULL OR probe_at > now() - @stale_ms * interval '1 millisecond')
        GROUP BY endpoint) b) AS breakers`

// retryingEndpointsSQL names the endpoints for which the message @id has a
// pair in the retry lane (through deliveries_id_idx).
const retryingEndpointsSQL = `SELECT endpoint FROM outbox.deliveries WHERE id = @id ORDER BY endpoint`
