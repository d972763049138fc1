-- Jobs searchable by function: function_name is the called function as module:qualname (with
-- .method for instance methods), written with the job and cut at 700 characters. Jobs stored
-- before get theirs from their stored invocation; one whose invocation cannot be read keeps ''.
-- Idempotent: the ALTER is one statement (run again after it succeeded, its "duplicate column"
-- error is taken as done), and the UPDATE fills only names still empty.

ALTER TABLE `{p}job`
    ADD COLUMN function_name VARCHAR(700) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL DEFAULT '',
    ADD INDEX `{p}job_by_function` (function_name, id);
UPDATE `{p}job`
SET function_name = LEFT(
    CONCAT(
        JSON_VALUE(invocation, '$.target'),
        IF(JSON_TYPE(JSON_EXTRACT(invocation, '$.method')) = 'STRING', CONCAT('.', JSON_VALUE(invocation, '$.method')), '')
    ),
    700
)
WHERE function_name = ''
    AND CASE WHEN JSON_VALID(invocation) THEN JSON_TYPE(JSON_EXTRACT(invocation, '$.target')) = 'STRING' ELSE 0 END;
