-- A message delivered only after retries goes to outbox.message_log too
-- (history.messages), as one delivered in its first round does
-- (migrations/007).
--
-- The log keeps the endpoint a message named (outbox.messages.endpoint),
-- for a resend to go there only; the retry lane kept only each pair's
-- endpoint, which a topic's subscriber has too. named_endpoint keeps it: NULL
-- for a message routed by its topic, and on the pairs already waiting
-- (adding it rewrites nothing).
ALTER TABLE outbox.deliveries ADD COLUMN named_endpoint text;

-- outbox.ack_retry_logged deletes the delivered pairs (seqs[i],
-- endpoints[i]) from the retry lane, and copies a message into
-- outbox.message_log once it is delivered everywhere: when none of its pairs
-- is left in the retry lane and none is dead. Like outbox.ack_logged, it
-- bounds the wait for outbox.message_log's lock to 200ms, deletes the pairs
-- without the copy if the copy fails, and returns that error, or NULL.
--
-- Two relays may deliver the last two pairs of a message at once: each
-- would see the other's pair still there, and neither would log it. An
-- advisory lock per message (the two-key form, in Herald's class 'Hrld';
-- messages 2^31 apart share one, which only makes them wait for each other)
-- makes the second wait until the first has committed, and its statement
-- then sees the first's delete. The locks are taken in order, before any
-- row is deleted, so two acks never wait for each other in a cycle; and
-- only for messages with another pair waiting (a message of one endpoint
-- takes none), so that a flush holds few of the server's lock slots
-- (max_locks_per_transaction), at most one per pair it acks.
CREATE FUNCTION outbox.ack_retry_logged(seqs bigint[], endpoints text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    saved text := current_setting('lock_timeout');
    k integer;
BEGIN
    FOR k IN SELECT DISTINCT (a.seq & 2147483647)::integer FROM unnest(seqs, endpoints) AS a(seq, endpoint)
        WHERE EXISTS (SELECT 1 FROM outbox.deliveries o WHERE o.seq = a.seq AND o.endpoint <> a.endpoint)
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(1215450212, k);
    END LOOP;
    BEGIN
        PERFORM set_config('lock_timeout', '200ms', true);
        LOCK TABLE outbox.message_log IN ROW EXCLUSIVE MODE;
        PERFORM set_config('lock_timeout', saved, true);
        WITH acked AS (
            SELECT * FROM unnest(seqs, endpoints) AS a(seq, endpoint)
        ), d AS (
            DELETE FROM outbox.deliveries x USING acked a
            WHERE x.seq = a.seq AND x.endpoint = a.endpoint
            RETURNING x.seq, x.id, x.topic, x.key, x.named_endpoint, x.payload, x.headers, x.created_at
        ), msgs AS (
            SELECT DISTINCT ON (seq) *, count(*) OVER (PARTITION BY seq) AS deleted FROM d ORDER BY seq
        )
        INSERT INTO outbox.message_log (delivered_at, seq, id, topic, key, endpoint, payload, headers, created_at)
        SELECT now(), seq, id, topic, key, named_endpoint, payload, headers, created_at
        FROM msgs m
        -- The statement sees the retry lane as it was before its delete:
        -- the message's last pairs are those it deleted.
        WHERE m.deleted = (SELECT count(*) FROM outbox.deliveries o WHERE o.seq = m.seq)
            AND NOT EXISTS (SELECT 1 FROM outbox.dead x WHERE x.id = m.id AND x.seq = m.seq);
    EXCEPTION WHEN OTHERS THEN
        DELETE FROM outbox.deliveries x USING unnest(seqs, endpoints) AS a(seq, endpoint)
        WHERE x.seq = a.seq AND x.endpoint = a.endpoint;
        RETURN SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NULL;
END
$$;

---- create above / drop below ----

DROP FUNCTION outbox.ack_retry_logged(bigint[], text[]);
ALTER TABLE outbox.deliveries DROP COLUMN named_endpoint;
