-- Which environment (exact name and table prefix) owns these tables, so that a prefix differing
-- only in case is refused here as it must be on SQLite and MySQL/MariaDB.

CREATE TABLE "{p}schema_owner" (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    environment TEXT NOT NULL,
    table_prefix TEXT NOT NULL
);
