-- name: schema_version_create
CREATE TABLE IF NOT EXISTS `{p}schema_version` (
    version INTEGER PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL
) ENGINE = InnoDB;

-- name: schema_version_current
SELECT COALESCE(MAX(version), 0) FROM `{p}schema_version`;

-- name: schema_version_insert
INSERT IGNORE INTO `{p}schema_version` (version, name, applied_at) VALUES (:version, :name, UTC_TIMESTAMP(6));

-- name: clock_now
SELECT UTC_TIMESTAMP(6);

-- name: schema_owner_get
SELECT environment, table_prefix FROM `{p}schema_owner` WHERE id = 1;

-- name: schema_owner_claim
-- (not INSERT IGNORE: it warns on every open once the row exists)
INSERT INTO `{p}schema_owner` (id, environment, table_prefix) VALUES (1, :environment, :table_prefix)
ON DUPLICATE KEY UPDATE id = id;
