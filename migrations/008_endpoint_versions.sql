-- Each endpoint row carries the version of its last change, and deletions
-- leave a row in outbox.endpoints_deleted with theirs, so that a relay
-- serving thousands of endpoints reads only what changed since the last
-- version it applied, instead of the whole table on every change (81-111 ms
-- at 10,000 rows).
--
-- The versions come from a sequence, taken by the row triggers below. Every
-- statement that writes outbox.endpoints first locks the only row of
-- outbox.endpoints_version (trigger endpoints_lock, migration 002) and
-- keeps the lock until it commits, so writers take their versions in turns
-- and commit in the same order: whatever a reader's snapshot shows is every
-- version up to the highest it shows, and a version it does not show yet
-- will be higher. A relay that applied everything up to version V (read in
-- one snapshot) therefore misses nothing by reading "version > V" next
-- time, and a late notification of a change it already has costs it one
-- empty read, never a skipped change. A rolled-back writer leaves a gap.
--
-- Relays need SELECT on outbox.endpoints_deleted too:
--   GRANT SELECT ON outbox.endpoints_deleted TO herald;

CREATE SEQUENCE outbox.endpoints_change_seq;

ALTER TABLE outbox.endpoints
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('outbox.endpoints_change_seq');

COMMENT ON COLUMN outbox.endpoints.version IS
    'Version of the row''s last change (outbox.endpoints_change_seq), set by trigger endpoints_stamp.';

CREATE INDEX endpoints_version_idx ON outbox.endpoints (version);

-- One row per endpoint name deleted, with the version of its deletion (a
-- name deleted again keeps the latest). The name '' records a TRUNCATE:
-- a relay that has not seen it re-reads every endpoint. A name that is
-- inserted again is present in outbox.endpoints with a higher version, and
-- that row wins. The table holds at most one row per name ever deleted.
CREATE TABLE outbox.endpoints_deleted (
    name    text   PRIMARY KEY,
    version bigint NOT NULL
);

CREATE INDEX endpoints_deleted_version_idx ON outbox.endpoints_deleted (version);

-- SECURITY DEFINER, as the functions of migration 002, so that a role
-- allowed to write outbox.endpoints needs no grant on the sequence or on
-- outbox.endpoints_deleted.
CREATE FUNCTION outbox.endpoints_stamp() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.version := nextval('outbox.endpoints_change_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER endpoints_stamp
    BEFORE INSERT OR UPDATE ON outbox.endpoints
    FOR EACH ROW EXECUTE FUNCTION outbox.endpoints_stamp();

-- As in migration 002, plus the deletion log.
CREATE OR REPLACE FUNCTION outbox.endpoints_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE outbox.endpoints_version SET version = version + 1, changed_at = now();
    IF TG_LEVEL = 'STATEMENT' THEN
        -- TRUNCATE: an empty payload means "re-read every endpoint".
        INSERT INTO outbox.endpoints_deleted (name, version) VALUES ('', nextval('outbox.endpoints_change_seq'))
            ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version;
        PERFORM pg_notify('herald_endpoints', '');
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO outbox.endpoints_deleted (name, version) VALUES (OLD.name, nextval('outbox.endpoints_change_seq'))
            ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version;
        PERFORM pg_notify('herald_endpoints', OLD.name);
    ELSE
        PERFORM pg_notify('herald_endpoints', NEW.name);
    END IF;
    RETURN NULL;
END
$$;

---- create above / drop below ----

CREATE OR REPLACE FUNCTION outbox.endpoints_changed() RETURNS trigger
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

DROP TRIGGER endpoints_stamp ON outbox.endpoints;
DROP FUNCTION outbox.endpoints_stamp();
DROP TABLE outbox.endpoints_deleted;
ALTER TABLE outbox.endpoints DROP COLUMN version;
DROP SEQUENCE outbox.endpoints_change_seq;
