-- The usage tables take one bulk upsert a second. With room left on each page (fillfactor)
-- and no index on a column the upsert changes, PostgreSQL updates a row in place (a HOT
-- update) without touching any index. The index on updated_at goes for that: reading back
-- other instances' counts scans the counters instead, once per flush while another
-- instance is alive, which costs far less than an index entry for every counted row.
DROP INDEX usage_counters_updated;
ALTER TABLE usage_counters SET (fillfactor = 70);
ALTER TABLE usage_hourly SET (fillfactor = 70);
