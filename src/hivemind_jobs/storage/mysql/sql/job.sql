-- name: job_insert
INSERT INTO `{p}job` (
    queue, priority, execution_id, state_name, state_sequence, state_elected_at,
    invocation, middleware, function_name, locked_by, locked_at, lock_heartbeat, created_at, modified_at
) VALUES (
    :queue, :priority, :execution_id, :state_name, :state_sequence, :state_elected_at,
    :invocation, :middleware, :function_name, :lock_owner, :locked_at, :locked_at, :now, :now
);

-- name: job_ids_by_execution
SELECT id, execution_id FROM `{p}job` WHERE id >= :first_id AND execution_id IN :execution_ids;

-- name: job_lock
UPDATE `{p}job`
-- MySQL assigns left to right with the new values: locked_at must be set before locked_by
SET locked_at = CASE WHEN locked_by IS NULL THEN :now ELSE locked_at END, locked_by = :requester,
    lock_heartbeat = :now
WHERE id = :job_id AND (locked_by IS NULL OR locked_by = :requester);

-- name: job_lock_row
SELECT id FROM `{p}job` WHERE id = :job_id FOR UPDATE;

-- name: job_update
UPDATE `{p}job`
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

-- Several saves as one statement: :rows is a derived table of the saves (one SELECT per row,
-- UNION ALL, every value escaped by the driver), joined on the job id.
-- name: job_update_set
UPDATE `{p}job` AS j
JOIN (:rows) AS u ON j.id = u.job_id
SET j.queue = u.queue,
    j.priority = u.priority,
    j.execution_id = u.execution_id,
    j.state_name = COALESCE(u.state_name, j.state_name),
    j.state_sequence = COALESCE(u.state_sequence, j.state_sequence),
    j.state_elected_at = COALESCE(u.state_elected_at, j.state_elected_at),
    j.locked_at = CASE WHEN u.release_lock THEN NULL ELSE j.locked_at END,
    j.locked_by = CASE WHEN u.release_lock THEN NULL ELSE j.locked_by END,
    j.lock_heartbeat = CASE WHEN u.release_lock THEN NULL ELSE u.now END,
    j.modified_at = u.now;

-- name: job_fence_check_many
SELECT id, execution_id, locked_by, lock_heartbeat, UTC_TIMESTAMP(6) FROM `{p}job`
WHERE id IN :job_ids
ORDER BY id
FOR UPDATE;

-- name: job_lock_release
UPDATE `{p}job`
SET locked_by = NULL, locked_at = NULL, lock_heartbeat = NULL
WHERE id = :job_id AND locked_by = :holder;

-- name: job_heartbeat_select
SELECT id FROM `{p}job`
WHERE id IN :job_ids AND locked_by = :holder AND lock_heartbeat >= :cutoff
ORDER BY id
FOR UPDATE;

-- name: job_heartbeat
UPDATE `{p}job` SET lock_heartbeat = :now WHERE id IN :job_ids;

-- name: job_state_histogram
SELECT FLOOR(TIMESTAMPDIFF(MICROSECOND, :since, state_elected_at) / (:bucket * 1000000)), COUNT(*) FROM `{p}job`
WHERE state_name = :state AND state_elected_at >= :since
GROUP BY 1;

-- name: job_state_by_queue
SELECT queue, COUNT(*) FROM `{p}job` WHERE state_name = :state AND state_elected_at >= :since GROUP BY queue;

-- The first state name after :after that a job is in (one seek in the state index); from '' on,
-- one after the other, they are every state jobs are in.
-- name: job_state_next
SELECT MIN(state_name) FROM `{p}job` WHERE state_name > :after;

-- name: job_state_count_capped
SELECT COUNT(*) FROM (SELECT 1 FROM `{p}job` WHERE state_name = :state LIMIT :cap) AS t;

-- name: job_state_counts
SELECT state_name, COUNT(*) FROM `{p}job` GROUP BY state_name;

-- name: job_state_insert
INSERT INTO `{p}job_state` (job_id, sequence, name, elected_at, reason, fields)
VALUES (:job_id, :sequence, :name, :elected_at, :reason, :fields);

-- name: job_property_upsert
INSERT INTO `{p}job_property` (job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value)
VALUES (:job_id, :name, :type, :text_value, :int_value, :float_value, :bool_value, :datetime_value)
ON DUPLICATE KEY UPDATE
    type = VALUES(type),
    text_value = VALUES(text_value),
    int_value = VALUES(int_value),
    float_value = VALUES(float_value),
    bool_value = VALUES(bool_value),
    datetime_value = VALUES(datetime_value);

-- name: job_property_delete
DELETE FROM `{p}job_property` WHERE job_id = :job_id AND name = :name;

-- name: job_select_many
SELECT id, queue, priority, execution_id, invocation, middleware, created_at, modified_at,
       locked_by, locked_at, lock_heartbeat
FROM `{p}job`
WHERE id IN :job_ids;

-- name: job_state_select_many
SELECT job_id, sequence, name, elected_at, reason, fields
FROM `{p}job_state`
WHERE job_id IN :job_ids
ORDER BY job_id, sequence;

-- name: job_property_select_many
SELECT job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value
FROM `{p}job_property`
WHERE job_id IN :job_ids
ORDER BY job_id, name;
