-- name: job_data_select
SELECT value FROM "{p}job_data" WHERE job_id = :job_id AND name = :name;

-- name: job_data_names
SELECT name, length(value) FROM "{p}job_data" WHERE job_id = :job_id ORDER BY name LIMIT :limit;

-- name: job_data_upsert
INSERT INTO "{p}job_data" (job_id, name, value, modified_at)
VALUES (:job_id, :name, :value, :now)
ON CONFLICT (job_id, name) DO UPDATE SET value = excluded.value, modified_at = excluded.modified_at;

-- name: job_log_insert
INSERT INTO "{p}job_log" (job_id, level, logger, message, exception_type, exception_message, traceback, created_at)
SELECT id, :level, :logger, :message, :exception_type, :exception_message, :traceback, COALESCE(:created_at, :now)
FROM "{p}job" WHERE id = :job_id;

-- name: job_log_select
SELECT id, job_id, level, message, logger, exception_type, exception_message, traceback, created_at
FROM "{p}job_log"
WHERE job_id = :job_id AND level >= :min_level AND id > :after_id
ORDER BY id
LIMIT :limit;

-- name: job_action_insert
INSERT INTO "{p}job_action" (job_id, execution_id, kind, payload, requested_by, created_at)
VALUES (:job_id, :execution_id, :kind, :payload, :requested_by, :now)
RETURNING id;

-- name: job_action_select
SELECT id, job_id, execution_id, kind, payload, requested_by, created_at
FROM "{p}job_action"
WHERE job_id IN (SELECT value FROM json_each(:job_ids))
ORDER BY id
LIMIT :limit;

-- name: job_action_delete
DELETE FROM "{p}job_action" WHERE id = :id;

-- name: continuation_insert
INSERT INTO "{p}job_continuation" (parent_id, child_id, fired_state, created_at)
VALUES (:parent_id, :child_id, NULL, :now)
ON CONFLICT (parent_id, child_id) DO UPDATE SET fired_state = NULL;

-- name: continuation_fired_for_child
SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
WHERE child_id = :child_id AND fired_state IS NOT NULL
ORDER BY parent_id;

-- name: continuation_list
SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
WHERE parent_id = :job_id OR child_id = :job_id
ORDER BY parent_id, child_id;

-- name: continuation_fire
UPDATE "{p}job_continuation" SET fired_state = :fired_state
WHERE parent_id = :parent_id AND child_id = :child_id;

-- name: continuation_delete
DELETE FROM "{p}job_continuation" WHERE parent_id = :parent_id AND child_id = :child_id;

-- Children waiting on the jobs whose state changed, and parents whose trigger fired while the
-- released jobs were locked (fired_state tells them apart).
-- name: continuation_links_many
SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
WHERE parent_id IN (SELECT value FROM json_each(:changed_ids)) AND fired_state IS NULL
UNION ALL
SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
WHERE child_id IN (SELECT value FROM json_each(:released_ids)) AND fired_state IS NOT NULL
ORDER BY parent_id, child_id;

-- name: job_unique_claim
INSERT INTO "{p}job_unique" (unique_key, job_id, states, expires_at) VALUES (:unique_key, NULL, '', NULL)
ON CONFLICT (unique_key) DO NOTHING;

-- name: job_unique_select
SELECT job_id, states, expires_at FROM "{p}job_unique" WHERE unique_key = :unique_key;

-- name: job_unique_job_state
SELECT state_name FROM "{p}job" WHERE id = :job_id;

-- name: job_unique_set
UPDATE "{p}job_unique" SET job_id = :job_id, states = :states, expires_at = :expires_at
WHERE unique_key = :unique_key;

-- name: job_limit_set
UPDATE "{p}job"
SET limit_key = :limit_key, limit_max = :limit_max, rate_key = :rate_key, rate_max = :rate_max,
    rate_period = :rate_period
WHERE id = :job_id;
