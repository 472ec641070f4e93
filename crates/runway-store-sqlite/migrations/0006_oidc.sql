-- OpenID Connect sign-in (`OidcLoginStore`, `OidcIdentityStore`).

-- A login between the redirect to the issuer and its callback, at most ten
-- minutes. Keyed by the SHA-256 of the `state` parameter (never the state itself);
-- the callback deletes the row it uses (`DELETE … RETURNING`), so a state works
-- once. The nonce and the PKCE verifier must be kept as they are: the callback
-- sends the verifier to the issuer and compares the nonce with the ID token's.
CREATE TABLE oidc_logins (
    state_hash    TEXT    NOT NULL PRIMARY KEY,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    return_to     TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Who an issuer says a user is: (iss, sub), stable and unique per the spec. A
-- user is found by this pair on every OIDC sign-in, never by email.
CREATE TABLE oidc_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject)
) STRICT, WITHOUT ROWID;

CREATE INDEX oidc_identities_by_user ON oidc_identities (user_id);
