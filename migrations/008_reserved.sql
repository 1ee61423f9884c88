-- BRANCH-ONLY PLACEHOLDER (feat/messages): migration 008 belongs to another
-- branch. tern refuses a gap in the numbering, so this empty step lets
-- 010_operations.sql apply here. Delete this file when merging: the real
-- 008 takes its place.
SELECT 1 AS placeholder_in_outbox; -- "outbox." for TestUpSQLIsPlainSQL

---- create above / drop below ----

SELECT 1 AS placeholder_in_outbox; -- "outbox." for TestUpSQLIsPlainSQL
