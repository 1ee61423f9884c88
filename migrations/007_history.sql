-- Delivery history: what was sent, when, and what the endpoint answered.
--
-- outbox.attempts logs each delivery attempt (history.attempts: all or
-- failures); outbox.message_log keeps delivered messages with their payload
-- and headers for audit and resend (history.messages: true). Both are
-- partitioned by day on their time column. Retention never DELETEs: the
-- maintenance job creates partitions ahead and drops whole partitions
-- behind history.retention, so a table's size follows the retention window,
-- not its history, and nothing here needs VACUUM (autovacuum may be off).
-- The relay writes both in batches, one statement per flush.
CREATE TABLE outbox.attempts (
    at          timestamptz      NOT NULL, -- when the request started
    seq         bigint           NOT NULL,
    id          text             NOT NULL, -- the message id (webhook-id)
    endpoint    text             NOT NULL,
    attempt     integer          NOT NULL, -- 1 for the first attempt of this (message, endpoint)
    duration_ms double precision NOT NULL,
    status      integer,                   -- the HTTP status, NULL when no response came
    error_class text,                      -- NULL on success; else timeout, connect, status, ... (see docs/operations.md)
    error       text,                      -- capped, valid UTF-8, secrets masked
    response    text                       -- the first bytes of the response body, capped, valid UTF-8
) PARTITION BY RANGE (at);

CREATE INDEX attempts_id_idx ON outbox.attempts (id, at);
CREATE INDEX attempts_endpoint_idx ON outbox.attempts (endpoint, at);

CREATE TABLE outbox.message_log (
    delivered_at timestamptz NOT NULL, -- when its last delivery succeeded
    seq          bigint      NOT NULL,
    id           text        NOT NULL,
    topic        text        NOT NULL,
    key          text,
    endpoint     text,                 -- the target endpoint, when the message named one
    payload      json        NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL
) PARTITION BY RANGE (delivered_at);

CREATE INDEX message_log_id_idx ON outbox.message_log (id);
CREATE INDEX message_log_topic_idx ON outbox.message_log (topic, delivered_at);

-- outbox.history_partitions makes sure the daily partitions (UTC days) of both tables
-- exist from day `first` for `days` days, and drops those wholly older than
-- `keep_from`. It returns how many it created and dropped. The relay's
-- maintenance job calls it under its advisory lock; this migration calls
-- it once so that history can be written before the first maintenance run.
CREATE FUNCTION outbox.history_partitions(first date, days integer, keep_from timestamptz,
    OUT created integer, OUT dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    d date;
    part record;
BEGIN
    created := 0;
    dropped := 0;
    FOREACH parent IN ARRAY ARRAY['attempts', 'message_log'] LOOP
        FOR i IN 0 .. days - 1 LOOP
            d := first + i;
            IF to_regclass(format('outbox.%I', parent || '_' || to_char(d, 'YYYYMMDD'))) IS NULL THEN
                EXECUTE format('CREATE TABLE outbox.%I PARTITION OF outbox.%I FOR VALUES FROM (%L) TO (%L)',
                    parent || '_' || to_char(d, 'YYYYMMDD'), parent,
                    d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
        END LOOP;
        FOR part IN
            SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            JOIN pg_namespace n ON n.oid = p.relnamespace
            WHERE n.nspname = 'outbox' AND p.relname = parent
              AND c.relname ~ ('^' || parent || '_[0-9]{8}$')
              AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= keep_from
        LOOP
            EXECUTE format('DROP TABLE outbox.%I', part.relname);
            dropped := dropped + 1;
        END LOOP;
    END LOOP;
END
$$;

SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date - 1, 4, '-infinity');

-- A history write must never hold back or undo a delivery outcome: the
-- relay writes outcomes and history in one round trip, which PostgreSQL runs
-- as one implicit transaction, so a history statement that failed (no
-- partition for the day, a table locked by DDL) would fail the outcomes
-- with it, and one that waited on a lock would make them wait. These two
-- functions write history in a subtransaction that waits at most
-- lock_timeout 200ms and swallows its own error, which they return (NULL
-- when it was written) for the relay to count and log.

-- outbox.log_attempts inserts a batch of attempts, one array per column;
-- status 0, '' error_class, error and response are NULL.
CREATE FUNCTION outbox.log_attempts(ats timestamptz[], seqs bigint[], ids text[], endpoints text[],
    attempt_nos integer[], durations double precision[], statuses integer[], classes text[],
    errors text[], responses text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    saved text := current_setting('lock_timeout');
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', '200ms', true);
        INSERT INTO outbox.attempts (at, seq, id, endpoint, attempt, duration_ms, status, error_class, error, response)
        SELECT a.at, a.seq, a.id, a.endpoint, a.attempt, a.duration_ms, nullif(a.status, 0),
            nullif(a.class, ''), nullif(a.error, ''), nullif(a.response, '')
        FROM unnest(ats, seqs, ids, endpoints, attempt_nos, durations, statuses, classes, errors, responses)
            AS a(at, seq, id, endpoint, attempt, duration_ms, status, class, error, response);
        PERFORM set_config('lock_timeout', saved, true);
    EXCEPTION WHEN OTHERS THEN
        -- The subtransaction's rollback has restored lock_timeout.
        RETURN SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NULL;
END
$$;

-- outbox.ack_logged deletes the delivered messages seqs and copies them
-- into outbox.message_log in the same statement, so that a message is
-- either still pending or deleted and logged. If the copy fails, the
-- messages are deleted without it: the delivery outcome wins over the
-- audit. It returns the error of the copy, or NULL. Only the lock on
-- outbox.message_log (which DDL such as a partition's DROP takes) is
-- bounded by the 200ms: the delete waits for the rows of outbox.messages
-- as an ack without history does (behind a VACUUM truncating the table,
-- say).
CREATE FUNCTION outbox.ack_logged(seqs bigint[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    saved text := current_setting('lock_timeout');
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', '200ms', true);
        LOCK TABLE outbox.message_log IN ROW EXCLUSIVE MODE;
        PERFORM set_config('lock_timeout', saved, true);
        WITH d AS (
            DELETE FROM outbox.messages WHERE seq = ANY(seqs)
            RETURNING seq, id, topic, key, endpoint, payload, headers, created_at
        )
        INSERT INTO outbox.message_log (delivered_at, seq, id, topic, key, endpoint, payload, headers, created_at)
        SELECT now(), seq, id, topic, key, endpoint, payload, headers, created_at FROM d;
    EXCEPTION WHEN OTHERS THEN
        DELETE FROM outbox.messages WHERE seq = ANY(seqs);
        RETURN SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NULL;
END
$$;

---- create above / drop below ----

DROP FUNCTION outbox.ack_logged(bigint[]);
DROP FUNCTION outbox.log_attempts(timestamptz[], bigint[], text[], text[], integer[], double precision[], integer[], text[], text[], text[]);
DROP FUNCTION outbox.history_partitions(date, integer, timestamptz);
DROP TABLE outbox.message_log;
DROP TABLE outbox.attempts;
