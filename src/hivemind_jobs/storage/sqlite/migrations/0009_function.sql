-- Jobs searchable by function: function_name is the called function as module:qualname (with
-- .method for instance methods), written with the job and cut at 700 characters. Jobs stored
-- before get theirs from their stored invocation; one whose invocation cannot be read keeps ''.

ALTER TABLE "{p}job" ADD COLUMN function_name TEXT NOT NULL DEFAULT '';
UPDATE "{p}job"
SET function_name = substr(
    json_extract(invocation, '$.target')
    || CASE WHEN json_type(invocation, '$.method') = 'text' THEN '.' || json_extract(invocation, '$.method') ELSE '' END,
    1,
    700
)
WHERE CASE WHEN json_valid(invocation) THEN json_type(invocation, '$.target') = 'text' ELSE 0 END;
CREATE INDEX "{p}job_by_function" ON "{p}job" (function_name, id);
