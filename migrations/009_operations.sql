-- What operators read (`herald messages`, `herald status`).
--
-- 1. `herald messages show ID` finds a message's pairs in the retry lane by
--    id. Without an index that was a scan of the whole lane (which holds
--    every pair of an endpoint that is down). The retry lane is written
--    only on failure, so the index costs the happy path nothing.
-- 2. `herald status` counts dead rows per endpoint; outbox.dead is written
--    only when a pair is given up.
-- 3. Each relay's circuit breakers live in its memory; outbox.breakers is
--    where a relay records each transition of one (opened, probe failed,
--    closed: one write each, never one per delivery), so that `herald
--    status` can say which endpoints are paused, by which relay, since
--    when, and when the next probe is due. A relay that stops or dies
--    leaves its rows behind: a row whose probe_at is long past is stale (a
--    live relay with messages for the endpoint would have probed and
--    written again), and rows untouched for a day are pruned by the next
--    transition of any relay. Relays need INSERT, UPDATE and DELETE on
--    it (GRANT ... ON outbox.breakers TO herald, next to the grants of
--    migrations/002); without them a relay logs a warning per transition
--    and delivers as before.
CREATE INDEX deliveries_id_idx ON outbox.deliveries (id);
CREATE INDEX dead_endpoint_idx ON outbox.dead (endpoint);

CREATE TABLE outbox.breakers (
    endpoint   text        NOT NULL,
    -- The relay whose breaker this is: host name and process id.
    relay      text        NOT NULL,
    open       boolean     NOT NULL,
    -- Since when the breaker is in this state (the relay's clock).
    since      timestamptz NOT NULL,
    -- While open, when the relay probes the endpoint next.
    probe_at   timestamptz,
    -- The time of the transition written last: a write older than the
    -- row's (two transitions written out of order) changes nothing.
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (endpoint, relay)
);

---- create above / drop below ----

DROP TABLE outbox.breakers;
DROP INDEX outbox.dead_endpoint_idx;
DROP INDEX outbox.deliveries_id_idx;
