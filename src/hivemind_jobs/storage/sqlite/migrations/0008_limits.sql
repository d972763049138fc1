-- Concurrency and rate limits. A job's limits are set when it is created: at most limit_max jobs
-- of limit_key Executing at once (counted through the index below), at most rate_max starts of
-- rate_key per rate_period milliseconds (one limit_start row per start, pruned by the claims).
-- A claim runs in a write transaction, which holds the whole database: claims take turns.

ALTER TABLE "{p}job" ADD COLUMN limit_key TEXT;
ALTER TABLE "{p}job" ADD COLUMN limit_max INTEGER;
ALTER TABLE "{p}job" ADD COLUMN rate_key TEXT;
ALTER TABLE "{p}job" ADD COLUMN rate_max INTEGER;
ALTER TABLE "{p}job" ADD COLUMN rate_period INTEGER;
CREATE INDEX "{p}job_by_limit" ON "{p}job" (limit_key, state_name) WHERE limit_key IS NOT NULL;

CREATE TABLE "{p}limit_start" (
    id INTEGER PRIMARY KEY,
    rate_key TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX "{p}limit_start_by_key" ON "{p}limit_start" (rate_key, started_at);
