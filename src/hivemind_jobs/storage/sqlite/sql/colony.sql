-- name: colony_upsert
INSERT INTO "{p}colony" (id, name, host, pid, status, state, started_at, heartbeat, last_progress_at)
VALUES (:id, :name, :host, :pid, :status, :state, :now, :now, :last_progress_at)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name,
    status = excluded.status,
    state = excluded.state,
    heartbeat = excluded.heartbeat,
    last_progress_at = excluded.last_progress_at
RETURNING id, name, host, pid, status, state, started_at, heartbeat, last_progress_at;

-- name: colony_select
SELECT id, name, host, pid, status, state, started_at, heartbeat, last_progress_at
FROM "{p}colony" WHERE id = :id;

-- name: colony_select_all
SELECT id, name, host, pid, status, state, started_at, heartbeat, last_progress_at
FROM "{p}colony" ORDER BY name, id;

-- name: colony_delete
DELETE FROM "{p}colony" WHERE id IN (SELECT value FROM json_each(:ids));

-- name: colony_stale_select
SELECT id FROM "{p}colony" WHERE heartbeat < :cutoff ORDER BY id;

-- name: daemon_log_insert
INSERT INTO "{p}daemon_log" (colony_id, daemon, level, message, created_at)
SELECT id, :daemon, :level, :message, COALESCE(:created_at, :now) FROM "{p}colony" WHERE id = :colony_id;

-- name: daemon_log_select
SELECT id, colony_id, daemon, level, message, created_at
FROM "{p}daemon_log"
WHERE colony_id = :colony_id AND (:daemon IS NULL OR daemon = :daemon) AND id > :after_id
ORDER BY id
LIMIT :limit;

-- name: job_lock_takeover_select
SELECT id FROM "{p}job"
WHERE locked_by IS NOT NULL AND lock_heartbeat < :cutoff
ORDER BY lock_heartbeat
LIMIT :limit;

-- name: job_lock_takeover
UPDATE "{p}job" SET locked_by = :new_holder, locked_at = :now, lock_heartbeat = :now
WHERE id IN (SELECT value FROM json_each(:job_ids));
