-- An instance alone on the database appends each flush's counts here, one row a flush (the
-- counters as a JSON array of [entitlement, period_start, customer_id, used]), and folds its
-- rows into usage_counters about once a minute: appending is a write at the table's end,
-- where adding to counters spread over the table rewrites most of its pages every second.
-- Whoever deletes a row adds it to the counters in the same transaction, so a row counts
-- once; a start folds every row it finds (those of a process that crashed, too).
CREATE TABLE usage_log (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance TEXT NOT NULL,
    at       BIGINT NOT NULL,
    counters TEXT NOT NULL
);
