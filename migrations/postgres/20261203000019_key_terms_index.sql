-- The few keys with terms of their own (a roll's end, a cap) are read apart from the scan of
-- every key, through this partial index.
CREATE INDEX access_keys_with_terms ON access_keys (customer_id)
    WHERE expires_at IS NOT NULL OR cap IS NOT NULL;
