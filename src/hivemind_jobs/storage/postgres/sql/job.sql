-- name: job_insert
INSERT INTO "{p}job" (
    queue, priority, execution_id, state_name, state_sequence, state_elected_at,
    invocation, middleware, locked_by, locked_at, lock_heartbeat, created_at, modified_at
) VALUES (
    :queue, :priority, :execution_id, :state_name, :state_sequence, :state_elected_at,
    :invocation, :middleware, :lock_owner, :locked_at, :locked_at, :now, :now
)
RETURNING id;

-- name: job_insert_set
INSERT INTO "{p}job" (
    queue, priority, execution_id, state_name, state_sequence, state_elected_at,
    invocation, middleware, locked_by, locked_at, lock_heartbeat, created_at, modified_at
)
SELECT r.queue, r.priority, r.execution_id, r.state_name, r.state_sequence, r.state_elected_at,
       r.invocation, r.middleware, r.lock_owner, r.locked_at, r.locked_at, :now, :now
FROM unnest(
    CAST(:queue AS TEXT[]), CAST(:priority AS INTEGER[]), CAST(:execution_id AS TEXT[]),
    CAST(:state_name AS TEXT[]), CAST(:state_sequence AS INTEGER[]), CAST(:state_elected_at AS TIMESTAMPTZ[]),
    CAST(:invocation AS TEXT[]), CAST(:middleware AS TEXT[]), CAST(:lock_owner AS TEXT[]),
    CAST(:locked_at AS TIMESTAMPTZ[])
) AS r (queue, priority, execution_id, state_name, state_sequence, state_elected_at, invocation, middleware,
        lock_owner, locked_at)
RETURNING id, execution_id;

-- name: job_ids_by_execution
SELECT id, execution_id FROM "{p}job" WHERE id >= :first_id AND execution_id = ANY(:execution_ids);

-- name: job_lock
UPDATE "{p}job"
SET locked_by = :requester, locked_at = CASE WHEN locked_by IS NULL THEN :now ELSE locked_at END,
    lock_heartbeat = :now
WHERE id = :job_id AND (locked_by IS NULL OR locked_by = :requester);

-- name: job_lock_row
SELECT id FROM "{p}job" WHERE id = :job_id FOR UPDATE;

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

-- name: job_update_set
UPDATE "{p}job" AS j
SET queue = u.queue,
    priority = u.priority,
    execution_id = u.execution_id,
    state_name = COALESCE(u.state_name, j.state_name),
    state_sequence = COALESCE(u.state_sequence, j.state_sequence),
    state_elected_at = COALESCE(u.state_elected_at, j.state_elected_at),
    locked_by = CASE WHEN u.release_lock THEN NULL ELSE j.locked_by END,
    locked_at = CASE WHEN u.release_lock THEN NULL ELSE j.locked_at END,
    lock_heartbeat = CASE WHEN u.release_lock THEN NULL ELSE :now END,
    modified_at = :now
FROM unnest(
    CAST(:job_id AS BIGINT[]), CAST(:queue AS TEXT[]), CAST(:priority AS INTEGER[]), CAST(:execution_id AS TEXT[]),
    CAST(:state_name AS TEXT[]), CAST(:state_sequence AS INTEGER[]), CAST(:state_elected_at AS TIMESTAMPTZ[]),
    CAST(:release_lock AS BOOLEAN[])
) AS u (id, queue, priority, execution_id, state_name, state_sequence, state_elected_at, release_lock)
WHERE j.id = u.id;

-- name: job_fence_check_many
SELECT id, execution_id, locked_by, lock_heartbeat, statement_timestamp() FROM "{p}job"
WHERE id = ANY(:job_ids)
ORDER BY id
FOR UPDATE;

-- name: job_lock_release
UPDATE "{p}job"
SET locked_by = NULL, locked_at = NULL, lock_heartbeat = NULL
WHERE id = :job_id AND locked_by = :holder;

-- name: job_heartbeat_select
SELECT id FROM "{p}job"
WHERE id = ANY(:job_ids) AND locked_by = :holder AND lock_heartbeat >= :cutoff
ORDER BY id
FOR UPDATE;

-- name: job_heartbeat
UPDATE "{p}job" SET lock_heartbeat = :now WHERE id = ANY(:job_ids);

-- name: job_state_counts
SELECT state_name, COUNT(*) FROM "{p}job" GROUP BY state_name;

-- name: job_state_insert
INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
VALUES (:job_id, :sequence, :name, :elected_at, :reason, :fields);

-- name: job_state_insert_set
INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
SELECT * FROM unnest(
    CAST(:job_id AS BIGINT[]), CAST(:sequence AS INTEGER[]), CAST(:name AS TEXT[]),
    CAST(:elected_at AS TIMESTAMPTZ[]), CAST(:reason AS TEXT[]), CAST(:fields AS TEXT[])
);

-- name: job_property_upsert_set
INSERT INTO "{p}job_property" (job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value)
SELECT * FROM unnest(
    CAST(:job_id AS BIGINT[]), CAST(:name AS TEXT[]), CAST(:type AS TEXT[]), CAST(:text_value AS TEXT[]),
    CAST(:int_value AS BIGINT[]), CAST(:float_value AS DOUBLE PRECISION[]), CAST(:bool_value AS SMALLINT[]),
    CAST(:datetime_value AS TIMESTAMPTZ[])
)
ON CONFLICT (job_id, name) DO UPDATE SET
    type = excluded.type,
    text_value = excluded.text_value,
    int_value = excluded.int_value,
    float_value = excluded.float_value,
    bool_value = excluded.bool_value,
    datetime_value = excluded.datetime_value;

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
WHERE id = ANY(:job_ids);

-- name: job_state_select_many
SELECT job_id, sequence, name, elected_at, reason, fields
FROM "{p}job_state"
WHERE job_id = ANY(:job_ids)
ORDER BY job_id, sequence;

-- name: job_property_select_many
SELECT job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value
FROM "{p}job_property"
WHERE job_id = ANY(:job_ids)
ORDER BY job_id, name;
