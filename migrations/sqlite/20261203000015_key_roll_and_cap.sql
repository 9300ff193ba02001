-- A key rolled with a grace period keeps working until `expires_at`, then is refused with a
-- message naming the key that replaced it (`replaced_by`). A key may carry its own cap on top of
-- the customer's plans, which all their keys share: `cap` predictions per `cap_period`
-- ('day' or 'month', calendar UTC) or in total ('total'). Its use is counted in usage_counters
-- under the entitlement name 'key:<key id>', like a quota, so it holds across instances.
ALTER TABLE access_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE access_keys ADD COLUMN replaced_by TEXT;
ALTER TABLE access_keys ADD COLUMN cap INTEGER;
ALTER TABLE access_keys ADD COLUMN cap_period TEXT;
