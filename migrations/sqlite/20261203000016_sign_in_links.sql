-- Sign-in by email: a customer who lost every key asks for a link sent to their email. The
-- link's token is kept only as its SHA-256; it works once (used_at), within 15 minutes.
CREATE TABLE sign_in_links (
    token_hash  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX sign_in_links_expires ON sign_in_links (expires_at);

-- A session started from such a link has no key: key_id becomes optional (SQLite cannot drop a
-- NOT NULL, so the table is made again with the same rows).
CREATE TABLE sessions_new (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    key_id      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
INSERT INTO sessions_new (id, customer_id, key_id, created_at, expires_at, ended_at)
    SELECT id, customer_id, key_id, created_at, expires_at, ended_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_customer ON sessions (customer_id);
