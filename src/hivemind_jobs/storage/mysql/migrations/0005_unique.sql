-- Unique jobs: one row per unique key, naming the job that holds it, the state names it holds it
-- in (comma-separated) and until when it holds it whatever its state (the period).

CREATE TABLE IF NOT EXISTS `{p}job_unique` (
    unique_key VARCHAR(255) NOT NULL PRIMARY KEY,
    job_id BIGINT,
    states VARCHAR(1000) NOT NULL,
    expires_at DATETIME(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
