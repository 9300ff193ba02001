-- Several instances work one inbox: an instance claims due events for a while (a lease), so
-- no event is processed by two at once, and a crashed instance's claims lapse.
ALTER TABLE stripe_events ADD COLUMN claimed_until INTEGER;
-- Counters other instances wrote recently are read back by updated_at.
CREATE INDEX usage_counters_updated ON usage_counters (updated_at);
