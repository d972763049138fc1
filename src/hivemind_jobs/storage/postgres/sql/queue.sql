-- name: queue_upsert
INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
VALUES (:job_id, :queue, :priority, :execute_after, :execution_id, :now)
ON CONFLICT (job_id) DO UPDATE SET
    queue = excluded.queue,
    priority = excluded.priority,
    execute_after = excluded.execute_after,
    execution_id = excluded.execution_id,
    enqueued_at = excluded.enqueued_at;

-- name: queue_upsert_set
INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
SELECT r.job_id, r.queue, r.priority, r.execute_after, r.execution_id, :now
FROM unnest(
    CAST(:job_id AS BIGINT[]), CAST(:queue AS TEXT[]), CAST(:priority AS INTEGER[]),
    CAST(:execute_after AS TIMESTAMPTZ[]), CAST(:execution_id AS TEXT[])
) AS r (job_id, queue, priority, execute_after, execution_id)
ON CONFLICT (job_id) DO UPDATE SET
    queue = excluded.queue,
    priority = excluded.priority,
    execute_after = excluded.execute_after,
    execution_id = excluded.execution_id,
    enqueued_at = excluded.enqueued_at;

-- For the rest of the transaction: walk indexes in order rather than sort what they find, and use
-- a prepared statement's cached plan instead of planning it again at every call (the claims' plans
-- are the same index walks whatever their parameters).
-- name: queue_claim_prepare
SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true),
       set_config('plan_cache_mode', 'force_generic_plan', true);

-- The best due entries of a queue group: each queue is read through the claim index in claim
-- order (the LATERAL keeps that an index range scan per queue), rows held by other transactions
-- and jobs locked by someone are skipped. Entries whose execution id is stale (not the job's)
-- are taken too, and dropped instead of claimed. The tenth column is the database clock, the last
-- five the job's limits. A limited job whose key is at its limit is left out here, so that it does
-- not hold the places of jobs behind it; the claim checks the limits again under the keys' locks.
-- name: queue_claim_select
SELECT c.job_id, c.queue, c.priority, c.execution_id, c.execute_after, c.enqueued_at, c.current_execution,
       c.state_sequence, c.state_name, statement_timestamp(),
       c.limit_key, c.limit_max, c.rate_key, c.rate_max, c.rate_period
FROM unnest(CAST(:queues AS TEXT[])) AS g (queue)
CROSS JOIN LATERAL (
    SELECT q.job_id, q.queue, q.priority, q.execution_id, q.execute_after, q.enqueued_at,
           j.execution_id AS current_execution, j.state_sequence, j.state_name,
           j.limit_key, j.limit_max, j.rate_key, j.rate_max, j.rate_period
    FROM "{p}queue" AS q
    JOIN "{p}job" AS j ON j.id = q.job_id AND j.locked_by IS NULL
    WHERE q.queue = g.queue AND q.execute_after <= statement_timestamp()
      AND (j.limit_key IS NULL OR j.limit_max > (
          SELECT count(*) FROM "{p}job" AS r WHERE r.limit_key = j.limit_key AND r.state_name = 'Executing'))
      AND (j.rate_key IS NULL OR j.rate_max > (
          SELECT count(*) FROM "{p}limit_start" AS s
          WHERE s.rate_key = j.rate_key
            AND s.started_at > statement_timestamp() - j.rate_period * interval '1 millisecond'))
    ORDER BY q.priority, q.execute_after, q.job_id
    LIMIT :limit
    FOR UPDATE OF q, j SKIP LOCKED
) AS c
ORDER BY c.priority, c.execute_after, c.job_id
LIMIT :limit;

-- The claim and the start of its jobs in one statement (PostgreSQL's data-modifying WITH), for
-- claims nobody observes: the walk of queue_claim_select over one queue group; the entries
-- taken; every claimed job moved to Executing and locked for :owner on the database clock, the
-- n-th one (in claim order, counting from :offset + 1) with execution id :execution_ids[n] and the
-- Executing fields :fields_before[n] || its entry's due time (ISO 8601, UTC) || :fields_after[n]; its
-- history row inserted. One row per entry read: the job's id, the entry, n (NULL: a stale entry,
-- deleted and not claimed), the clock, whether the claim needs the general path instead (a claimed
-- job with limits, or one not Enqueued: then nothing is written and the rows stay locked for it),
-- and for each started job its record as it was before this statement (columns, history and
-- properties as JSON, times as microseconds since 1970), to build the job and, should it not be
-- runnable, to put it back as it was (queue_start_revert) within the same transaction.
-- name: queue_claim_start_lean
WITH picked AS (
    SELECT c.*
    FROM unnest(CAST(:queues AS TEXT[])) AS g (queue)
    CROSS JOIN LATERAL (
        SELECT q.job_id, q.queue, q.priority, q.execution_id, q.execute_after, q.enqueued_at,
               j.execution_id AS current_execution, j.state_name, j.state_sequence, j.state_elected_at,
               j.modified_at, (j.limit_key IS NOT NULL OR j.rate_key IS NOT NULL) AS limited,
               j.queue AS job_queue, j.priority AS job_priority, j.invocation, j.middleware, j.created_at
        FROM "{p}queue" AS q
        JOIN "{p}job" AS j ON j.id = q.job_id AND j.locked_by IS NULL
        WHERE q.queue = g.queue AND q.execute_after <= statement_timestamp()
          AND (j.limit_key IS NULL OR j.limit_max > (
              SELECT count(*) FROM "{p}job" AS r WHERE r.limit_key = j.limit_key AND r.state_name = 'Executing'))
          AND (j.rate_key IS NULL OR j.rate_max > (
              SELECT count(*) FROM "{p}limit_start" AS s
              WHERE s.rate_key = j.rate_key
                AND s.started_at > statement_timestamp() - j.rate_period * interval '1 millisecond'))
        ORDER BY q.priority, q.execute_after, q.job_id
        LIMIT :limit
        FOR UPDATE OF q, j SKIP LOCKED
    ) AS c
    ORDER BY c.priority, c.execute_after, c.job_id
    LIMIT :limit
), general AS (
    SELECT EXISTS (
        SELECT 1 FROM picked
        WHERE execution_id = current_execution AND (limited OR state_name <> 'Enqueued')
    ) AS needed
), ready AS (
    SELECT p.job_id, p.execute_after,
           CAST(:offset + row_number() OVER (ORDER BY p.priority, p.execute_after, p.job_id) AS INTEGER) AS n
    FROM picked AS p
    WHERE p.execution_id = p.current_execution AND NOT (SELECT needed FROM general)
), taken AS (
    DELETE FROM "{p}queue" AS q USING picked AS p
    WHERE q.job_id = p.job_id AND NOT (SELECT needed FROM general)
), started AS (
    UPDATE "{p}job" AS j
    SET execution_id = (CAST(:execution_ids AS TEXT[]))[r.n],
        state_name = 'Executing',
        state_sequence = j.state_sequence + 1,
        state_elected_at = statement_timestamp(),
        locked_by = :owner,
        locked_at = statement_timestamp(),
        lock_heartbeat = statement_timestamp(),
        modified_at = statement_timestamp()
    FROM ready AS r
    WHERE j.id = r.job_id
    RETURNING j.id, j.state_sequence, r.n, r.execute_after
), history AS (
    INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
    SELECT id, state_sequence, 'Executing', statement_timestamp(), NULL,
           (CAST(:fields_before AS TEXT[]))[n]
           || to_char(
               execute_after AT TIME ZONE 'UTC',
               -- as Python's isoformat (the codec's text): no fraction on a whole second
               CASE WHEN CAST(extract(microseconds FROM execute_after) AS BIGINT) % 1000000 = 0
                    THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END
           )
           || (CAST(:fields_after AS TEXT[]))[n]
    FROM started
)
SELECT p.job_id, p.queue, p.priority, p.execution_id, p.execute_after, p.enqueued_at, r.n,
       statement_timestamp(), (SELECT needed FROM general),
       p.job_queue, p.job_priority, p.invocation, p.middleware, p.created_at, p.modified_at,
       p.state_name, p.state_sequence, p.state_elected_at,
       CAST((SELECT json_agg(json_build_array(
                  s.sequence, s.name, CAST(extract(epoch FROM s.elected_at) * 1000000 AS BIGINT), s.reason, s.fields)
              ORDER BY s.sequence)
              FROM "{p}job_state" AS s WHERE s.job_id = p.job_id) AS TEXT),
       CAST((SELECT json_agg(json_build_array(
                  x.name, x.type, x.text_value, x.int_value, x.float_value, x.bool_value,
                  CAST(extract(epoch FROM x.datetime_value) * 1000000 AS BIGINT))
              ORDER BY x.name)
              FROM "{p}job_property" AS x WHERE x.job_id = p.job_id) AS TEXT)
FROM picked AS p
LEFT JOIN ready AS r ON r.job_id = p.job_id
ORDER BY r.n;

-- A job queue_claim_start_lean started that cannot run (its stored call cannot be decoded): back
-- as it was before the claim, still locked by the claimer (the job fails in the same transaction).
-- name: queue_start_revert
WITH reverted AS (
    UPDATE "{p}job"
    SET execution_id = :execution_id,
        state_name = :state_name,
        state_sequence = :state_sequence,
        state_elected_at = :state_elected_at,
        modified_at = :modified_at
    WHERE id = :job_id
)
DELETE FROM "{p}job_state" WHERE job_id = :job_id AND sequence = :state_sequence + 1;

-- name: queue_take
DELETE FROM "{p}queue" WHERE job_id = ANY(:job_ids);

-- The lock of one limit key (its row created on first use), held to the end of the transaction.
-- Claims lock their keys in one order (sorted), so that they wait for each other instead of
-- deadlocking.
-- name: limit_lock
INSERT INTO "{p}limit_lock" (lock_key, locked_at) VALUES (:key, statement_timestamp())
ON CONFLICT (lock_key) DO UPDATE SET locked_at = excluded.locked_at;

-- A limit key's lock if no other transaction holds it (no wait): the keys it took.
-- name: limit_try_lock
SELECT lock_key FROM "{p}limit_lock" WHERE lock_key = ANY(:keys) FOR UPDATE SKIP LOCKED;

-- name: limit_running
SELECT limit_key, count(*) FROM "{p}job"
WHERE limit_key = ANY(:keys) AND state_name = 'Executing'
GROUP BY limit_key;

-- name: limit_starts
SELECT rate_key, started_at FROM "{p}limit_start" WHERE rate_key = ANY(:keys);

-- name: limit_start_insert
INSERT INTO "{p}limit_start" (rate_key, started_at) VALUES (:rate_key, :started_at);

-- name: limit_start_prune
DELETE FROM "{p}limit_start" WHERE rate_key = ANY(:keys) AND started_at <= :horizon;

-- The due times of entries a save keeps (a job moved without a new state).
-- name: queue_due_many
SELECT job_id, execute_after FROM "{p}queue" WHERE job_id = ANY(:job_ids);

-- name: queue_lock_claimed
UPDATE "{p}job"
SET locked_by = :owner, locked_at = :now, lock_heartbeat = :now
WHERE id = ANY(:job_ids) AND locked_by IS NULL;

-- The records of jobs the claim has just read unlocked (and holds FOR UPDATE), as the claim
-- leaves them: locked by :owner since :now (the UPDATE that starts each one takes the lock).
-- name: queue_select_claimed
SELECT id, queue, priority, execution_id, invocation, middleware, created_at, modified_at,
       CAST(:owner AS TEXT), CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
FROM "{p}job"
WHERE id = ANY(:job_ids);

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

-- name: queue_start_claimed_set
UPDATE "{p}job" AS j
SET execution_id = u.execution_id,
    state_name = u.state_name,
    state_sequence = u.state_sequence,
    state_elected_at = u.state_elected_at,
    locked_by = :owner,
    locked_at = :now,
    lock_heartbeat = :now,
    modified_at = :now
FROM unnest(
    CAST(:job_id AS BIGINT[]), CAST(:execution_id AS TEXT[]), CAST(:state_name AS TEXT[]),
    CAST(:state_sequence AS INTEGER[]), CAST(:state_elected_at AS TIMESTAMPTZ[])
) AS u (id, execution_id, state_name, state_sequence, state_elected_at)
WHERE j.id = u.id;

-- name: queue_stats
SELECT queue, priority,
       SUM(CASE WHEN execute_after <= :now THEN 1 ELSE 0 END),
       SUM(CASE WHEN execute_after > :now THEN 1 ELSE 0 END),
       MIN(execute_after)
FROM "{p}queue"
GROUP BY queue, priority
ORDER BY queue, priority;

-- name: queue_notify
SELECT pg_notify(:channel, :payload);

-- name: queue_pause_insert
INSERT INTO "{p}queue_pause" (queue, paused_at, reason) VALUES (:queue, statement_timestamp(), :reason)
ON CONFLICT (queue) DO NOTHING;

-- name: queue_pause_delete
DELETE FROM "{p}queue_pause" WHERE queue = :queue;

-- name: queue_pause_select_all
SELECT queue, paused_at, reason FROM "{p}queue_pause" ORDER BY queue;
