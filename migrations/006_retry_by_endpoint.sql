-- The retry claim serves only some endpoints: not the disabled ones, not
-- those paused by their breaker or out of room, not those removed. Walking
-- deliveries_due_idx in due order, it read every due pair of the endpoints
-- it skipped (measured: 159 ms per claim with 1M due pairs of a disabled
-- endpoint). With this index it takes the soonest due pairs of each endpoint
-- it serves, one short index scan each (1 ms), whatever waits for the others.
-- The retry lane is written only on failure, so the extra index costs the
-- happy path nothing.
CREATE INDEX deliveries_endpoint_due_idx ON outbox.deliveries (endpoint, next_attempt_at, seq);

---- create above / drop below ----

DROP INDEX outbox.deliveries_endpoint_due_idx;
