-- Per-key order for endpoints with `ordered: true`.
--
-- Commit order per key. A message's seq is drawn from the sequence when it
-- is inserted, which is not the order in which transactions commit: two
-- writers of one key could commit in the opposite order of their seqs. So
-- an insert with a key first takes a transaction-scoped advisory lock on
-- the key, and only then draws its seq. A second writer of the key waits
-- for the first to commit or roll back, and its seq is drawn after that: for
-- one key, seq order is commit order. Writers of different keys never wait
-- for each other (but for a rare hash collision, which only costs a wait).
-- Like row locks, two transactions that insert the same keys in opposite
-- orders can deadlock; PostgreSQL aborts one of them, which retries.
-- outbox.Enqueue takes the keys of a batch in sorted order to avoid that.
CREATE FUNCTION outbox.messages_key_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- 0x68657261 ('hera') namespaces the lock away from other advisory locks.
    PERFORM pg_advisory_xact_lock(1751478881, hashtext(NEW.key));
    NEW.seq := nextval(pg_get_serial_sequence('outbox.messages', 'seq'));
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_key_order
    BEFORE INSERT ON outbox.messages
    FOR EACH ROW WHEN (NEW.key IS NOT NULL)
    EXECUTE FUNCTION outbox.messages_key_order();

-- "Is an older message of this key still pending?" is answered through
-- these indexes, for keyed rows only.
CREATE INDEX messages_key_idx ON outbox.messages (key, seq) WHERE key IS NOT NULL;
CREATE INDEX deliveries_key_idx ON outbox.deliveries (key, endpoint, seq) WHERE key IS NOT NULL;
CREATE INDEX dead_key_idx ON outbox.dead (key, endpoint, seq) WHERE key IS NOT NULL;

---- create above / drop below ----

DROP INDEX outbox.dead_key_idx;
DROP INDEX outbox.deliveries_key_idx;
DROP INDEX outbox.messages_key_idx;
DROP TRIGGER messages_key_order ON outbox.messages;
DROP FUNCTION outbox.messages_key_order();
