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
