-- name: queue_upsert
INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
VALUES (:job_id, :queue, :priority, COALESCE(:execute_after, :now), :execution_id, :now)
ON CONFLICT (job_id) DO UPDATE SET
    queue = excluded.queue,
    priority = excluded.priority,
    execute_after = excluded.execute_after,
    execution_id = excluded.execution_id,
    enqueued_at = excluded.enqueued_at;

-- The best due entries of one queue of a group (read once per queue: each read walks the claim
-- index in claim order), jobs locked by someone skipped. Entries whose execution id is stale (not
-- the job's) are taken too, and dropped instead of claimed. A write transaction holds the whole
-- database, so nothing read here can be taken by another claim meanwhile.
-- name: queue_claim_select
SELECT q.job_id, q.queue, q.priority, q.execution_id, q.execute_after, q.enqueued_at, j.execution_id,
       j.state_sequence, j.state_name, :now,
       j.limit_key, j.limit_max, j.rate_key, j.rate_max, j.rate_period
FROM "{p}queue" AS q
JOIN "{p}job" AS j ON j.id = q.job_id AND j.locked_by IS NULL
WHERE q.queue = :queue AND q.execute_after <= :now
  AND (j.limit_key IS NULL OR j.limit_max > (
      SELECT count(*) FROM "{p}job" AS r WHERE r.limit_key = j.limit_key AND r.state_name = 'Executing'))
  AND (j.rate_key IS NULL OR j.rate_max > (
      SELECT count(*) FROM "{p}limit_start" AS s
      WHERE s.rate_key = j.rate_key AND s.started_at > :now - j.rate_period * 1000))
ORDER BY q.priority, q.execute_after, q.job_id
LIMIT :limit;

-- name: queue_take
DELETE FROM "{p}queue" WHERE job_id IN (SELECT value FROM json_each(:job_ids));

-- name: limit_running
SELECT limit_key, count(*) FROM "{p}job"
WHERE limit_key IN (SELECT value FROM json_each(:keys)) AND state_name = 'Executing'
GROUP BY limit_key;

-- name: limit_starts
SELECT rate_key, started_at FROM "{p}limit_start" WHERE rate_key IN (SELECT value FROM json_each(:keys));

-- name: limit_start_insert
INSERT INTO "{p}limit_start" (rate_key, started_at) VALUES (:rate_key, :started_at);

-- name: limit_start_prune
DELETE FROM "{p}limit_start" WHERE rate_key IN (SELECT value FROM json_each(:keys)) AND started_at <= :horizon;

-- The due times of entries a save keeps (a job moved without a new state).
-- name: queue_due_many
SELECT job_id, execute_after FROM "{p}queue" WHERE job_id IN (SELECT value FROM json_each(:job_ids));

-- name: queue_lock_claimed
UPDATE "{p}job"
SET locked_by = :owner, locked_at = :now, lock_heartbeat = :now
WHERE id IN (SELECT value FROM json_each(:job_ids)) AND locked_by IS NULL;

-- The records of jobs the claim has just read unlocked, as the claim leaves them: locked by
-- :owner since :now (the UPDATE that starts each one takes the lock, in the same transaction).
-- name: queue_select_claimed
SELECT id, queue, priority, execution_id, invocation, middleware, created_at, modified_at,
       :owner, :now, :now
FROM "{p}job"
WHERE id IN (SELECT value FROM json_each(:job_ids));

-- A claimed job started: its lock taken and its Executing state recorded with one row write.
-- name: queue_start_claimed
UPDATE "{p}job"
SET execution_id = :execution_id,
    state_name = :state_name,
    state_sequence = :state_sequence,
    state_elected_at = :state_elected_at,
    locked_by = :owner,
    locked_at = :now,
    lock_heartbeat = :now,
    modified_at = :now
WHERE id = :job_id;

-- name: queue_stats
SELECT queue, priority,
       SUM(CASE WHEN execute_after <= :now THEN 1 ELSE 0 END),
       SUM(CASE WHEN execute_after > :now THEN 1 ELSE 0 END),
       MIN(execute_after)
FROM "{p}queue"
GROUP BY queue, priority
ORDER BY queue, priority;

-- name: queue_pause_insert
INSERT OR IGNORE INTO "{p}queue_pause" (queue, paused_at, reason) VALUES (:queue, :now, :reason);

-- name: queue_pause_delete
DELETE FROM "{p}queue_pause" WHERE queue = :queue;

-- name: queue_pause_select_all
SELECT queue, paused_at, reason FROM "{p}queue_pause" ORDER BY queue;

-- The same queue entry for every job of a batch just inserted (ids first_id..last_id), each with
-- the job's execution id. New ids have no entry yet.
-- name: queue_insert_range
INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
SELECT id, :queue, :priority, :execute_after, execution_id, :now FROM "{p}job"
WHERE id BETWEEN :first_id AND :last_id ORDER BY id;
