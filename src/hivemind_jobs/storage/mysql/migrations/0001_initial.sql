-- Background jobs, their state history, properties, data, logs, actions, continuations and queue;
-- colonies and their daemon logs. Times are DATETIME(6) in UTC. {p} is the environment's table
-- prefix. MySQL commits DDL at once, so every statement is idempotent (IF NOT EXISTS) and indexes
-- are declared inside their tables: a migration interrupted half-way is simply run again.
-- Binary collation: names compare exactly as on SQLite and PostgreSQL.

CREATE TABLE IF NOT EXISTS `{p}job` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue VARCHAR(255) NOT NULL,
    priority INTEGER NOT NULL,
    execution_id VARCHAR(64) NOT NULL,
    state_name VARCHAR(100) NOT NULL,
    state_sequence INTEGER NOT NULL,
    state_elected_at DATETIME(6) NOT NULL,
    invocation LONGTEXT NOT NULL,
    middleware LONGTEXT NOT NULL,
    locked_by VARCHAR(255),
    locked_at DATETIME(6),
    lock_heartbeat DATETIME(6),
    created_at DATETIME(6) NOT NULL,
    modified_at DATETIME(6) NOT NULL,
    INDEX `{p}job_by_state` (state_name, state_elected_at, id),
    INDEX `{p}job_by_queue` (queue, created_at, id),
    INDEX `{p}job_by_heartbeat` (lock_heartbeat)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_state` (
    job_id BIGINT NOT NULL,
    sequence INTEGER NOT NULL,
    name VARCHAR(100) NOT NULL,
    elected_at DATETIME(6) NOT NULL,
    reason LONGTEXT,
    fields LONGTEXT NOT NULL,
    PRIMARY KEY (job_id, sequence),
    CONSTRAINT `{p}job_state_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_property` (
    job_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    type VARCHAR(16) NOT NULL,
    text_value LONGTEXT,
    int_value BIGINT,
    float_value DOUBLE,
    bool_value SMALLINT,
    datetime_value DATETIME(6),
    PRIMARY KEY (job_id, name),
    INDEX `{p}job_property_text` (name, text_value(255), job_id),
    INDEX `{p}job_property_int` (name, int_value, job_id),
    INDEX `{p}job_property_float` (name, float_value, job_id),
    INDEX `{p}job_property_datetime` (name, datetime_value, job_id),
    CONSTRAINT `{p}job_property_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_data` (
    job_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    value LONGTEXT NOT NULL,
    modified_at DATETIME(6) NOT NULL,
    PRIMARY KEY (job_id, name),
    CONSTRAINT `{p}job_data_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_log` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    level INTEGER NOT NULL,
    logger VARCHAR(255),
    message LONGTEXT NOT NULL,
    exception_type VARCHAR(255),
    exception_message LONGTEXT,
    traceback LONGTEXT,
    created_at DATETIME(6) NOT NULL,
    INDEX `{p}job_log_by_job` (job_id, id),
    CONSTRAINT `{p}job_log_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_action` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    execution_id VARCHAR(64) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    payload LONGTEXT NOT NULL,
    requested_by VARCHAR(255),
    created_at DATETIME(6) NOT NULL,
    INDEX `{p}job_action_by_job` (job_id, id),
    CONSTRAINT `{p}job_action_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}job_continuation` (
    parent_id BIGINT NOT NULL,
    child_id BIGINT NOT NULL,
    fired_state VARCHAR(100),
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    INDEX `{p}job_continuation_by_child` (child_id),
    CONSTRAINT `{p}job_continuation_parent` FOREIGN KEY (parent_id) REFERENCES `{p}job` (id) ON DELETE CASCADE,
    CONSTRAINT `{p}job_continuation_child` FOREIGN KEY (child_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One pointer per enqueued job. Claimed entries are deleted, so the claim index only holds
-- waiting work. The index sorts exactly like the claim query (otherwise InnoDB deadlocks under
-- concurrent claims).
CREATE TABLE IF NOT EXISTS `{p}queue` (
    job_id BIGINT NOT NULL PRIMARY KEY,
    queue VARCHAR(255) NOT NULL,
    priority INTEGER NOT NULL,
    execute_after DATETIME(6) NOT NULL,
    execution_id VARCHAR(64) NOT NULL,
    enqueued_at DATETIME(6) NOT NULL,
    INDEX `{p}queue_claim` (queue, priority, execute_after, job_id),
    CONSTRAINT `{p}queue_job` FOREIGN KEY (job_id) REFERENCES `{p}job` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}colony` (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid INTEGER NOT NULL,
    status VARCHAR(32) NOT NULL,
    state LONGTEXT NOT NULL,
    started_at DATETIME(6) NOT NULL,
    heartbeat DATETIME(6) NOT NULL,
    last_progress_at DATETIME(6),
    INDEX `{p}colony_by_heartbeat` (heartbeat)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{p}daemon_log` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    colony_id VARCHAR(255) NOT NULL,
    daemon VARCHAR(255) NOT NULL,
    level INTEGER NOT NULL,
    message LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    INDEX `{p}daemon_log_by_colony` (colony_id, daemon, id),
    CONSTRAINT `{p}daemon_log_colony` FOREIGN KEY (colony_id) REFERENCES `{p}colony` (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
