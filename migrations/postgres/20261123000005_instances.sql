-- Each running instance says it is alive at every usage flush. Counters are read back from the
-- database only while another instance is alive, so one machine alone pays nothing for the
-- exactness of quotas across several.
CREATE TABLE instances (
    id      TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
