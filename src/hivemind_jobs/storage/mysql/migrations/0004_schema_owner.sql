-- Which environment (exact name and table prefix) owns these tables: with lower_case_table_names=1
-- the server stores table names in lower case, and constraint names always compare ignoring case.
-- Idempotent (MySQL commits DDL at once).

CREATE TABLE IF NOT EXISTS `{p}schema_owner` (
    id INTEGER NOT NULL PRIMARY KEY,
    environment VARCHAR(64) NOT NULL,
    table_prefix VARCHAR(80) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
