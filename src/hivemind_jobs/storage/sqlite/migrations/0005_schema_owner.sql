-- Which environment (exact name and table prefix) owns these tables: SQLite compares table names
-- ignoring case, so "hm_TenantA_" and "hm_tenanta_" would otherwise share one set of tables.

CREATE TABLE "{p}schema_owner" (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    environment TEXT NOT NULL,
    table_prefix TEXT NOT NULL
);
