//! The rows the store reads and writes. Integers are Unix seconds or counts; the same types
//! decode on both engines (BIGINT on PostgreSQL, INTEGER on SQLite).

use sqlx::FromRow;

/// All the gate needs to build its in-memory view.
#[derive(Debug, Default)]
pub struct LedgerRows {
    pub version: i64,
    pub keys: Vec<KeyRow>,
    pub grants: Vec<GrantRow>,
    pub items: Vec<ItemRow>,
    pub purchases: Vec<PurchaseRow>,
    pub usage: Vec<UsageRow>,
}

/// Takes the ledger's rows one at a time as they are read, in this order: keys, grants,
/// subscription items, purchases, usage counters. The gate builds its view this way, so the
/// whole ledger is never held as rows at once.
pub trait LedgerSink: Send {
    fn key(&mut self, row: KeyRow);
    fn grant(&mut self, row: GrantRow);
    fn item(&mut self, row: ItemRow);
    fn purchase(&mut self, row: PurchaseRow);
    fn usage(&mut self, row: UsageRow);
}

impl LedgerSink for LedgerRows {
    fn key(&mut self, row: KeyRow) {
        self.keys.push(row);
    }

    fn grant(&mut self, row: GrantRow) {
        self.grants.push(row);
    }

    fn item(&mut self, row: ItemRow) {
        self.items.push(row);
    }

    fn purchase(&mut self, row: PurchaseRow) {
        self.purchases.push(row);
    }

    fn usage(&mut self, row: UsageRow) {
        self.usage.push(row);
    }
}

/// An active (not revoked) key of a customer that exists.
#[derive(Debug, FromRow)]
pub struct KeyRow {
    pub id: String,
    pub customer_id: String,
    pub key_hash: String,
}

#[derive(Debug, FromRow)]
pub struct GrantRow {
    pub id: String,
    pub customer_id: String,
    pub note: Option<String>,
    pub predictors: String,
    pub quota: Option<i64>,
    pub quota_period: Option<String>,
    pub credits: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A subscription item with its subscription's state and its plan's metadata.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ItemRow {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub past_due_since: Option<i64>,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub usage_type: Option<String>,
    pub meter_event_name: Option<String>,
    pub product_name: Option<String>,
    pub product_metadata: Option<String>,
    pub price_metadata: Option<String>,
}

/// A one-time purchase with its plan's metadata.
#[derive(Debug, FromRow)]
pub struct PurchaseRow {
    pub id: String,
    pub customer_id: String,
    pub quantity: i64,
    pub paid_at: i64,
    pub refunded_at: Option<i64>,
    pub disputed_at: Option<i64>,
    pub product_name: Option<String>,
    pub product_metadata: Option<String>,
    pub price_metadata: Option<String>,
}

#[derive(Debug, FromRow)]
pub struct UsageRow {
    pub entitlement: String,
    pub period_start: i64,
    pub customer_id: String,
    pub used: i64,
}

/// Counted use not yet written, taken from the gate by the flush.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageBatch {
    pub at: i64,
    pub counters: Vec<CounterDelta>,
    pub hourly: Vec<HourlyDelta>,
    pub last_used: Vec<(String, i64)>,
    /// Use of metered prices, to report to their Billing Meters.
    pub meters: Vec<MeterDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    pub entitlement: String,
    pub period_start: i64,
    pub customer_id: String,
    pub used: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterDelta {
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
}

/// A Billing Meter event waiting in the outbox; `id` is its idempotent identifier.
#[derive(Debug, Clone, FromRow)]
pub struct MeterReport {
    pub id: String,
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
    pub created_at: i64,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyDelta {
    pub hour: i64,
    pub tag: String,
    pub key_id: String,
    pub customer_id: String,
    pub count: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, FromRow)]
pub struct CustomerListing {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
    pub active_keys: i64,
    pub grants: i64,
    pub subscriptions: i64,
}

/// A new key, with the customer to create first and the grant to give with it, if any.
#[derive(Debug)]
pub struct IssueKey {
    pub new_customer: Option<Customer>,
    pub key: NewKey,
    pub grant: Option<NewGrant>,
}

#[derive(Debug)]
pub struct NewKey {
    pub id: String,
    pub customer_id: String,
    pub key_hash: String,
    pub display_prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
}

#[derive(Debug)]
pub struct NewGrant {
    pub id: String,
    pub customer_id: String,
    pub predictors: String,
    pub quota: Option<i64>,
    pub quota_period: Option<String>,
    pub credits: Option<i64>,
    pub expires_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, FromRow)]
pub struct KeyListing {
    pub id: String,
    pub customer_id: String,
    pub email: Option<String>,
    pub display_prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked { id: String },
    AlreadyRevoked { id: String },
    NotFound,
    Ambiguous(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    /// The product's metadata as a JSON object of strings.
    pub metadata: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Price {
    pub id: String,
    pub product_id: String,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    /// `one_time` or `recurring`.
    pub price_type: String,
    pub recurring_interval: Option<String>,
    pub recurring_interval_count: Option<i64>,
    pub usage_type: Option<String>,
    /// The Billing Meter of a metered price, and the event name it counts.
    pub meter_id: Option<String>,
    pub meter_event_name: Option<String>,
    pub nickname: Option<String>,
    pub metadata: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub past_due_since: Option<i64>,
    pub created: i64,
    /// When this state was read from Stripe (milliseconds, taken before the request), the
    /// ordering guard: a state read earlier never overwrites one read later.
    pub stripe_updated: i64,
    pub items: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionItem {
    pub id: String,
    pub price_id: String,
    pub quantity: i64,
    pub current_period_start: i64,
    pub current_period_end: i64,
}

#[derive(Debug, Clone)]
pub struct Purchase {
    pub id: String,
    pub customer_id: String,
    pub price_id: String,
    pub quantity: i64,
    pub payment_intent: Option<String>,
    pub paid_at: i64,
    pub refunded_at: Option<i64>,
    pub disputed_at: Option<i64>,
}

/// A verified webhook event, as received.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct InboxEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub processed_at: Option<i64>,
}

/// A price on sale (active, of an active product), with what the plan page shows.
#[derive(Debug, Clone, FromRow)]
pub struct PlanRow {
    pub price_id: String,
    pub product_id: String,
    pub name: String,
    pub description: Option<String>,
    pub product_metadata: String,
    pub price_metadata: String,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub price_type: String,
    pub recurring_interval: Option<String>,
    pub recurring_interval_count: Option<i64>,
    pub usage_type: Option<String>,
}
