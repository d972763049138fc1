-- Job queries: text that is searched or sorted uses the binary collation without padding
-- (utf8mb4_nopad_bin), so 'a' and 'a ' differ and order by code point as on SQLite and
-- PostgreSQL; indexes for jobs of a state in a queue in id order (search-and-lock), for ordering by creation time and for boolean properties. Every statement
-- is idempotent, as MySQL commits DDL at once.

ALTER TABLE `{p}job`
    MODIFY queue VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY state_name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;
ALTER TABLE `{p}job_state`
    MODIFY name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY reason LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
ALTER TABLE `{p}job_property`
    MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY text_value LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
CREATE INDEX IF NOT EXISTS `{p}job_by_created` ON `{p}job` (created_at, id);
CREATE INDEX IF NOT EXISTS `{p}job_property_bool` ON `{p}job_property` (name, bool_value, job_id);
CREATE INDEX IF NOT EXISTS `{p}job_by_state_queue` ON `{p}job` (state_name, queue, id);
