-- What each Billing Meter reads from an event's payload (its customer_mapping and
-- value_settings), learnt when the meter is read, so reports use the meter's own keys.
CREATE TABLE billing_meters (
    event_name   TEXT PRIMARY KEY,
    meter_id     TEXT NOT NULL,
    customer_key TEXT NOT NULL,
    value_key    TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- A meter report Stripe refused for good (a bad request, say a timestamp older than Stripe
-- accepts) is set aside so the reports after it still go out; `tollbooth events` lists it.
ALTER TABLE meter_reports ADD COLUMN set_aside_at BIGINT;
