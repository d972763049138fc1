-- Recurring jobs: definition, state, next run and statistics; the key of every enqueued
-- occurrence (the exactly-once guard); their history of states and logs; leases that bound how
-- many colonies run a maintenance task at once. Idempotent statements (MySQL commits DDL at once).

CREATE TABLE IF NOT EXISTS `{p}recurring_job` (
    id VARCHAR(200) NOT NULL PRIMARY KEY,
    definition LONGTEXT NOT NULL,
    state_name VARCHAR(100) NOT NULL,
    state_reason LONGTEXT,
    next_run DATETIME(6),
    job_id BIGINT,
    stats LONGTEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    modified_at DATETIME(6) NOT NULL,
    INDEX `{p}recurring_job_due` (state_name, next_run)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `{p}recurring_occurrence` (
    recurring_id VARCHAR(200) NOT NULL,
    scheduled_at DATETIME(6) NOT NULL,
    job_id BIGINT,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (recurring_id, scheduled_at),
    INDEX `{p}recurring_occurrence_by_created` (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `{p}recurring_event` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    recurring_id VARCHAR(200) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    name VARCHAR(100) NOT NULL,
    message LONGTEXT,
    fields LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    INDEX `{p}recurring_event_by_job` (recurring_id, kind, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `{p}lease` (
    name VARCHAR(200) NOT NULL PRIMARY KEY,
    holder VARCHAR(255) NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
