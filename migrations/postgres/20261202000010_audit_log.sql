-- The audit log: one row per change of the ledger, by whom (`actor`: cli, admin:<label>,
-- customer:<id>, stripe:<event id>, reconcile, checkout:<session id>, import), what (`action`,
-- e.g. key.issued, key.revoked, subscription.synced), for which customer and object, with
-- details (JSON: before and after where it matters). Ids sort by time (microseconds, then a
-- random part), so instances writing at once never collide. Append-only: the trigger
-- refuses any update or delete, so not even a bug can rewrite history.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    customer_id TEXT,
    subject     TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_customer ON audit_log (customer_id, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
