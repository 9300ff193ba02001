-- Authorizations refused, per hour (its start, Unix seconds) and reason (the metrics' label:
-- unknown_key, quota_used, canceled, …), written by the usage flush from the per-thread
-- counters, so the owner can read why customers are refused over days (`tollbooth usage`).
-- Several instances add to the same rows.
CREATE TABLE refusals_hourly (
    hour   BIGINT NOT NULL,
    reason TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (hour, reason)
);
