-- name: job_insert
INSERT INTO "{p}job" (
    queue, priority, execution_id, state_name, state_sequence, state_elected_at,
    invocation, middleware, function_name, locked_by, locked_at, lock_heartbeat, created_at, modified_at
) VALUES (
    :queue, :priority, :execution_id, :state_name, :state_sequence, :state_elected_at,
    :invocation, :middleware, :function_name, :lock_owner,
    CASE WHEN :lock_owner IS NULL THEN NULL ELSE :now END,
    CASE WHEN :lock_owner IS NULL THEN NULL ELSE :now END,
    :now, :now
);

-- The last id a batch insert assigned (executemany reports none; AUTOINCREMENT ids of one
-- transaction's batch are consecutive).
-- name: job_last_id
SELECT last_insert_rowid();

-- name: job_ids_by_execution
SELECT id, execution_id FROM "{p}job"
WHERE id >= :first_id AND execution_id IN (SELECT value FROM json_each(:execution_ids));

-- name: job_lock
UPDATE "{p}job"
SET locked_by = :requester, locked_at = CASE WHEN locked_by IS NULL THEN :now ELSE locked_at END,
    lock_heartbeat = :now
WHERE id = :job_id AND (locked_by IS NULL OR locked_by = :requester);

-- A write transaction holds the whole database: reading the row is locking it.
-- name: job_lock_row
SELECT id FROM "{p}job" WHERE id = :job_id;

-- name: job_update
UPDATE "{p}job"
SET queue = :queue,
    priority = :priority,
    execution_id = :execution_id,
    state_name = COALESCE(:state_name, state_name),
    state_sequence = COALESCE(:state_sequence, state_sequence),
    state_elected_at = COALESCE(:state_elected_at, state_elected_at),
    locked_by = CASE WHEN :release_lock THEN NULL ELSE locked_by END,
    locked_at = CASE WHEN :release_lock THEN NULL ELSE locked_at END,
    lock_heartbeat = CASE WHEN :release_lock THEN NULL ELSE :now END,
    modified_at = :now
WHERE id = :job_id;

-- name: job_lock_release
UPDATE "{p}job"
SET locked_by = NULL, locked_at = NULL, lock_heartbeat = NULL
WHERE id = :job_id AND locked_by = :holder;

-- name: job_heartbeat_select
SELECT id FROM "{p}job"
WHERE id IN (SELECT value FROM json_each(:job_ids)) AND locked_by = :holder AND lock_heartbeat >= :cutoff
ORDER BY id;

-- name: job_heartbeat
UPDATE "{p}job" SET lock_heartbeat = :now WHERE id IN (SELECT value FROM json_each(:job_ids));

-- name: job_state_histogram
SELECT (state_elected_at - :since) / :bucket, COUNT(*) FROM "{p}job"
WHERE state_name = :state AND state_elected_at >= :since
GROUP BY 1;

-- The state index's range of the recent ones (the planner would rather walk every job of the state
-- in queue order, to group without sorting).
-- name: job_state_by_queue
SELECT queue, COUNT(*) FROM "{p}job" INDEXED BY "{p}job_by_state"
WHERE state_name = :state AND state_elected_at >= :since
GROUP BY queue;

-- The first state name after :after that a job is in (one seek in the state index); from '' on,
-- one after the other, they are every state jobs are in.
-- name: job_state_next
SELECT MIN(state_name) FROM "{p}job" WHERE state_name > :after;

-- name: job_state_count_capped
SELECT COUNT(*) FROM (SELECT 1 FROM "{p}job" WHERE state_name = :state LIMIT :cap) AS t;

-- name: job_state_counts
SELECT state_name, COUNT(*) FROM "{p}job" GROUP BY state_name;

-- name: job_state_insert
INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
VALUES (:job_id, :sequence, :name, :elected_at, :reason, :fields);

-- name: job_property_upsert
INSERT INTO "{p}job_property" (job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value)
VALUES (:job_id, :name, :type, :text_value, :int_value, :float_value, :bool_value, :datetime_value)
ON CONFLICT (job_id, name) DO UPDATE SET
    type = excluded.type,
    text_value = excluded.text_value,
    int_value = excluded.int_value,
    float_value = excluded.float_value,
    bool_value = excluded.bool_value,
    datetime_value = excluded.datetime_value;

-- name: job_property_delete
DELETE FROM "{p}job_property" WHERE job_id = :job_id AND name = :name;

-- name: job_select_many
SELECT id, queue, priority, execution_id, invocation, middleware, created_at, modified_at,
       locked_by, locked_at, lock_heartbeat
FROM "{p}job"
WHERE id IN (SELECT value FROM json_each(:job_ids));

-- name: job_state_select_many
SELECT job_id, sequence, name, elected_at, reason, fields
FROM "{p}job_state"
WHERE job_id IN (SELECT value FROM json_each(:job_ids))
ORDER BY job_id, sequence;

-- name: job_property_select_many
SELECT job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value
FROM "{p}job_property"
WHERE job_id IN (SELECT value FROM json_each(:job_ids))
ORDER BY job_id, name;

-- name: job_fence_check_many
SELECT id, execution_id, locked_by, lock_heartbeat FROM "{p}job"
WHERE id IN (SELECT value FROM json_each(:job_ids));

-- The same history row for every job of a batch just inserted (ids first_id..last_id).
-- name: job_state_insert_range
INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
SELECT id, :sequence, :name, :elected_at, :reason, :fields FROM "{p}job"
WHERE id BETWEEN :first_id AND :last_id ORDER BY id;
