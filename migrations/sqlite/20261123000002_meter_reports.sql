-- Metered prices: the event name of the price's Billing Meter, so use can be reported to it.
ALTER TABLE prices ADD COLUMN meter_id TEXT;
ALTER TABLE prices ADD COLUMN meter_event_name TEXT;

-- The outbox of Billing Meter events. Rows are written in the same transaction as the usage
-- they report; the id is the idempotent identifier sent to Stripe, so a retry after a lost
-- answer is never counted twice.
CREATE TABLE meter_reports (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    event_name  TEXT NOT NULL,
    value       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX meter_reports_unsent ON meter_reports (sent_at, created_at);
