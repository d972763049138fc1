-- name: queue_upsert
INSERT INTO `{p}queue` (job_id, queue, priority, execute_after, execution_id, enqueued_at)
VALUES (:job_id, :queue, :priority, :execute_after, :execution_id, :now)
ON DUPLICATE KEY UPDATE
    queue = VALUES(queue),
    priority = VALUES(priority),
    execute_after = VALUES(execute_after),
    execution_id = VALUES(execution_id),
    enqueued_at = VALUES(enqueued_at);

-- The best due entries of a queue group in claim order (the claim index sorts the same way),
-- skipping rows other transactions hold and jobs locked by someone. Entries whose execution id
-- is stale (not the job's) are taken too, and dropped instead of claimed. The tenth column is
-- the database clock; the columns after the limits are the job's record, for a claim that starts
-- its jobs itself (see the connection's claim_start_rows).
-- name: queue_claim_select
SELECT q.job_id, q.queue, q.priority, q.execution_id, q.execute_after, q.enqueued_at, j.execution_id,
       j.state_sequence, j.state_name, UTC_TIMESTAMP(6),
       j.limit_key, j.limit_max, j.rate_key, j.rate_max, j.rate_period,
       j.state_elected_at, j.modified_at, j.queue, j.priority, j.invocation, j.middleware, j.created_at
FROM `{p}queue` AS q
JOIN `{p}job` AS j ON j.id = q.job_id AND j.locked_by IS NULL
WHERE q.queue IN :queues AND q.execute_after <= UTC_TIMESTAMP(6)
  AND (j.limit_key IS NULL OR j.limit_max > (
      SELECT COUNT(*) FROM `{p}job` AS r WHERE r.limit_key = j.limit_key AND r.state_name = 'Executing'))
  AND (j.rate_key IS NULL OR j.rate_max > (
      SELECT COUNT(*) FROM `{p}limit_start` AS s
      WHERE s.rate_key = j.rate_key
        AND s.started_at > UTC_TIMESTAMP(6) - INTERVAL j.rate_period * 1000 MICROSECOND))
ORDER BY q.priority, q.execute_after, q.job_id
LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- A job the claim started that cannot run (its stored call cannot be decoded): back as it was
-- before the claim, still locked by the claimer (the job fails in the same transaction), with
-- queue_start_revert_state.
-- name: queue_start_revert
UPDATE `{p}job`
SET execution_id = :execution_id,
    state_name = :state_name,
    state_sequence = :state_sequence,
    state_elected_at = :state_elected_at,
    modified_at = :modified_at
WHERE id = :job_id;

-- name: queue_start_revert_state
DELETE FROM `{p}job_state` WHERE job_id = :job_id AND sequence = :state_sequence + 1;

-- name: queue_take
DELETE FROM `{p}queue` WHERE job_id IN :job_ids;

-- The lock of one limit key (its row created on first use), held to the end of the transaction:
-- the upsert takes the row's exclusive lock either way. Claims lock their keys in one order
-- (sorted), so that they wait for each other instead of deadlocking.
-- name: limit_lock
INSERT INTO `{p}limit_lock` (lock_key, locked_at) VALUES (:key, UTC_TIMESTAMP(6))
ON DUPLICATE KEY UPDATE locked_at = VALUES(locked_at);

-- A limit key's lock if no other transaction holds it (no wait): the keys it took.
-- name: limit_try_lock
SELECT lock_key FROM `{p}limit_lock` WHERE lock_key IN :keys FOR UPDATE SKIP LOCKED;

-- name: limit_running
SELECT limit_key, COUNT(*) FROM `{p}job`
WHERE limit_key IN :keys AND state_name = 'Executing'
GROUP BY limit_key;

-- name: limit_starts
SELECT rate_key, started_at FROM `{p}limit_start` WHERE rate_key IN :keys;

-- name: limit_start_insert
INSERT INTO `{p}limit_start` (rate_key, started_at) VALUES (:rate_key, :started_at);

-- name: limit_start_prune
DELETE FROM `{p}limit_start` WHERE rate_key IN :keys AND started_at <= :horizon;

-- The due times of entries a save keeps (a job moved without a new state).
-- name: queue_due_many
SELECT job_id, execute_after FROM `{p}queue` WHERE job_id IN :job_ids;

-- name: queue_lock_claimed
UPDATE `{p}job`
SET locked_by = :owner, locked_at = :now, lock_heartbeat = :now
WHERE id IN :job_ids AND locked_by IS NULL;

-- The records of jobs the claim has just read unlocked (and holds FOR UPDATE), as the claim
-- leaves them: locked by :owner since :now (the UPDATE that starts each one takes the lock).
-- name: queue_select_claimed
SELECT id, queue, priority, execution_id, invocation, middleware, created_at, modified_at,
       :owner, CAST(:now AS DATETIME(6)), CAST(:now AS DATETIME(6))
FROM `{p}job`
WHERE id IN :job_ids;

-- A claimed job started: its lock taken and its Executing state recorded with one row write.
-- name: queue_start_claimed
UPDATE `{p}job`
SET execution_id = :execution_id,
    state_name = :state_name,
    state_sequence = :state_sequence,
    state_elected_at = :state_elected_at,
    locked_by = :owner,
    locked_at = :now,
    lock_heartbeat = :now,
    modified_at = :now
WHERE id = :job_id;

-- name: queue_start_claimed_set
UPDATE `{p}job` AS j
JOIN (:rows) AS u ON j.id = u.job_id
SET j.execution_id = u.execution_id,
    j.state_name = u.state_name,
    j.state_sequence = u.state_sequence,
    j.state_elected_at = u.state_elected_at,
    j.locked_by = u.owner,
    j.locked_at = u.now,
    j.lock_heartbeat = u.now,
    j.modified_at = u.now;

-- name: queue_stats
SELECT queue, priority,
       SUM(CASE WHEN execute_after <= :now THEN 1 ELSE 0 END),
       SUM(CASE WHEN execute_after > :now THEN 1 ELSE 0 END),
       MIN(execute_after)
FROM `{p}queue`
GROUP BY queue, priority
ORDER BY queue, priority;

-- What idle colonies probe to see other processes' new jobs: the last entry of the primary key.
-- name: queue_change_probe
SELECT COALESCE(MAX(id), 0) FROM `{p}job`;

-- name: queue_pause_insert
INSERT INTO `{p}queue_pause` (queue, paused_at, reason) VALUES (:queue, UTC_TIMESTAMP(6), :reason);

-- name: queue_pause_delete
DELETE FROM `{p}queue_pause` WHERE queue = :queue;

-- name: queue_pause_select_all
SELECT queue, paused_at, reason FROM `{p}queue_pause` ORDER BY queue;
