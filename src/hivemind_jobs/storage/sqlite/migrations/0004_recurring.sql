-- Recurring jobs: definition, state, next run and statistics; the key of every enqueued
-- occurrence (the exactly-once guard); their history of states and logs; leases that bound how
-- many colonies run a maintenance task at once.

CREATE TABLE "{p}recurring_job" (
    id TEXT NOT NULL PRIMARY KEY,
    definition TEXT NOT NULL,
    state_name TEXT NOT NULL,
    state_reason TEXT,
    next_run INTEGER,
    job_id INTEGER,
    stats TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL
);
CREATE INDEX "{p}recurring_job_due" ON "{p}recurring_job" (state_name, next_run);

CREATE TABLE "{p}recurring_occurrence" (
    recurring_id TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    job_id INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (recurring_id, scheduled_at)
);
CREATE INDEX "{p}recurring_occurrence_by_created" ON "{p}recurring_occurrence" (created_at);

CREATE TABLE "{p}recurring_event" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recurring_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    message TEXT,
    fields TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX "{p}recurring_event_by_job" ON "{p}recurring_event" (recurring_id, kind, id);

CREATE TABLE "{p}lease" (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
