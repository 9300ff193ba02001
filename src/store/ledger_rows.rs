//! The ledger's rows as the gate reads them, and the sink that takes them one at a time.

use serde::Deserialize;
use sqlx::FromRow;

/// All the gate needs to build its in-memory view.
#[derive(Debug, Default)]
pub struct LedgerRows {
    pub version: i64,
    pub keys: Vec<KeyRow>,
    /// The few keys with terms of their own (a roll's end, a cap), read apart so the scan of
    /// every key copies only what every key has.
    pub key_terms: Vec<KeyRow>,
    /// The prices the items and purchases name, each with its product, read once however
    /// many rows name it.
    pub prices: Vec<PriceRow>,
    pub grants: Vec<GrantRow>,
    pub items: Vec<ItemRow>,
    pub purchases: Vec<PurchaseRow>,
    pub usage: Vec<UsageRow>,
}

/// Takes the ledger's rows one at a time as they are read, in this order: keys, prices,
/// grants, subscription items, purchases, usage counters. The gate builds its view this way,
/// so the whole ledger is never held as rows at once.
pub trait LedgerSink: Send {
    fn key(&mut self, row: KeyRow);
    /// A key already given to [`Self::key`], with its own terms.
    fn key_terms(&mut self, row: KeyRow);
    /// A price that items and purchases given after it may name.
    fn price(&mut self, row: PriceRow);
    fn grant(&mut self, row: GrantRow);
    fn item(&mut self, row: ItemRow);
    fn purchase(&mut self, row: PurchaseRow);
    fn usage(&mut self, row: UsageRow);
}

impl LedgerSink for LedgerRows {
    fn key(&mut self, row: KeyRow) {
        self.keys.push(row);
    }

    fn key_terms(&mut self, row: KeyRow) {
        self.key_terms.push(row);
    }

    fn price(&mut self, row: PriceRow) {
        self.prices.push(row);
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

/// An active (not revoked) key of a customer that exists, with what it carries of its own:
/// when it stops, if it was rolled, and its cap.
#[derive(Debug, Default, FromRow, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub customer_id: String,
    pub key_hash: String,
    #[sqlx(default)]
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[sqlx(default)]
    #[serde(default)]
    pub cap: Option<i64>,
    #[sqlx(default)]
    #[serde(default)]
    pub cap_period: Option<String>,
}

/// Each kind of row carries the time its customer's entitlements of that kind are ordered by
/// (oldest first, then by id): grants by when they were made, subscription items by their
/// subscription's start, purchases by when they were paid.
#[derive(Debug, FromRow, Deserialize)]
pub struct GrantRow {
    pub id: String,
    pub customer_id: String,
    pub note: Option<String>,
    pub predictors: String,
    pub quota: Option<i64>,
    pub quota_period: Option<String>,
    pub credits: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// A subscription item with its subscription's state; its plan is its price's
/// ([`PriceRow`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Deserialize)]
pub struct ItemRow {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    #[serde(deserialize_with = "flag")]
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub past_due_since: Option<i64>,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub price_id: String,
    /// When its subscription started.
    pub created: i64,
}

/// A one-time purchase; its plan is its price's ([`PriceRow`]).
#[derive(Debug, FromRow, Deserialize)]
pub struct PurchaseRow {
    pub id: String,
    pub customer_id: String,
    pub quantity: i64,
    pub paid_at: i64,
    pub refunded_at: Option<i64>,
    pub disputed_at: Option<i64>,
    pub price_id: String,
}

/// A price with what makes a plan of it: how it bills, its meter, and its product's name
/// and metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow, Deserialize)]
pub struct PriceRow {
    pub id: String,
    pub usage_type: Option<String>,
    pub meter_event_name: Option<String>,
    pub product_name: Option<String>,
    pub product_metadata: Option<String>,
    pub price_metadata: Option<String>,
}

/// A usage counter as stored: an entitlement's use in the period starting at `period_start`.
#[derive(Debug, FromRow, Deserialize)]
pub struct UsageRow {
    pub entitlement: String,
    pub period_start: i64,
    pub customer_id: String,
    pub used: i64,
}

/// A boolean as SQLite packs it (0 or 1) or as JSON writes it.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean, or 0 or 1")
        }

        fn visit_bool<E>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }

        fn visit_i64<E>(self, n: i64) -> Result<bool, E> {
            Ok(n != 0)
        }

        fn visit_u64<E>(self, n: u64) -> Result<bool, E> {
            Ok(n != 0)
        }
    }
    d.deserialize_any(Flag)
}
