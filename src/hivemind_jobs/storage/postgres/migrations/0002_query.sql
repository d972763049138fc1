-- Job queries: text that is searched or sorted compares by code point (COLLATE "C"), whatever the
-- database's default collation, so results and their order match SQLite and MySQL/MariaDB; indexes
-- for ordering by creation time and for boolean properties.

ALTER TABLE "{p}job" ALTER COLUMN queue TYPE TEXT COLLATE "C", ALTER COLUMN state_name TYPE TEXT COLLATE "C";
ALTER TABLE "{p}job_state" ALTER COLUMN name TYPE TEXT COLLATE "C", ALTER COLUMN reason TYPE TEXT COLLATE "C";
ALTER TABLE "{p}job_property"
    ALTER COLUMN name TYPE TEXT COLLATE "C", ALTER COLUMN text_value TYPE TEXT COLLATE "C";
CREATE INDEX "{p}job_by_created" ON "{p}job" (created_at, id);
CREATE INDEX "{p}job_property_bool" ON "{p}job_property" (name, bool_value, job_id) WHERE bool_value IS NOT NULL;
CREATE INDEX "{p}job_by_state_queue" ON "{p}job" (state_name, queue, id);
