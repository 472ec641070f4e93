-- Disabled users (`UserAdminStore`, `users.rs`).
--
-- A disabled user keeps their row but cannot sign in; disabling deletes their
-- sessions and API tokens in the same transaction. "At least one enabled admin"
-- is checked inside each write's `BEGIN IMMEDIATE` transaction by counting the
-- rows this index covers, so it needs no counter of its own: writes are
-- serialised, and the count is read by the write that depends on it.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

CREATE INDEX users_enabled_admins ON users (role, disabled);
