-- Answers to the admin API's POST requests that carried an Idempotency-Key, so a retry within
-- 24 hours gets the first answer and nothing is done twice. Neither the Idempotency-Key nor
-- the answer is stored as sent: the row is found by a hash of the token's label and the key,
-- and the answer (which may hold a new access key) is encrypted under a key derived from the
-- Idempotency-Key, which only the caller holds. `answer` is NULL while the first request runs.
CREATE TABLE admin_requests (
    id          TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      BIGINT,
    answer      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX admin_requests_created ON admin_requests (created_at);
