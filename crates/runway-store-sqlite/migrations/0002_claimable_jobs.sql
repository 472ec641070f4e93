-- What claiming needs, before the claim itself exists (the agent protocol adds it).
--
-- "Find claimable jobs for an agent": its queue, then priority (higher first), then
-- oldest first (ULID ids sort by creation). A partial index over queued jobs only,
-- so it stays as small as the backlog and a claim query that names the same
-- condition walks it in claim order with no sort:
--
--   SELECT … FROM jobs
--   WHERE status = 'queued' AND queue = ?
--   ORDER BY priority DESC, id
--
-- Labels (a job's labels must all be among the agent's) are checked in code on the
-- rows this yields, as on DynamoDB, where the `claimable` index projects them.
--
-- Queued jobs past their queue TTL need no new index: `jobs_by_status (status, id)`
-- with status = 'queued' in ascending id is oldest first. Expired leases get their
-- index with the lease columns, in the migration that adds them.

CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, id) WHERE status = 'queued';
