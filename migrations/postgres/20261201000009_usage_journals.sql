-- Usage journals written to local disk while the database could not be written, by id, once
-- their counts are in the database: written in the same transaction as the counts, so a
-- journal replayed after a crash, or superseded by a later write from memory, counts once.
CREATE TABLE usage_journals (
    id         TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
