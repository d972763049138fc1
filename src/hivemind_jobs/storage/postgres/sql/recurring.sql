-- name: recurring_select
SELECT id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at
FROM "{p}recurring_job" WHERE id = :id;

-- name: recurring_select_for_update
SELECT id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at
FROM "{p}recurring_job" WHERE id = :id FOR UPDATE;

-- name: recurring_select_page
SELECT id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at
FROM "{p}recurring_job" WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: recurring_select_due
SELECT id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at
FROM "{p}recurring_job" WHERE state_name = 'Enqueued' AND next_run <= :now AND id > :after_id
ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: recurring_select_running
SELECT id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at
FROM "{p}recurring_job" WHERE job_id IS NOT NULL AND id > :after_id ORDER BY id LIMIT :limit;

-- name: recurring_insert
INSERT INTO "{p}recurring_job"
    (id, definition, state_name, state_reason, next_run, job_id, stats, version, created_at, modified_at)
VALUES (:id, :definition, :state_name, :state_reason, :next_run, :job_id, :stats, 1, :now, :now)
ON CONFLICT (id) DO NOTHING;

-- name: recurring_update
UPDATE "{p}recurring_job"
SET definition = :definition, state_name = :state_name, state_reason = :state_reason, next_run = :next_run,
    job_id = :job_id, stats = :stats, version = version + 1, modified_at = :now
WHERE id = :id AND version = :expected_version AND (:check_next_run = 0 OR next_run = :expected_next_run);

-- name: recurring_delete
DELETE FROM "{p}recurring_job" WHERE id = :id;

-- name: recurring_event_delete_all
DELETE FROM "{p}recurring_event" WHERE recurring_id = :id;

-- name: occurrence_insert
INSERT INTO "{p}recurring_occurrence" (recurring_id, scheduled_at, job_id, created_at)
VALUES (:recurring_id, :scheduled_at, :job_id, :now)
ON CONFLICT (recurring_id, scheduled_at) DO NOTHING;

-- name: recurring_event_insert
INSERT INTO "{p}recurring_event" (recurring_id, kind, name, message, fields, created_at)
VALUES (:recurring_id, :kind, :name, :message, :fields, :now);

-- name: recurring_event_select
SELECT id, recurring_id, kind, name, message, fields, created_at
FROM "{p}recurring_event"
WHERE recurring_id = :recurring_id AND (CAST(:kind AS TEXT) IS NULL OR kind = :kind) AND (:before_id = 0 OR id < :before_id)
ORDER BY id DESC
LIMIT :limit;

-- name: recurring_event_kept_boundary
SELECT id FROM "{p}recurring_event" WHERE recurring_id = :recurring_id AND kind = :kind
ORDER BY id DESC LIMIT 1 OFFSET :keep;

-- name: recurring_event_prune_to
DELETE FROM "{p}recurring_event" WHERE recurring_id = :recurring_id AND kind = :kind AND id <= :last_id;

-- name: recurring_event_prune_age
DELETE FROM "{p}recurring_event" WHERE recurring_id = :recurring_id AND kind = :kind AND created_at < :cutoff;

-- name: job_purge_select
SELECT id FROM "{p}job"
WHERE state_name = :state AND state_elected_at < :cutoff AND locked_by IS NULL
ORDER BY state_elected_at, id
LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- The jobs, with their history and queue rows (which have no foreign key to cascade through; the
-- jobs are locked by job_purge_select, so nothing writes rows of theirs meanwhile).
-- name: job_purge
WITH history AS (
    DELETE FROM "{p}job_state" WHERE job_id = ANY(:ids)
), entries AS (
    DELETE FROM "{p}queue" WHERE job_id = ANY(:ids)
)
DELETE FROM "{p}job" WHERE id = ANY(:ids);

-- name: job_unique_release_purged
-- The unique keys purged jobs held, unless their period still runs.
DELETE FROM "{p}job_unique" WHERE job_id = ANY(:ids) AND (expires_at IS NULL OR expires_at <= :now);

-- name: job_log_purge
DELETE FROM "{p}job_log" WHERE id IN (
    SELECT id FROM "{p}job_log" WHERE created_at < :cutoff ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
);

-- name: daemon_log_purge
DELETE FROM "{p}daemon_log" WHERE id IN (
    SELECT id FROM "{p}daemon_log" WHERE created_at < :cutoff ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
);

-- name: recurring_occurrence_purge
DELETE FROM "{p}recurring_occurrence" WHERE (recurring_id, scheduled_at) IN (
    SELECT recurring_id, scheduled_at FROM "{p}recurring_occurrence" WHERE created_at < :cutoff
    ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED
);

-- name: lease_insert
INSERT INTO "{p}lease" (name, holder, expires_at) VALUES (:name, :holder, :expires_at)
ON CONFLICT (name) DO NOTHING;

-- name: lease_select_for_update
SELECT holder, expires_at FROM "{p}lease" WHERE name = :name FOR UPDATE;

-- name: lease_update
UPDATE "{p}lease" SET holder = :holder, expires_at = :expires_at WHERE name = :name;

-- name: lease_release
DELETE FROM "{p}lease" WHERE name = :name AND holder = :holder;
