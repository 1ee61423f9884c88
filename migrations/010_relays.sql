-- Taking over a dead relay's work in seconds instead of a lease (60 s).
--
-- Each running relay has a row here and renews alive_until every
-- relay.heartbeat_interval to now() + relay.heartbeat_timeout, by
-- PostgreSQL's clock. A relay whose alive_until has passed is declared dead
-- (dead_at set) by the next heartbeat of any relay; the row lock of that
-- UPDATE serialises it with the dead relay's own renewal, which requires
-- dead_at IS NULL and alive_until >= now(): a relay once dead never renews,
-- it registers again under a new id. Claims then take the rows a dead relay
-- holds without waiting out their lease. The argument that two relays
-- never deliver one message at the same time is in docs/guarantees.md.
CREATE TABLE outbox.relays (
    -- Random, chosen by the relay: never reused, even by a sequence rolled
    -- back in a crash, so a relay cannot renew another's row.
    id          bigint      PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    alive_until timestamptz NOT NULL,
    dead_at     timestamptz
);

-- The relay that claimed the row (outbox.relays.id). Unindexed, as the
-- other columns a claim writes, so that the claim stays a HOT update; NULL
-- when no relay holds it. Added without a default: no table rewrite.
ALTER TABLE outbox.messages ADD COLUMN holder bigint;
ALTER TABLE outbox.deliveries ADD COLUMN holder bigint;

---- create above / drop below ----

ALTER TABLE outbox.deliveries DROP COLUMN holder;
ALTER TABLE outbox.messages DROP COLUMN holder;
DROP TABLE outbox.relays;
