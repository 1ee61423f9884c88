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

---- create above / drop below ----

DROP FUNCTION outbox.history_partitions(date, integer, timestamptz);
DROP TABLE outbox.message_log;
DROP TABLE outbox.attempts;
