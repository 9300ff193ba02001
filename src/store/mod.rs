//! The ledger's storage: one [`Store`] trait, an SQLite and a PostgreSQL implementation, chosen
//! from the `DATABASE_URL` scheme at start.

mod postgres;
mod records;
mod shared;
mod sqlite;
pub mod transfer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use postgres::PgStore;
pub use records::*;
pub use sqlite::SqliteStore;

/// What trait methods return, so that `dyn Store` works without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the service and the CLI read from or write to the ledger.
///
/// Every write that changes who may predict bumps the ledger version in the same transaction,
/// which is how running processes learn that their in-memory view is stale.
/// How many versions of [`LedgerChange`] are kept; a gate further behind reloads everything.
pub const CHANGES_KEPT: i64 = 10_000;

/// A version of the ledger and the customer it changed (`None`: possibly many).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerChange {
    pub version: i64,
    pub customer_id: Option<String>,
}

pub trait Store: Send + Sync {
    /// `"sqlite"` or `"postgres"`, for the start-up summary and `/readyz`.
    fn engine(&self) -> &'static str;
    fn migrate(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    fn ping(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    fn close(&self) -> BoxFuture<'_, ()>;

    fn setting(&self, name: &'static str) -> BoxFuture<'_, anyhow::Result<Option<String>>>;
    /// Stores `value` unless a value exists; returns the one that is stored (first writer wins).
    fn setting_or_insert<'a>(
        &'a self,
        name: &'static str,
        value: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<String>>;

    fn ledger_version(&self) -> BoxFuture<'_, anyhow::Result<i64>>;
    /// Everything the gate needs, in one consistent read, handed to `sink` row by row;
    /// returns the ledger version read.
    fn load_ledger_into<'a>(
        &'a self,
        now: i64,
        sink: &'a mut dyn LedgerSink,
    ) -> BoxFuture<'a, anyhow::Result<i64>>;
    /// Everything the gate needs, in one consistent read.
    fn load_ledger(&self, now: i64) -> BoxFuture<'_, anyhow::Result<LedgerRows>> {
        Box::pin(async move {
            let mut rows = LedgerRows::default();
            rows.version = self.load_ledger_into(now, &mut rows).await?;
            Ok(rows)
        })
    }
    /// The rows of the one customer who holds the (active) key with this hash: what the gate
    /// needs to answer for that key before the whole ledger is loaded.
    fn load_customer_of_key<'a>(
        &'a self,
        key_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>>;
    /// The customer each version after `after` changed, oldest first (`None`: possibly many),
    /// or `None` when changes that far back are no longer kept.
    fn ledger_changes(
        &self,
        after: i64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<LedgerChange>>>>;
    /// One customer's rows, as [`Self::load_ledger`] reads them for everyone (empty if the
    /// customer has no active key or was deleted).
    fn load_customer<'a>(
        &'a self,
        customer_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>>;
    /// Adds counted use; usage writes do not bump the ledger version.
    fn flush_usage<'a>(&'a self, batch: &'a UsageBatch) -> BoxFuture<'a, anyhow::Result<()>>;

    fn customer<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Customer>>>;
    fn customers_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Customer>>>;
    fn list_customers(&self) -> BoxFuture<'_, anyhow::Result<Vec<CustomerListing>>>;
    /// Creates or updates a customer known from Stripe (or made by hand).
    fn upsert_customer<'a>(&'a self, customer: &'a Customer) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Creates the key (and the customer and the grant, when given) in one transaction.
    fn issue_key<'a>(&'a self, issue: &'a IssueKey) -> BoxFuture<'a, anyhow::Result<()>>;
    fn list_keys<'a>(
        &'a self,
        customer_id: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>>;
    /// Revokes the key whose id or display prefix is `selector`.
    fn revoke_key<'a>(
        &'a self,
        selector: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<RevokeOutcome>>;

    fn upsert_product<'a>(&'a self, product: &'a Product) -> BoxFuture<'a, anyhow::Result<()>>;
    fn upsert_price<'a>(&'a self, price: &'a Price) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Writes a subscription and replaces its items, unless the stored copy is newer
    /// (`stripe_updated`); returns whether it was written.
    fn put_subscription<'a>(
        &'a self,
        subscription: &'a Subscription,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    fn put_purchase<'a>(&'a self, purchase: &'a Purchase) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Marks a customer deleted in Stripe: their keys stop working.
    fn delete_customer<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Ids of the products and prices stored as active.
    fn active_catalog(&self) -> BoxFuture<'_, anyhow::Result<(Vec<String>, Vec<String>)>>;
    /// Marks products and prices that Stripe no longer has as inactive.
    fn deactivate_catalog<'a>(
        &'a self,
        products: &'a [String],
        prices: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Prices on sale, with their products, for the plans page.
    fn catalog(&self) -> BoxFuture<'_, anyhow::Result<Vec<PlanRow>>>;
    /// Stores the key of a Checkout Session unless that session already has one; returns
    /// whether this key is the session's (and may be shown).
    fn issue_key_for_session<'a>(
        &'a self,
        session_id: &'a str,
        issue: &'a IssueKey,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;

    /// Billing Meter events not yet accepted by Stripe, oldest first.
    fn unsent_meter_reports(&self, limit: i64) -> BoxFuture<'_, anyhow::Result<Vec<MeterReport>>>;
    /// Records an attempt to send a meter event: sent when `error` is `None`.
    fn meter_report_done<'a>(
        &'a self,
        id: &'a str,
        error: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Every row of every ledger table (`transfer::TABLES`), for `tollbooth export`.
    fn export(&self) -> BoxFuture<'_, anyhow::Result<Vec<transfer::TableRows>>>;
    /// Writes exported rows into this (empty) ledger in one transaction.
    fn import<'a>(
        &'a self,
        tables: &'a [transfer::TableRows],
    ) -> BoxFuture<'a, anyhow::Result<usize>>;

    /// Stores a verified webhook event; returns false if its id was already stored.
    fn insert_event<'a>(&'a self, event: &'a NewEvent) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Claims unprocessed events whose next attempt is due and that no other instance holds,
    /// for `lease` seconds; oldest first. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets
    /// instances claim side by side without waiting on each other.
    fn claim_events(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>>;
    /// Says this instance is alive; returns how many other instances were alive in the last
    /// ten seconds.
    fn heartbeat<'a>(&'a self, instance: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<i64>>;
    /// Says this instance has stopped.
    fn leave<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Usage counters written since `since` (by any instance), to fold into this one's view.
    fn usage_since(&self, since: i64) -> BoxFuture<'_, anyhow::Result<Vec<UsageRow>>>;
    /// Rings when another process changed the ledger, where the engine can tell (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` means polling alone.
    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>>;
    fn stripe_event<'a>(&'a self, id: &'a str)
    -> BoxFuture<'a, anyhow::Result<Option<InboxEvent>>>;
    /// Unprocessed events that have failed at least once, with their last error.
    fn failed_events(&self) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>>;
    fn event_done<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    fn event_failed<'a>(
        &'a self,
        id: &'a str,
        error: &'a str,
        retry_at: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Opens the store named by `url`: `postgres://…` or `postgresql://…` for PostgreSQL, anything
/// else (`sqlite://path`, or a bare path) for an SQLite file created if missing.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    }
}
