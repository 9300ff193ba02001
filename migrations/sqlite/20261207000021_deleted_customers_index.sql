-- The few deleted customers are read apart from the scan of every key, through this partial
-- index, so that scan need not find each key's customer.
CREATE INDEX customers_deleted ON customers (id) WHERE deleted_at IS NOT NULL;
