-- Jobs searchable by function: function_name is the called function as module:qualname (with
-- .method for instance methods), written with the job and cut at 700 characters. Jobs stored
-- before get theirs from their stored invocation (its JSON starts with the format version, the
-- target, the async flag and the method if any); one whose invocation cannot be read keeps ''.
-- (\u007B is the opening brace of the JSON object.)

ALTER TABLE "{p}job" ADD COLUMN function_name TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE "{p}job"
SET function_name = left(
    substring(invocation FROM '^\u007B\s*"v"\s*:\s*1\s*,\s*"target"\s*:\s*"([^"\\]+)"')
    || COALESCE(
        '.' || substring(
            invocation
            FROM '^\u007B\s*"v"\s*:\s*1\s*,\s*"target"\s*:\s*"[^"\\]+"\s*,\s*"async"\s*:\s*(?:true|false)\s*,\s*"method"\s*:\s*"([^"\\]+)"'
        ),
        ''
    ),
    700
)
WHERE invocation ~ '^\u007B\s*"v"\s*:\s*1\s*,\s*"target"\s*:\s*"[^"\\]+"';
CREATE INDEX "{p}job_by_function" ON "{p}job" (function_name, id);
