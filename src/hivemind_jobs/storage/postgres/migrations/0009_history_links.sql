-- The history and queue rows of a job are written and deleted with their job by HiveMind's own
-- statements (a job's row is locked or new whenever rows of it are written; job_purge deletes
-- them with it), so their foreign keys to the job table checked what those statements already
-- ensure: two of the checks ran for every state change (one per history row, one per queue
-- entry), each a row lock on the job and a trigger of its own. The other tables keep theirs.
-- The constraints are found by their table (their names depend on the prefix's length); no
-- line of the block ends in a semicolon, which would end the migration's statement there.
DO $$
DECLARE found record; BEGIN
    FOR found IN
        SELECT conname, conrelid FROM pg_constraint
        WHERE contype = 'f' AND confrelid = CAST('"{p}job"' AS regclass)
          AND conrelid IN (CAST('"{p}job_state"' AS regclass), CAST('"{p}queue"' AS regclass))
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', CAST(found.conrelid AS regclass), found.conname); END LOOP; END
$$;
