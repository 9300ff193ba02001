-- The usage flush's counters upsert, timed alone on PostgreSQL against the benchmark ledger
-- (after bench/run.sh has run, so usage_counters holds rows): 45,000 counters of one second,
-- as the JSON array the flush sends and, for comparison, as typed arrays with unnest.
--
--   psql postgres://postgres@127.0.0.1:5432/tollbooth_bench -f bench/counters_upsert.sql
--
-- Each upsert runs in a transaction that is rolled back, so the ledger is left as it was.
\timing on
CREATE TEMP TABLE src AS SELECT entitlement, period_start, customer_id, 1::bigint AS used FROM usage_counters ORDER BY random() LIMIT 45000;
SELECT count(*) FROM src;
SELECT jsonb_agg(jsonb_build_array(entitlement, period_start, customer_id, used))::text AS j FROM src \gset
SELECT array_agg(entitlement) AS e, array_agg(period_start) AS p, array_agg(customer_id) AS c, array_agg(used) AS u FROM src \gset
BEGIN;
INSERT INTO usage_counters (entitlement, period_start, customer_id, used, updated_at) SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, CAST(j.value ->> 3 AS BIGINT), 5 FROM jsonb_array_elements(CAST(:'j' AS jsonb)) AS j(value) WHERE true ON CONFLICT (entitlement, period_start) DO UPDATE SET used = usage_counters.used + excluded.used, updated_at = excluded.updated_at;
ROLLBACK;
BEGIN;
INSERT INTO usage_counters (entitlement, period_start, customer_id, used, updated_at) SELECT e, p, c, u, 5 FROM unnest(:'e'::text[], :'p'::bigint[], :'c'::text[], :'u'::bigint[]) AS t(e, p, c, u) ON CONFLICT (entitlement, period_start) DO UPDATE SET used = usage_counters.used + excluded.used, updated_at = excluded.updated_at;
ROLLBACK;
BEGIN;
INSERT INTO usage_counters (entitlement, period_start, customer_id, used, updated_at) SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, CAST(j.value ->> 3 AS BIGINT), 5 FROM jsonb_array_elements(CAST(:'j' AS jsonb)) AS j(value) WHERE true ON CONFLICT (entitlement, period_start) DO UPDATE SET used = usage_counters.used + excluded.used, updated_at = excluded.updated_at;
ROLLBACK;
BEGIN;
INSERT INTO usage_counters (entitlement, period_start, customer_id, used, updated_at) SELECT e, p, c, u, 5 FROM unnest(:'e'::text[], :'p'::bigint[], :'c'::text[], :'u'::bigint[]) AS t(e, p, c, u) ON CONFLICT (entitlement, period_start) DO UPDATE SET used = usage_counters.used + excluded.used, updated_at = excluded.updated_at;
ROLLBACK;
