-- Which customer each ledger version changed (NULL: the catalog or anything else that may
-- touch many customers). A running gate catches up by reloading only those customers, and
-- reloads everything when a NULL or a gap (changes older than the kept window) comes up.
CREATE TABLE ledger_changes (
    version     BIGINT PRIMARY KEY,
    customer_id TEXT
);
