-- Credential epochs and the purge of expired sessions (`accounts.rs`).
--
-- The runner applies the list in `db.rs` in order and records how many have run
-- in `user_version`; the number in a file name is only a label, kept in step with
-- the list's order.

-- Bumped by every password reset and sign-out everywhere, in the transaction that
-- deletes the sessions. A sign-in creates its session only if the user is still at
-- the epoch it read with the password hash.
ALTER TABLE users ADD COLUMN credential_epoch INTEGER NOT NULL DEFAULT 0;

-- The epoch the session was created at. Sessions from before this migration were
-- created at epoch 0, which is where every user starts.
ALTER TABLE sessions ADD COLUMN credential_epoch INTEGER NOT NULL DEFAULT 0;

-- The reaper deletes sessions whose effective expiry (the earlier of the absolute
-- expiry and the idle expiry, as `Session::effective_expiry` computes it) has
-- passed. The expression must be written exactly like this in the purge query for
-- SQLite to use the index; a test checks the query plan.
CREATE INDEX sessions_by_expiry
    ON sessions (min(expires_at, last_seen_at + idle_timeout_seconds * 1000000000));
