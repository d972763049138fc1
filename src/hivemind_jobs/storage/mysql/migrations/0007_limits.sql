-- Concurrency and rate limits. A job's limits are set when it is created: at most limit_max jobs
-- of limit_key Executing at once (counted through the index below), at most rate_max starts of
-- rate_key per rate_period milliseconds (one limit_start row per start, pruned by the claims).
-- A claim of limited jobs locks the limit_lock row of each key it counts, so that claims of one
-- key from several colonies take turns. Idempotent: the ALTER is one statement, and run again
-- after it succeeded its "duplicate column" error is taken as done.

ALTER TABLE `{p}job`
    ADD COLUMN limit_key VARCHAR(255),
    ADD COLUMN limit_max INTEGER,
    ADD COLUMN rate_key VARCHAR(255),
    ADD COLUMN rate_max INTEGER,
    ADD COLUMN rate_period BIGINT,
    ADD INDEX `{p}job_by_limit` (limit_key, state_name);

CREATE TABLE IF NOT EXISTS `{p}limit_lock` (
    lock_key VARCHAR(255) NOT NULL PRIMARY KEY,
    locked_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}limit_start` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    rate_key VARCHAR(255) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    INDEX `{p}limit_start_by_key` (rate_key, started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
