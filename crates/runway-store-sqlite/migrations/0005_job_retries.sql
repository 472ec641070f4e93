-- What a user's retry of a finished job needs (`JobStore::retry_job`).

-- The names of the job's secrets, a sorted JSON array, kept for the job's whole
-- life (the values in `secrets` are set to NULL when the job is final): a retry
-- must supply every one again, and this is how the server knows which. Never a
-- value. Jobs still able to run get their names from their secrets below; jobs
-- that were already final lost the names with the values, so they have none, and
-- a retry of one runs without the secrets it once had.
ALTER TABLE jobs ADD COLUMN secret_names TEXT NOT NULL DEFAULT '[]';
UPDATE jobs
   SET secret_names = (SELECT json_group_array(key ORDER BY key) FROM json_each(jobs.secrets))
 WHERE secrets IS NOT NULL;

-- `attempt_count` when a user last retried the job, 0 if never: automatic retries
-- of lost attempts count only the attempts after it, so a retried job gets a fresh
-- budget of `max_retries` (`lifecycle::RetryBudget`).
ALTER TABLE jobs ADD COLUMN retried_at_attempt INTEGER NOT NULL DEFAULT 0;
