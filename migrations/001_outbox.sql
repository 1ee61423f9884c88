-- Herald's outbox: the hot lane (messages), the retry lane (deliveries) and
-- the parking lot (dead). Producers only ever INSERT into outbox.messages.
--
-- Write cost on the happy path, per message: the producer's INSERT (heap +
-- primary key + id index), one HOT UPDATE when a relay claims it (only
-- unindexed columns change), one DELETE once every endpoint acknowledged.

CREATE TABLE outbox.messages (
    -- Claim order. Producers never set it (GENERATED ALWAYS).
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The stable message id, sent as webhook-id on every attempt. A producer
    -- may set its own and insert with ON CONFLICT (id) DO NOTHING to make a
    -- repeated insert a no-op. Restricted to characters that are safe in an
    -- HTTP header and in the signed content "id.timestamp.body".
    id         text        NOT NULL DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    topic      text        NOT NULL,
    -- json, not jsonb: validated on insert, and the stored bytes are the
    -- request body exactly as the producer wrote them.
    payload    json        NOT NULL,
    -- Ordering key (e.g. the aggregate id).
    key        text,
    -- Name of one endpoint: deliver there only, bypassing topic routing.
    endpoint   text,
    -- Extra HTTP headers for this message: {"X-Tenant": "acme"}.
    headers    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),

    -- Relay-owned columns, deliberately unindexed so that a claim is a HOT
    -- update. visible_at is the lease expiry while a relay holds the row.
    visible_at timestamptz NOT NULL DEFAULT '-infinity',
    -- Claims so far; more than one means a relay lost its lease mid-delivery.
    attempts   integer     NOT NULL DEFAULT 0,
    -- Fencing token of the current claim: every write after a delivery
    -- matches it, so a relay whose lease expired cannot overwrite a newer claim.
    lease      bigint,

    CONSTRAINT messages_id_check CHECK (id ~ '^[A-Za-z0-9_.:~+=/-]{1,255}$'),
    CONSTRAINT messages_topic_check CHECK (topic <> '' AND length(topic) <= 255),
    CONSTRAINT messages_headers_check CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object')
) WITH (
    -- Room on each page for the claim's new row version keeps it HOT.
    fillfactor = 80,
    -- A queue table churns: vacuum on an absolute number of dead rows, at once.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);

CREATE UNIQUE INDEX messages_id_idx ON outbox.messages (id);

COMMENT ON TABLE outbox.messages IS
    'Herald outbox. INSERT (topic, payload[, key, endpoint, headers, id]) in the business transaction; Herald delivers and deletes.';

-- One row per (message, endpoint) pair still owed after a failed attempt.
-- Rows arrive here only on failure, so a dead endpoint never clutters the
-- head of the hot lane's claim scan.
CREATE TABLE outbox.deliveries (
    seq              bigint      NOT NULL,
    endpoint         text        NOT NULL,
    id               text        NOT NULL,
    topic            text        NOT NULL,
    payload          json        NOT NULL,
    key              text,
    headers          jsonb,
    created_at       timestamptz NOT NULL,
    attempts         integer     NOT NULL,
    first_attempt_at timestamptz NOT NULL,
    last_attempt_at  timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    lease            bigint,
    last_status      integer,
    last_error       text,
    -- The first bytes of the endpoint's last response, for diagnosis.
    last_response    text,
    PRIMARY KEY (seq, endpoint)
) WITH (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE INDEX deliveries_due_idx ON outbox.deliveries (next_attempt_at, seq);

-- Messages Herald gave up on, with the reason. Never retried automatically;
-- `herald dead replay` puts them back.
CREATE TABLE outbox.dead (
    dead_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq              bigint      NOT NULL,
    -- NULL when the message never had an endpoint (unroutable, invalid).
    endpoint         text,
    id               text        NOT NULL,
    topic            text        NOT NULL,
    payload          json        NOT NULL,
    key              text,
    headers          jsonb,
    created_at       timestamptz NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    last_response    text,
    -- exhausted: retries used up; gone: the endpoint answered 410;
    -- rejected: a status configured as permanent; unroutable: no endpoint
    -- subscribes to the topic; invalid: the row cannot be sent as it is.
    reason           text        NOT NULL
        CHECK (reason IN ('exhausted', 'gone', 'rejected', 'unroutable', 'invalid')),
    died_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_died_at_idx ON outbox.dead (died_at);
CREATE INDEX dead_id_idx ON outbox.dead (id);

---- create above / drop below ----

DROP TABLE outbox.dead;
DROP TABLE outbox.deliveries;
DROP TABLE outbox.messages;
