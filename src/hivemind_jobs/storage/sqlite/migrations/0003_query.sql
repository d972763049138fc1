-- Indexes for job queries: jobs of a state in a queue in id order (search-and-lock), order by
-- creation time, and boolean properties.
-- (Text is compared by code point on SQLite already.)

CREATE INDEX "{p}job_by_created" ON "{p}job" (created_at, id);
CREATE INDEX "{p}job_property_bool" ON "{p}job_property" (name, bool_value, job_id) WHERE bool_value IS NOT NULL;
CREATE INDEX "{p}job_by_state_queue" ON "{p}job" (state_name, queue, id);
