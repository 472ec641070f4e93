-- What running jobs needs (the agent protocol): an agent's state, registration
-- token uses, job secrets, attempt leases and logs, and the indexes that claiming
-- and the reaper read. Every lookup below is an index seek or range on a partial
-- index that holds only the rows it is about, so none of them reads the whole
-- table however long the job history grows; the `query_plans` tests pin each one.

-- What an admin asked of an agent (`AgentState`): a decision, so stored, unlike
-- health. Agents registered before this migration are active.
ALTER TABLE agents ADD COLUMN state TEXT NOT NULL DEFAULT 'active';

-- `max_uses` NULL is "no limit". `uses` is counted by the UPDATE that also checks
-- it, in the transaction that inserts the agent.
ALTER TABLE registration_tokens ADD COLUMN max_uses INTEGER;
ALTER TABLE registration_tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;

-- A job's secrets, a JSON object of name → value, while the job can still run;
-- NULL when it has none, and set to NULL by the write that makes the job final.
-- No read but the claim selects this column.
ALTER TABLE jobs ADD COLUMN secrets TEXT;

-- An attempt's lease: non-NULL exactly while an agent holds the attempt (its job
-- is claimed, running or canceling), so "held" is `lease_expires_at IS NOT NULL`
-- everywhere below. Every write that moves the job out of a held status sets it
-- to NULL in the same transaction.
ALTER TABLE job_attempts ADD COLUMN lease_expires_at INTEGER;
-- When the reaper times the attempt out: claimed_at + the job's timeout +
-- DEADLINE_GRACE (`Attempt::deadline`), fixed at the claim.
ALTER TABLE job_attempts ADD COLUMN deadline_at INTEGER;
-- When the attempt is due for the reaper: whichever of the lease and the deadline
-- comes first. SQL's multi-argument `min` is NULL when an argument is, so this is
-- NULL once the lease is dropped. Computed, so it can never disagree with them.
ALTER TABLE job_attempts ADD COLUMN due_at INTEGER
    GENERATED ALWAYS AS (min(lease_expires_at, deadline_at)) VIRTUAL;
-- SHA-256 of the attempt's job token (empty for attempts from before this).
ALTER TABLE job_attempts ADD COLUMN job_token_hash TEXT NOT NULL DEFAULT '';
-- The log's size and running CRC-32, updated with each chunk in its transaction.
ALTER TABLE job_attempts ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_attempts ADD COLUMN log_crc32 INTEGER NOT NULL DEFAULT 0;

-- The reaper: held attempts in the order they fall due,
--   WHERE lease_expires_at IS NOT NULL AND due_at <= ?now ORDER BY due_at.
-- An expired lease and a passed deadline are one range on one column, and the
-- range ends at the first attempt not yet due, so the reaper reads only what it
-- acts on (then each of those rows by primary key: SQLite's planner does not
-- treat an index on a virtual column as covering).
CREATE INDEX job_attempts_due ON job_attempts (due_at) WHERE lease_expires_at IS NOT NULL;

-- What an agent holds: its capacity check in every claim, agent deletion,
--   WHERE agent_id = ? AND lease_expires_at IS NOT NULL.
-- Holds as many rows as there are running jobs, however many attempts exist.
CREATE INDEX job_attempts_held_by ON job_attempts (agent_id, lease_expires_at, status)
    WHERE lease_expires_at IS NOT NULL;

-- The claim walks one queue's queued jobs in claim order and checks each job's
-- labels in code. Migration 2's index did not hold the labels, so each candidate
-- meant reading the job's row, which for a long script continues on overflow pages
-- before the labels column is reached. With the labels (and the status the partial
-- index is conditional on) in the index, the walk never leaves it.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, id, labels, status)
    WHERE status = 'queued';

-- The queue TTL: queued jobs by when their status last changed, oldest first,
--   WHERE status = 'queued' AND updated_at < ?cutoff ORDER BY updated_at, id.
-- Not `jobs_by_status` in id order: a job re-queued after a lost attempt is old
-- by id but has been waiting only since it was re-queued.
CREATE INDEX jobs_queued_since ON jobs (updated_at, id, status) WHERE status = 'queued';

-- Log bytes, one row per stored chunk: the part of an agent's chunk that was new,
-- starting where the log ended (`byte_offset`), so the chunks of an attempt tile
-- its log with no gap or overlap. A table rather than files in the data directory:
-- the chunk, the attempt's new size and its CRC-32 commit in one transaction (the
-- store's contract), under the same fsync and the same crash guarantees as every
-- other write, with nothing to reconcile after a crash and one file to back up.
-- A rowid table, not WITHOUT ROWID: a chunk is up to 256 KiB, far past the row
-- size SQLite advises for WITHOUT ROWID. Chunks belong to their attempt and go
-- with it.
CREATE TABLE log_chunks (
    job_id      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    -- The agent's sequence number of the chunk that brought these bytes, for
    -- diagnosis only: the offset places a chunk.
    seq         INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (job_id, attempt, byte_offset),
    FOREIGN KEY (job_id, attempt) REFERENCES job_attempts (job_id, number) ON DELETE CASCADE
) STRICT;
