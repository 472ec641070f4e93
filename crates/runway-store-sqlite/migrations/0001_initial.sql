-- Runway's first schema.
--
-- Conventions (see the crate docs for why):
--   * ids are ULID text, so `ORDER BY id DESC` is newest first;
--   * timestamps are INTEGER unix nanoseconds, so records round-trip exactly;
--   * lists and maps are JSON text, enums their `as_str()` form;
--   * references between aggregates (a session's user, an agent's registration
--     token) are deliberately NOT foreign keys: DynamoDB cannot enforce them, and
--     both backends must behave identically. Only a job's attempts, which belong
--     to the job, cascade from it.
--   * small, hot records (users, sessions, tokens, agents) are WITHOUT ROWID tables,
--     so a point read by id is one B-tree descent instead of two. Jobs keep a rowid
--     because their scripts can be large (SQLite advises against WITHOUT ROWID for
--     rows bigger than about a twentieth of a page).

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    password_hash TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX users_by_username ON users (username);

CREATE TABLE sessions (
    id                   TEXT    NOT NULL PRIMARY KEY,
    user_id              TEXT    NOT NULL,
    username             TEXT    NOT NULL,
    role                 TEXT    NOT NULL,
    device_name          TEXT,
    user_agent           TEXT,
    ip                   TEXT,
    created_at           INTEGER NOT NULL,
    last_seen_at         INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    idle_timeout_seconds INTEGER NOT NULL,
    token_hash           TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- "My devices" (newest first) and "sign me out everywhere".
CREATE INDEX sessions_by_user ON sessions (user_id, id);

CREATE TABLE registration_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    description TEXT,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    token_hash  TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX registration_tokens_by_hash ON registration_tokens (token_hash);

CREATE TABLE agents (
    id                    TEXT    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL,
    region                TEXT,
    labels                TEXT    NOT NULL,
    queue                 TEXT    NOT NULL,
    capacity              INTEGER NOT NULL,
    version               TEXT,
    created_at            INTEGER NOT NULL,
    last_heartbeat_at     INTEGER,
    cpu_percent           REAL,
    memory_percent        REAL,
    disk_percent          REAL,
    load_average          REAL,
    running_jobs          INTEGER,
    registration_token_id TEXT    NOT NULL,
    token_hash            TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX agents_by_token_hash ON agents (token_hash);
CREATE INDEX agents_by_region ON agents (region, id);

CREATE TABLE jobs (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    script          TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    labels          TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    max_retries     INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    attempt_count   INTEGER NOT NULL
) STRICT;

-- The status-filtered listing, newest first.
CREATE INDEX jobs_by_status ON jobs (status, id);

CREATE TABLE job_attempts (
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    agent_id    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    exit_code   INTEGER,
    PRIMARY KEY (job_id, number)
) STRICT, WITHOUT ROWID;
