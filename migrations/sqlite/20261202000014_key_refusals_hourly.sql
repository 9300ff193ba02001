-- Authorizations refused for a known key, per hour, key and reason (the metrics' label:
-- quota_used, canceled, …), written with the per-hour activity by the usage flush, so the owner
-- sees a customer's recent refusals. Refusals of keys that are not known (mistyped, revoked,
-- never issued) have no customer and are counted in refusals_hourly only.
CREATE TABLE key_refusals_hourly (
    hour        INTEGER NOT NULL,
    key_id      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (hour, key_id, reason)
);
CREATE INDEX key_refusals_hourly_customer ON key_refusals_hourly (customer_id, hour);
