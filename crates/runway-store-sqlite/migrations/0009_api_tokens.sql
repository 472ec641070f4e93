-- Personal API tokens (`ApiTokenStore`, `api_tokens.rs`).
--
-- A token embeds its id, so validating one is a read by primary key; the row
-- carries a copy of the user's name and role, like a session, so that read is
-- the only one. Only the SHA-256 of the token is kept. `expires_at` is NULL for
-- a token that never expires; expiry is decided in code, never by a sweep.
CREATE TABLE api_tokens (
    id               TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    role             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    read_only        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    token_hash       TEXT    NOT NULL,
    credential_epoch INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A user's tokens, newest first; counting them against the bound; deleting them
-- all when the user is disabled or deleted.
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, id);
