-- Alerts: a quota or credits reaching a threshold (the plan's `alert_at` metadata, or the
-- customer's own), and events such as a key rolled. An alert fires once per threshold and
-- period (the unique key), and is resolved when it no longer holds (a new period, credits
-- topped up). Each state change is delivered through the outbox below, to the owner's webhook
-- and by email to the customer, retried with backoff until it is delivered.
CREATE TABLE alert_preferences (
    customer_id TEXT PRIMARY KEY,
    alert_at    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    threshold    INTEGER NOT NULL,
    period_start INTEGER NOT NULL,
    fired_at     INTEGER NOT NULL,
    resolved_at  INTEGER,
    detail       TEXT NOT NULL,
    UNIQUE (customer_id, kind, subject, threshold, period_start)
);
CREATE INDEX alerts_open ON alerts (resolved_at, kind);

CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT,
    payload         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    given_up_at     INTEGER,
    last_error      TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (delivered_at, given_up_at, next_attempt_at);
