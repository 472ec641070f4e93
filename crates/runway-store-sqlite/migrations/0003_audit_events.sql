-- The audit log: one row per mutation, appended and never changed.
--
-- The actor is stored flat (`actor_kind` user/agent/system, with the user's or
-- agent's id and name, both NULL for the system), as `Actor::kind`, `id` and
-- `name` give it, so "what did this user do" can get an index later without a
-- migration of the data. Small rows, read by primary key order only: WITHOUT ROWID,
-- so the newest-first listing walks the primary key backwards.
--
-- Append-only is enforced twice: the code has no UPDATE or DELETE of this table,
-- and these triggers refuse one from anywhere else (a `sqlite3` shell included).
-- A future retention policy would drop them in its own migration, on purpose.

CREATE TABLE audit_events (
    id         TEXT    NOT NULL PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor_kind TEXT    NOT NULL,
    actor_id   TEXT,
    actor_name TEXT,
    action     TEXT    NOT NULL,
    subject    TEXT,
    request_id TEXT,
    detail     TEXT
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_events_are_never_updated BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_events_are_never_deleted BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
