-- Background jobs, their state history, properties, data, logs, actions, continuations and queue.
-- Times are integer microseconds since the Unix epoch (UTC). {p} is the environment's table prefix.

CREATE TABLE "{p}job" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    state_name TEXT NOT NULL,
    state_sequence INTEGER NOT NULL,
    state_elected_at INTEGER NOT NULL,
    invocation TEXT NOT NULL,
    middleware TEXT NOT NULL DEFAULT '[]',
    locked_by TEXT,
    locked_at INTEGER,
    lock_heartbeat INTEGER,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL
);
CREATE INDEX "{p}job_by_state" ON "{p}job" (state_name, state_elected_at, id);
CREATE INDEX "{p}job_by_queue" ON "{p}job" (queue, created_at, id);
CREATE INDEX "{p}job_by_heartbeat" ON "{p}job" (lock_heartbeat) WHERE locked_by IS NOT NULL;

CREATE TABLE "{p}job_state" (
    job_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    name TEXT NOT NULL,
    elected_at INTEGER NOT NULL,
    reason TEXT,
    fields TEXT NOT NULL,
    PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;

CREATE TABLE "{p}job_property" (
    job_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    text_value TEXT,
    int_value INTEGER,
    float_value REAL,
    bool_value INTEGER,
    datetime_value INTEGER,
    PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
CREATE INDEX "{p}job_property_text" ON "{p}job_property" (name, text_value, job_id) WHERE text_value IS NOT NULL;
CREATE INDEX "{p}job_property_int" ON "{p}job_property" (name, int_value, job_id) WHERE int_value IS NOT NULL;
CREATE INDEX "{p}job_property_float" ON "{p}job_property" (name, float_value, job_id) WHERE float_value IS NOT NULL;
CREATE INDEX "{p}job_property_datetime" ON "{p}job_property" (name, datetime_value, job_id) WHERE datetime_value IS NOT NULL;

CREATE TABLE "{p}job_data" (
    job_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, name)
) WITHOUT ROWID;

CREATE TABLE "{p}job_log" (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    level INTEGER NOT NULL,
    logger TEXT,
    message TEXT NOT NULL,
    exception_type TEXT,
    exception_message TEXT,
    traceback TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX "{p}job_log_by_job" ON "{p}job_log" (job_id, id);

CREATE TABLE "{p}job_action" (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    execution_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    requested_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX "{p}job_action_by_job" ON "{p}job_action" (job_id, id);

CREATE TABLE "{p}job_continuation" (
    parent_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    child_id INTEGER NOT NULL REFERENCES "{p}job" (id) ON DELETE CASCADE,
    fired_state TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE INDEX "{p}job_continuation_by_child" ON "{p}job_continuation" (child_id);

-- One pointer per enqueued job. Claimed entries are deleted, so the claim index only holds
-- waiting work. The index sorts exactly like the claim query.
CREATE TABLE "{p}queue" (
    job_id INTEGER PRIMARY KEY REFERENCES "{p}job" (id) ON DELETE CASCADE,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    execute_after INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL
);
CREATE INDEX "{p}queue_claim" ON "{p}queue" (queue, priority, execute_after, job_id);
