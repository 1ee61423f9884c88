-- Endpoints in the database: webhook receivers that change at run time,
-- managed with plain SQL, with `herald endpoints`, or copied from the YAML
-- file by `herald run` at start. A message's endpoint column may name any
-- of them. Relays LISTEN on the channel herald_endpoints and re-read the
-- table when it fires, and also every relay.endpoint_refresh in case a
-- notification was missed.
--
-- The table holds signing secrets and header values (which often carry
-- credentials) in plain text: restrict it with GRANTs, e.g.
--   REVOKE ALL ON outbox.endpoints FROM PUBLIC;
--   GRANT SELECT, UPDATE ON outbox.endpoints TO herald;      -- relays (UPDATE: auto-disable)
--   GRANT SELECT ON outbox.endpoints_version TO herald;
--   GRANT SELECT, INSERT, UPDATE, DELETE ON outbox.endpoints TO herald_admin;
--
-- Columns left NULL take the defaults of the relay's configuration
-- (delivery.timeout, max_in_flight 64, permanent statuses 400, 413, 422).
-- The CHECKs below hold what the database can check cheaply; a relay checks
-- the rest (secret format, header names, URL form) when it loads a row, and
-- logs and skips a row it cannot use.

CREATE TABLE outbox.endpoints (
    -- Used in outbox.messages.endpoint, logs and metrics; the same pattern
    -- as endpoints[].name in the configuration file.
    name               text        PRIMARY KEY
        CONSTRAINT endpoints_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    url                text        NOT NULL
        CONSTRAINT endpoints_url_check CHECK (url ~* '^https?://[^/?#]'),
    -- Standard Webhooks signing secrets ('whsec_' + base64), newest first:
    -- every request is signed with each, so that a receiver can rotate.
    -- In plain text: see the GRANT advice above.
    secrets            text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT endpoints_secrets_check CHECK (array_position(secrets, NULL) IS NULL),
    -- Topic patterns; '*' matches any run of characters, dots included. An
    -- endpoint without topics receives only messages that name it.
    topics             text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT endpoints_topics_check CHECK (array_position(topics, NULL) IS NULL),
    -- Static headers, {"X-Env": "prod"}; values are treated as secrets.
    headers            jsonb
        CONSTRAINT endpoints_headers_check CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
    -- Time limit of one attempt; NULL means delivery.timeout.
    timeout_ms         integer
        CONSTRAINT endpoints_timeout_ms_check CHECK (timeout_ms BETWEEN 1000 AND 300000),
    -- Concurrent requests to this endpoint; NULL means 64.
    max_in_flight      integer
        CONSTRAINT endpoints_max_in_flight_check CHECK (max_in_flight BETWEEN 1 AND 10000),
    -- Requests per second; 0 means unlimited. NaN and infinity are refused
    -- (NaN sorts above infinity in PostgreSQL).
    rate_limit         float8      NOT NULL DEFAULT 0
        CONSTRAINT endpoints_rate_limit_check CHECK (rate_limit >= 0 AND rate_limit <= 1e6),
    -- Burst above rate_limit; 0 means max(1, ceil(rate_limit)).
    rate_burst         integer     NOT NULL DEFAULT 0
        CONSTRAINT endpoints_rate_burst_check CHECK (rate_burst BETWEEN 0 AND 1000000 AND (rate_burst = 0 OR rate_limit > 0)),
    -- Deliver the messages of one key in commit order.
    ordered            boolean     NOT NULL DEFAULT false,
    -- Ordered endpoints: when a message of a key dies, block the key's later
    -- messages or skip to them.
    on_dead            text        NOT NULL DEFAULT 'block'
        CONSTRAINT endpoints_on_dead_check CHECK (on_dead IN ('block', 'skip')),
    -- 4xx statuses that are final; NULL means {400,413,422}, '{}' retries
    -- every 4xx but 410.
    permanent_statuses integer[]
        CONSTRAINT endpoints_permanent_statuses_check CHECK (
            permanent_statuses IS NULL OR (
                array_position(permanent_statuses, NULL) IS NULL
                AND 400 <= ALL (permanent_statuses) AND 499 >= ALL (permanent_statuses)
                AND NOT 410 = ANY (permanent_statuses) AND NOT 429 = ANY (permanent_statuses))),
    follow_redirects   boolean     NOT NULL DEFAULT false,
    -- TLS towards the endpoint: absolute paths on the relays' hosts.
    tls_ca_file        text,
    tls_cert_file      text,
    tls_key_file       text,
    tls_min_version    text
        CONSTRAINT endpoints_tls_min_version_check CHECK (tls_min_version IN ('', '1.2', '1.3')),
    -- Set while the endpoint is disabled (by an operator, or by a relay after
    -- breaker.disable_after); its messages wait, undelivered.
    disabled_at        timestamptz,
    disabled_reason    text,
    -- Who manages the row: 'config' rows are copied from the YAML file by
    -- `herald run` (and deleted when they leave it); 'sql' and 'cli' rows
    -- are never touched by that copy.
    source             text        NOT NULL DEFAULT 'sql'
        CONSTRAINT endpoints_source_check CHECK (source IN ('config', 'sql', 'cli')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Set by the trigger below on every change.
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT endpoints_tls_pair_check CHECK ((coalesce(tls_cert_file, '') = '') = (coalesce(tls_key_file, '') = '')),
    CONSTRAINT endpoints_disabled_reason_check CHECK (disabled_reason IS NULL OR disabled_at IS NOT NULL)
);

COMMENT ON TABLE outbox.endpoints IS
    'Herald webhook endpoints. Holds signing secrets in plain text: restrict with GRANT. Changes NOTIFY herald_endpoints.';

-- A counter bumped in the same transaction as every change to
-- outbox.endpoints, so that a relay can poll for changes with one cheap
-- read. Every statement that writes outbox.endpoints first locks this row
-- (trigger endpoints_lock), so writers take turns and the counter goes up in
-- commit order: unlike max(updated_at), it cannot miss a change committed
-- late by a transaction that started early, nor a DELETE. Taking this lock
-- before any endpoint row also means two writers cannot deadlock on rows
-- they touch in different orders.
CREATE TABLE outbox.endpoints_version (
    only_row   boolean     PRIMARY KEY DEFAULT true CONSTRAINT endpoints_version_only_row_check CHECK (only_row),
    version    bigint      NOT NULL,
    changed_at timestamptz NOT NULL
);

INSERT INTO outbox.endpoints_version (version, changed_at) VALUES (1, now());

-- The functions below are SECURITY DEFINER so that a role allowed to write
-- outbox.endpoints needs no grant on outbox.endpoints_version.

CREATE FUNCTION outbox.endpoints_lock() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM outbox.endpoints_version FOR UPDATE;
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_lock
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON outbox.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.endpoints_lock();

-- updated_at always says when the row last changed, whatever the writer set.
CREATE FUNCTION outbox.endpoints_touch() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER endpoints_touch
    BEFORE INSERT OR UPDATE ON outbox.endpoints
    FOR EACH ROW EXECUTE FUNCTION outbox.endpoints_touch();

-- Each changed row bumps the version and notifies herald_endpoints with the
-- endpoint's name (sent at commit; PostgreSQL folds repeats within a
-- transaction). Row level, so that a statement that changes no row, such as
-- an upsert whose values are already there, bumps and notifies nothing.
-- Endpoint changes are rare: a bulk change of N rows bumps the counter N
-- times in its one transaction.
CREATE FUNCTION outbox.endpoints_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE outbox.endpoints_version SET version = version + 1, changed_at = now();
    IF TG_LEVEL = 'STATEMENT' THEN
        -- TRUNCATE: an empty payload means "re-read every endpoint".
        PERFORM pg_notify('herald_endpoints', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('herald_endpoints', OLD.name);
    ELSE
        PERFORM pg_notify('herald_endpoints', NEW.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_changed
    AFTER INSERT OR UPDATE OR DELETE ON outbox.endpoints
    FOR EACH ROW EXECUTE FUNCTION outbox.endpoints_changed();

CREATE TRIGGER endpoints_truncated
    AFTER TRUNCATE ON outbox.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.endpoints_changed();

---- create above / drop below ----

DROP TABLE outbox.endpoints;
DROP TABLE outbox.endpoints_version;
DROP FUNCTION outbox.endpoints_changed();
DROP FUNCTION outbox.endpoints_touch();
DROP FUNCTION outbox.endpoints_lock();
