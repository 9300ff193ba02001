-- The key minted for a Checkout Session. The session id is the key, so however often the
-- welcome page is opened, and whether or not the webhook arrived first, one session reveals
-- one key, once.
CREATE TABLE checkout_keys (
    session_id  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    key_id      TEXT NOT NULL REFERENCES access_keys (id),
    created_at  INTEGER NOT NULL
);
