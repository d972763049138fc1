-- One new job with everything that goes with it, in one statement: the job row, its states and
-- properties (arrays), its queue entry (due at execute_after, else the statement's clock plus the
-- delay), its link to a parent it waits for, and the NOTIFY of the enqueued id (sent at commit).
-- The database clock is statement_timestamp(), the same for every part.
-- name: job_insert
WITH j AS (
    INSERT INTO "{p}job" (
        queue, priority, execution_id, state_name, state_sequence, state_elected_at,
        invocation, middleware, function_name, locked_by, locked_at, lock_heartbeat, created_at, modified_at
    ) VALUES (
        :queue, :priority, :execution_id, :state_name, :state_sequence, :state_elected_at,
        :invocation, :middleware, :function_name, :lock_owner,
        CASE WHEN CAST(:lock_owner AS TEXT) IS NULL THEN NULL ELSE statement_timestamp() END,
        CASE WHEN CAST(:lock_owner AS TEXT) IS NULL THEN NULL ELSE statement_timestamp() END,
        statement_timestamp(), statement_timestamp()
    )
    RETURNING id
), s AS (
    INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
    SELECT j.id, s.sequence, s.name, s.elected_at, s.reason, s.fields
    FROM j, json_to_recordset(CAST(:states AS JSON))
        AS s (sequence INTEGER, name TEXT, elected_at TIMESTAMPTZ, reason TEXT, fields TEXT)
), pr AS (
    INSERT INTO "{p}job_property" (job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value)
    SELECT j.id, x.name, x.type, x.text_value, x.int_value, x.float_value, x.bool_value, x.datetime_value
    FROM j, unnest(
        CAST(:p_name AS TEXT[]), CAST(:p_type AS TEXT[]), CAST(:p_text_value AS TEXT[]),
        CAST(:p_int_value AS BIGINT[]), CAST(:p_float_value AS DOUBLE PRECISION[]), CAST(:p_bool_value AS SMALLINT[]),
        CAST(:p_datetime_value AS TIMESTAMPTZ[])
    ) AS x (name, type, text_value, int_value, float_value, bool_value, datetime_value)
), qu AS (
    INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
    SELECT j.id, CAST(:q_queue AS TEXT), CAST(:q_priority AS INTEGER),
           COALESCE(
               CAST(:q_execute_after AS TIMESTAMPTZ),
               statement_timestamp() + COALESCE(CAST(:q_delay AS INTERVAL), INTERVAL '0 seconds')
           ),
           CAST(:q_execution_id AS TEXT), statement_timestamp()
    FROM j
    WHERE CAST(:q_queue AS TEXT) IS NOT NULL
    RETURNING job_id
), li AS (
    INSERT INTO "{p}job_continuation" (parent_id, child_id, fired_state, created_at)
    SELECT CAST(:parent_id AS BIGINT), j.id, NULL, statement_timestamp()
    FROM j
    WHERE CAST(:parent_id AS BIGINT) IS NOT NULL
    ON CONFLICT (parent_id, child_id) DO UPDATE SET fired_state = NULL
), n AS (
    SELECT pg_notify(CAST(:channel AS TEXT), CAST(job_id AS TEXT)) FROM qu
)
SELECT j.id, statement_timestamp(), (SELECT count(*) FROM n) FROM j;

-- job_insert for the most common new job: enqueued now or at a given time in its own queue, its
-- two states (Created and the current one) elected at one moment, no property, lock or parent:
-- about half of job_insert's parameters.
-- name: job_insert_plain
WITH j AS (
    INSERT INTO "{p}job" (
        queue, priority, execution_id, state_name, state_sequence, state_elected_at,
        invocation, middleware, function_name, created_at, modified_at
    ) VALUES (
        :queue, :priority, :execution_id, :state_name, 1, :elected_at,
        :invocation, :middleware, :function_name, statement_timestamp(), statement_timestamp()
    )
    RETURNING id
), s AS (
    INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
    VALUES ((SELECT id FROM j), 0, 'Created', :elected_at, NULL, :created_fields),
           ((SELECT id FROM j), 1, :state_name, :elected_at, :reason, :fields)
), qu AS (
    INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
    SELECT j.id, :queue, :priority, COALESCE(CAST(:execute_after AS TIMESTAMPTZ), statement_timestamp()),
           :execution_id, statement_timestamp()
    FROM j
    RETURNING job_id
), n AS (
    SELECT pg_notify(CAST(:channel AS TEXT), CAST(job_id AS TEXT)) FROM qu
)
SELECT j.id, statement_timestamp(), (SELECT count(*) FROM n) FROM j;

-- A batch of new jobs in one statement, as job_insert for one (rows as arrays, matched to their
-- job by its execution id). History rows and a queue entry every job of the batch has alike are
-- given once (a_*, qa_*: each job's entry takes the job's execution id), and so are the columns of
-- job rows that differ only by their execution id and call (all_*, the per-job arrays then NULL).
-- The NOTIFY payload holds the enqueued ids that fit in 7,900 bytes.
-- name: job_insert_set
WITH j AS (
    INSERT INTO "{p}job" (
        queue, priority, execution_id, state_name, state_sequence, state_elected_at,
        invocation, middleware, function_name, locked_by, locked_at, lock_heartbeat, created_at, modified_at
    )
    SELECT r.queue, r.priority, r.execution_id, r.state_name, r.state_sequence, r.state_elected_at,
           r.invocation, r.middleware, r.function_name, r.lock_owner,
           CASE WHEN r.lock_owner IS NULL THEN NULL ELSE statement_timestamp() END,
           CASE WHEN r.lock_owner IS NULL THEN NULL ELSE statement_timestamp() END,
           statement_timestamp(), statement_timestamp()
    FROM (
        SELECT COALESCE(u.queue, CAST(:all_queue AS TEXT)) AS queue,
               COALESCE(u.priority, CAST(:all_priority AS INTEGER)) AS priority,
               u.execution_id,
               COALESCE(u.state_name, CAST(:all_state_name AS TEXT)) AS state_name,
               COALESCE(u.state_sequence, CAST(:all_state_sequence AS INTEGER)) AS state_sequence,
               COALESCE(u.state_elected_at, CAST(:all_state_elected_at AS TIMESTAMPTZ)) AS state_elected_at,
               u.invocation,
               COALESCE(u.middleware, CAST(:all_middleware AS TEXT)) AS middleware,
               COALESCE(u.function_name, CAST(:all_function_name AS TEXT)) AS function_name,
               COALESCE(u.lock_owner, CAST(:all_lock_owner AS TEXT)) AS lock_owner,
               u.position
        FROM unnest(
            CAST(:queue AS TEXT[]), CAST(:priority AS INTEGER[]), CAST(:execution_id AS TEXT[]),
            CAST(:state_name AS TEXT[]), CAST(:state_sequence AS INTEGER[]), CAST(:state_elected_at AS TIMESTAMPTZ[]),
            CAST(:invocation AS TEXT[]), CAST(:middleware AS TEXT[]), CAST(:function_name AS TEXT[]),
            CAST(:lock_owner AS TEXT[])
        ) WITH ORDINALITY AS u (
            queue, priority, execution_id, state_name, state_sequence, state_elected_at, invocation, middleware,
            function_name, lock_owner, position
        )
    ) AS r
    ORDER BY r.position
    RETURNING id, execution_id
), s AS (
    INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
    SELECT j.id, s.sequence, s.name, s.elected_at, s.reason, s.fields
    FROM unnest(
        CAST(:s_job AS TEXT[]), CAST(:s_sequence AS INTEGER[]), CAST(:s_name AS TEXT[]),
        CAST(:s_elected_at AS TIMESTAMPTZ[]), CAST(:s_reason AS TEXT[]), CAST(:s_fields AS TEXT[])
    ) AS s (job, sequence, name, elected_at, reason, fields)
    JOIN j ON j.execution_id = s.job
    UNION ALL
    SELECT j.id, a.sequence, a.name, a.elected_at, a.reason, a.fields
    FROM unnest(
        CAST(:a_sequence AS INTEGER[]), CAST(:a_name AS TEXT[]), CAST(:a_elected_at AS TIMESTAMPTZ[]),
        CAST(:a_reason AS TEXT[]), CAST(:a_fields AS TEXT[])
    ) AS a (sequence, name, elected_at, reason, fields)
    CROSS JOIN j
), pr AS (
    INSERT INTO "{p}job_property" (job_id, name, type, text_value, int_value, float_value, bool_value, datetime_value)
    SELECT j.id, x.name, x.type, x.text_value, x.int_value, x.float_value, x.bool_value, x.datetime_value
    FROM unnest(
        CAST(:p_job AS TEXT[]), CAST(:p_name AS TEXT[]), CAST(:p_type AS TEXT[]), CAST(:p_text_value AS TEXT[]),
        CAST(:p_int_value AS BIGINT[]), CAST(:p_float_value AS DOUBLE PRECISION[]), CAST(:p_bool_value AS SMALLINT[]),
        CAST(:p_datetime_value AS TIMESTAMPTZ[])
    ) AS x (job, name, type, text_value, int_value, float_value, bool_value, datetime_value)
    JOIN j ON j.execution_id = x.job
), qu AS (
    INSERT INTO "{p}queue" (job_id, queue, priority, execute_after, execution_id, enqueued_at)
    SELECT j.id, x.queue, x.priority,
           COALESCE(x.execute_after, statement_timestamp() + COALESCE(x.delay, INTERVAL '0 seconds')),
           x.execution_id, statement_timestamp()
    FROM unnest(
        CAST(:q_job AS TEXT[]), CAST(:q_queue AS TEXT[]), CAST(:q_priority AS INTEGER[]),
        CAST(:q_execute_after AS TIMESTAMPTZ[]), CAST(:q_delay AS INTERVAL[]), CAST(:q_execution_id AS TEXT[])
    ) AS x (job, queue, priority, execute_after, delay, execution_id)
    JOIN j ON j.execution_id = x.job
    UNION ALL
    SELECT j.id, a.queue, a.priority,
           COALESCE(a.execute_after, statement_timestamp() + COALESCE(a.delay, INTERVAL '0 seconds')),
           j.execution_id, statement_timestamp()
    FROM unnest(
        CAST(:qa_queue AS TEXT[]), CAST(:qa_priority AS INTEGER[]), CAST(:qa_execute_after AS TIMESTAMPTZ[]),
        CAST(:qa_delay AS INTERVAL[])
    ) AS a (queue, priority, execute_after, delay)
    CROSS JOIN j
    RETURNING job_id
), li AS (
    INSERT INTO "{p}job_continuation" (parent_id, child_id, fired_state, created_at)
    SELECT x.parent_id, j.id, NULL, statement_timestamp()
    FROM unnest(CAST(:l_job AS TEXT[]), CAST(:l_parent_id AS BIGINT[])) AS x (job, parent_id)
    JOIN j ON j.execution_id = x.job
    ON CONFLICT (parent_id, child_id) DO UPDATE SET fired_state = NULL
), n AS (
    SELECT pg_notify(
        CAST(:channel AS TEXT),
        regexp_replace(left(string_agg(CAST(job_id AS TEXT), ',' ORDER BY job_id) || ',', 7901), ',[^,]*$', '')
    )
    FROM qu
    HAVING count(*) > 0
)
SELECT j.id, j.execution_id, statement_timestamp(), (SELECT count(*) FROM n) FROM j;

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
-- The saves of a batch, and one NOTIFY on the finished-jobs channel with the ids of the jobs that
-- are in a final state now (empty when they do not fit a payload: listeners then check every job).
WITH updated AS (
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
WHERE j.id = u.id
RETURNING j.id, j.state_name
), finished AS (
    SELECT string_agg(CAST(id AS TEXT), ',') AS ids FROM updated WHERE state_name = ANY(CAST(:final_states AS TEXT[]))
)
SELECT pg_notify(:finished_channel, CASE WHEN length(ids) > 7900 THEN '' ELSE ids END)
FROM finished
WHERE ids IS NOT NULL;

-- Saves that each write one new state and release the lock (a worker's outcomes), fenced and
-- written in one statement: the jobs whose execution id, holder and lock freshness (on the
-- database clock) still match are locked in id order and saved, their history rows inserted, and
-- the ones now in a final state notified as job_update_set does. One row per job saved, with the
-- database clock; a job missing from them did not pass its fence and was not written.
-- name: job_finish_fenced
WITH links AS (
    -- as continuation_links_many for the batch's jobs (its changed and its released ids)
    SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
    WHERE parent_id = ANY(CAST(:job_id AS BIGINT[])) AND fired_state IS NULL
    UNION ALL
    SELECT parent_id, child_id, fired_state FROM "{p}job_continuation"
    WHERE child_id = ANY(CAST(:job_id AS BIGINT[])) AND fired_state IS NOT NULL
), fenced AS (
    SELECT f.*
    FROM unnest(
        CAST(:job_id AS BIGINT[]), CAST(:expected AS TEXT[]), CAST(:lock_us AS BIGINT[]),
        CAST(:execution_id AS TEXT[]), CAST(:state_name AS TEXT[]), CAST(:state_sequence AS INTEGER[]),
        CAST(:state_elected_at AS TIMESTAMPTZ[]), CAST(:reason AS TEXT[]), CAST(:fields AS TEXT[])
    ) AS f (id, expected, lock_us, execution_id, state_name, state_sequence, state_elected_at, reason, fields)
    JOIN "{p}job" AS j ON j.id = f.id
    WHERE j.execution_id = f.expected AND j.locked_by = :holder
      AND j.lock_heartbeat >= statement_timestamp() - f.lock_us * interval '1 microsecond'
      -- alone (the whole transaction, in autocommit): nothing is written when the batch has
      -- continuation links, whose work must go in the same transaction (the caller then runs the
      -- statement again in a transaction of its own)
      AND NOT (CAST(:alone AS BOOLEAN) AND EXISTS (SELECT 1 FROM links))
    ORDER BY j.id
    FOR UPDATE OF j
), updated AS (
    UPDATE "{p}job" AS j
    SET execution_id = u.execution_id,
        state_name = u.state_name,
        state_sequence = u.state_sequence,
        state_elected_at = u.state_elected_at,
        locked_by = NULL,
        locked_at = NULL,
        lock_heartbeat = NULL,
        modified_at = statement_timestamp()
    FROM fenced AS u
    WHERE j.id = u.id
    RETURNING j.id, j.state_name, j.state_sequence, j.state_elected_at, u.reason, u.fields
), history AS (
    INSERT INTO "{p}job_state" (job_id, sequence, name, elected_at, reason, fields)
    SELECT id, state_sequence, state_name, state_elected_at, reason, fields FROM updated
), finished AS (
    SELECT string_agg(CAST(id AS TEXT), ',') AS ids FROM updated WHERE state_name = ANY(CAST(:final_states AS TEXT[]))
)
SELECT u.id, statement_timestamp(),
       (SELECT pg_notify(:finished_channel, CASE WHEN length(ids) > 7900 THEN '' ELSE ids END)
        FROM finished WHERE ids IS NOT NULL),
       (SELECT CAST(json_agg(json_build_array(parent_id, child_id, fired_state) ORDER BY parent_id, child_id) AS TEXT)
        FROM links)
FROM updated AS u;

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

-- name: job_state_histogram
SELECT CAST(floor(extract(epoch FROM state_elected_at - CAST(:since AS TIMESTAMPTZ)) / :bucket) AS BIGINT), COUNT(*)
FROM "{p}job"
WHERE state_name = :state AND state_elected_at >= :since
GROUP BY 1;

-- name: job_state_by_queue
SELECT queue, COUNT(*) FROM "{p}job" WHERE state_name = :state AND state_elected_at >= :since GROUP BY queue;

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
