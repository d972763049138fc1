-- Paused queues: colonies claim nothing from a queue named here (its jobs stay Enqueued, in order).
-- Idempotent (MySQL commits DDL at once).

CREATE TABLE IF NOT EXISTS `{p}queue_pause` (
    queue VARCHAR(255) NOT NULL PRIMARY KEY,
    paused_at DATETIME(6) NOT NULL,
    reason LONGTEXT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
