-- name: schema_version_create
CREATE TABLE IF NOT EXISTS "{p}schema_version" (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);

-- name: schema_version_current
SELECT COALESCE(MAX(version), 0) FROM "{p}schema_version";

-- name: schema_version_insert
INSERT INTO "{p}schema_version" (version, name, applied_at) VALUES (:version, :name, statement_timestamp());

-- name: clock_now
SELECT statement_timestamp();

-- name: schema_owner_get
SELECT environment, table_prefix FROM "{p}schema_owner" WHERE id = 1;

-- name: schema_owner_claim
INSERT INTO "{p}schema_owner" (id, environment, table_prefix) VALUES (1, :environment, :table_prefix)
ON CONFLICT (id) DO NOTHING;
