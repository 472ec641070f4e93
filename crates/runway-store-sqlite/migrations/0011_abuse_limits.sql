-- Abuse-limit counters (`LimitStore`): recent attempts per key, where a key is a
-- scope and the SHA-256 of what it limits (a username, an address, a token),
-- never the value itself. A counter is forgotten at `expires_at` (a window after
-- its latest attempt): reads decide that from `now`, and the reaper deletes
-- expired rows in bounded batches through `abuse_counters_by_expiry`.
CREATE TABLE abuse_counters (
    limit_key     TEXT    NOT NULL PRIMARY KEY,
    attempts      INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    -- The count whose lockout was last reported (audited), so each lockout is
    -- reported once.
    refused_count INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX abuse_counters_by_expiry ON abuse_counters (expires_at);
