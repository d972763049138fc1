-- Colonies (worker processes) and the logs of their daemons.

CREATE TABLE "{p}colony" (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL,
    last_progress_at INTEGER
) WITHOUT ROWID;
CREATE INDEX "{p}colony_by_heartbeat" ON "{p}colony" (heartbeat);

CREATE TABLE "{p}daemon_log" (
    id INTEGER PRIMARY KEY,
    colony_id TEXT NOT NULL REFERENCES "{p}colony" (id) ON DELETE CASCADE,
    daemon TEXT NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX "{p}daemon_log_by_colony" ON "{p}daemon_log" (colony_id, daemon, id);
