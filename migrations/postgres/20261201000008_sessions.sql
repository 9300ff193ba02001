-- The account page's sign-ins, kept here so that signing out ends every copy of the cookie
-- (the cookie carries only the session's id, signed). A session ends when its customer signs
-- out (ended_at), when it expires, or when the key it was started with is revoked.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX sessions_by_customer ON sessions (customer_id);
