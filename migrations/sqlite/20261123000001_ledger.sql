-- The ledger: who the customers are, which keys they hold, and what gives them access.
-- Times are Unix seconds (INTEGER), ids are TEXT, metadata is a JSON object stored as TEXT,
-- so that the same queries read the same types on SQLite and on PostgreSQL.

-- Instance-wide values the service generates once and keeps (e.g. the authorize token).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row. `version` is bumped by every write that changes who may predict, so every running
-- process (server, CLI, other instances) can tell cheaply that its in-memory view is stale.
CREATE TABLE ledger_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO ledger_state (id, version) VALUES (1, 0);

-- Stripe customers keep their Stripe id (cus_...); customers created by hand get a local id.
CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    email      TEXT,
    name       TEXT,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX customers_email ON customers (lower(email));

-- Access keys are stored only as the SHA-256 of the key; the display prefix lets a person
-- tell their keys apart without the key itself.
CREATE TABLE access_keys (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers (id),
    key_hash       TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    name           TEXT,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX access_keys_customer ON access_keys (customer_id);
CREATE INDEX access_keys_display_prefix ON access_keys (display_prefix);

-- Written behind by the usage flush; kept apart from access_keys so that recording use never
-- looks like a change of the ledger.
CREATE TABLE key_activity (
    key_id       TEXT PRIMARY KEY REFERENCES access_keys (id),
    last_used_at INTEGER NOT NULL
);

-- Access given by the owner by hand (`tollbooth keys issue --grant ...`).
CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    predictors   TEXT NOT NULL,
    quota        INTEGER,
    quota_period TEXT CHECK (quota_period IN ('day', 'month')),
    credits      INTEGER,
    expires_at   INTEGER,
    note         TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX grants_customer ON grants (customer_id);

-- The catalog, synced from Stripe with the owner's tollbooth metadata.
CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    active      BOOLEAN NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    updated_at  INTEGER NOT NULL
);

CREATE TABLE prices (
    id                       TEXT PRIMARY KEY,
    product_id               TEXT NOT NULL,
    active                   BOOLEAN NOT NULL,
    currency                 TEXT NOT NULL,
    unit_amount              INTEGER,
    price_type               TEXT NOT NULL CHECK (price_type IN ('one_time', 'recurring')),
    recurring_interval       TEXT,
    recurring_interval_count INTEGER,
    usage_type               TEXT,
    nickname                 TEXT,
    metadata                 TEXT NOT NULL DEFAULT '{}',
    updated_at               INTEGER NOT NULL
);
CREATE INDEX prices_product ON prices (product_id);

-- `stripe_updated` is the ordering guard: when this state was read from Stripe (milliseconds,
-- taken before the request); a state read earlier never overwrites one read later.
CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL REFERENCES customers (id),
    status               TEXT NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_at            INTEGER,
    canceled_at          INTEGER,
    ended_at             INTEGER,
    past_due_since       INTEGER,
    created              INTEGER NOT NULL,
    stripe_updated       INTEGER NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

-- At the current Stripe API version the billing period lives on each item.
CREATE TABLE subscription_items (
    id                   TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    price_id             TEXT NOT NULL,
    quantity             INTEGER NOT NULL DEFAULT 1,
    current_period_start INTEGER NOT NULL,
    current_period_end   INTEGER NOT NULL
);
CREATE INDEX subscription_items_subscription ON subscription_items (subscription_id);

-- One-time payments (a completed Checkout Session in payment mode). `credits` is what the
-- purchase granted in all (metadata credits x quantity); a refund or dispute takes it back.
CREATE TABLE purchases (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    price_id        TEXT NOT NULL,
    quantity        INTEGER NOT NULL DEFAULT 1,
    payment_intent  TEXT,
    paid_at         INTEGER NOT NULL,
    refunded_at     INTEGER,
    disputed_at     INTEGER
);
CREATE INDEX purchases_customer ON purchases (customer_id);
CREATE INDEX purchases_payment_intent ON purchases (payment_intent);

-- What each entitlement has used in a period (period_start 0 = lifetime, for credits).
-- The gate enforces quotas and credits from these counts.
CREATE TABLE usage_counters (
    entitlement  TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    customer_id  TEXT NOT NULL,
    used         INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (entitlement, period_start)
);
CREATE INDEX usage_counters_customer ON usage_counters (customer_id);

-- Allowed predictions per hour, predictor and key, for the owner's charts and reports.
CREATE TABLE usage_hourly (
    hour        INTEGER NOT NULL,
    tag         TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (hour, tag, key_id)
);
CREATE INDEX usage_hourly_customer ON usage_hourly (customer_id, hour);

-- The webhook inbox: the Stripe event id is the key, so a redelivery is a no-op.
CREATE TABLE stripe_events (
    id              TEXT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    created         INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    processed_at    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX stripe_events_pending ON stripe_events (processed_at, next_attempt_at);
