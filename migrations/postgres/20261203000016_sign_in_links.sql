-- Sign-in by email: a customer who lost every key asks for a link sent to their email. The
-- link's token is kept only as its SHA-256; it works once (used_at), within 15 minutes.
CREATE TABLE sign_in_links (
    token_hash  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX sign_in_links_expires ON sign_in_links (expires_at);

-- A session started from such a link has no key.
ALTER TABLE sessions ALTER COLUMN key_id DROP NOT NULL;
