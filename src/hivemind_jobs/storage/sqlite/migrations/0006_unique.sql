-- Unique jobs: one row per unique key, naming the job that holds it, the state names it holds it
-- in (comma-separated) and until when it holds it whatever its state (the period).

CREATE TABLE "{p}job_unique" (
    unique_key TEXT NOT NULL PRIMARY KEY,
    job_id INTEGER,
    states TEXT NOT NULL,
    expires_at INTEGER
);
