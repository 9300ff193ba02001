-- Sign-ins to the owner's dashboard (/admin) with an admin token, kept here so that signing out
-- ends every copy of the cookie. `token_digest` is the SHA-256 of the token signed in with: a
-- session ends when that token is no longer in ADMIN_TOKEN.
CREATE TABLE admin_sessions (
    id           TEXT PRIMARY KEY,
    label        TEXT NOT NULL,
    token_digest TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
