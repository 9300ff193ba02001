//! What the gate reads: the rows its in-memory view is built from, in one consistent read, and
//! the ledger's version with the customers each version changed, so a running gate can tell it
//! is stale and read again only what changed.
//!
//! Every write that changes who may predict calls [`record_change`] in its transaction.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context as _;
use sqlx::FromRow;
use tokio::sync::Notify;

use serde::de::DeserializeOwned;

use super::ledger_rows::{KeyRow, LedgerRows, LedgerSink};
use super::sql::{Arg, Packed, Record, Statement, Tx, sql};
use super::{BoxFuture, Db};

/// How many versions of [`LedgerChange`] are kept; a gate further behind reloads everything.
pub const CHANGES_KEPT: i64 = 10_000;

pub trait Snapshot: Send + Sync {
    fn ledger_version(&self) -> BoxFuture<'_, anyhow::Result<i64>>;
    /// Everything the gate needs, in one consistent read, handed to `sink` row by row;
    /// returns the ledger version read.
    fn load_ledger_into<'a>(
        &'a self,
        now: i64,
        sink: &'a mut dyn LedgerSink,
    ) -> BoxFuture<'a, anyhow::Result<i64>>;
    /// One customer's rows, as [`Self::load_ledger_into`] reads them for everyone (empty if
    /// the customer has no active key or was deleted).
    fn load_customer<'a>(
        &'a self,
        customer_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>>;
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
    /// Rings when another process changed the ledger, where the engine can tell (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` means polling alone.
    fn change_signal(&self) -> Option<Arc<Notify>>;
}

/// A version of the ledger and the customer it changed (`None`: possibly many).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LedgerChange {
    pub version: i64,
    pub customer_id: Option<String>,
}

/// Whose rows a read takes.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Everyone,
    Customer(&'a str),
    /// The customer holding the active key with this hash.
    HolderOf(&'a str),
}

impl Scope<'_> {
    /// `select` (with its own parameters `fixed`, numbered from `$1`) limited to the scope's
    /// customer by `column`.
    fn statement(&self, select: &str, column: &str, fixed: Vec<Arg>) -> Statement {
        self.filtered(select, |customer| format!("{column} = {customer}"), fixed)
    }

    /// `select` (with its own parameters `fixed`) and, unless the scope is everyone,
    /// ` AND ` the condition `filter` makes of the scope's customer (an expression, which it
    /// may use more than once).
    fn filtered(
        &self,
        select: &str,
        filter: impl Fn(&str) -> String,
        fixed: Vec<Arg>,
    ) -> Statement {
        let n = fixed.len() + 1;
        let filter = match self {
            Self::Everyone => String::new(),
            Self::Customer(_) => format!(" AND {}", filter(&format!("${n}"))),
            Self::HolderOf(_) => format!(
                " AND {}",
                filter(&format!(
                    "(SELECT customer_id FROM access_keys \
                     WHERE key_hash = ${n} AND revoked_at IS NULL)"
                ))
            ),
        };
        let mut statement = Statement::assembled(format!("{select}{filter}"));
        for arg in fixed {
            statement = statement.bind(arg);
        }
        match self {
            Self::Everyone => statement,
            Self::Customer(id) | Self::HolderOf(id) => statement.bind(*id),
        }
    }

    /// Hands the scope's rows of `table` to `each`: everyone's packed where the engine gains
    /// by it (a read of the whole ledger), one customer's streamed.
    async fn for_each<T: Record + DeserializeOwned>(
        &self,
        tx: &mut Tx,
        table: &Table,
        fixed: Vec<Arg>,
        each: impl FnMut(T) + Send,
    ) -> anyhow::Result<()> {
        let packed = table.packed(fixed);
        if let Self::Everyone = self {
            return tx.for_each_packed(packed, each).await;
        }
        let statement = self.statement(&packed.select(), table.customer, packed.args);
        tx.for_each(statement, each).await
    }
}

/// Ended subscriptions are kept for a year so a denial can say when they ended.
const ENDED_KEPT: i64 = 366 * 86_400;
/// The keys the gate holds: not revoked, of a customer not deleted, and, if rolled, stopped
/// less than [`ROLLED_KEPT`] ago (`$1`: now less that).
const LIVE_KEYS: &str = "FROM access_keys k JOIN customers c ON c.id = k.customer_id \
     WHERE k.revoked_at IS NULL AND c.deleted_at IS NULL \
       AND (k.expires_at IS NULL OR k.expires_at > $1)";

/// A rolled key is refused as rolled for this long after it stopped, then as unknown.
const ROLLED_KEPT: i64 = 90 * 86_400;
/// Counters of periods that started this long ago no longer matter to any limit.
const USAGE_KEPT: i64 = 62 * 86_400;

/// Reads the scope's rows in one consistent snapshot, each handed to `sink` as it is
/// decoded, so no table is ever held whole; returns the ledger version read. Rows come in no
/// particular order: the gate puts each customer's entitlements in order itself.
async fn read(
    db: &Db,
    now: i64,
    scope: Scope<'_>,
    sink: &mut dyn LedgerSink,
) -> anyhow::Result<i64> {
    let mut tx = db.begin_read().await?;
    let version = current_version(&mut tx).await?;
    let items_kept = || vec![(now - ENDED_KEPT).into()];
    // Everyone's subscription items join two large tables, and PostgreSQL builds the join's
    // hash before it sends a row: at a million keys, 0.3-0.5 s with nothing else to do
    // (bench/results/2026-12-08-ahead.md). Sent first, on a second connection in the same
    // snapshot, the hash is built while the rows before are read.
    let beside = match scope {
        Scope::Everyone => db.begin_read_beside(&mut tx).await?,
        Scope::Customer(_) | Scope::HolderOf(_) => None,
    };
    match beside {
        Some(mut beside) => {
            let mut items = beside.ahead(ITEMS.packed(items_kept()))?;
            let items_ready = async { items.ready().await.context("Failed to load subscriptions") };
            tokio::try_join!(read_before_items(&mut tx, now, scope, sink), items_ready)?;
            items
                .for_each(|row| sink.item(row))
                .await
                .context("Failed to load subscriptions")?;
            beside
                .commit()
                .await
                .context("Failed to end the ledger read")?;
        }
        None => {
            read_before_items(&mut tx, now, scope, sink).await?;
            scope
                .for_each(&mut tx, &ITEMS, items_kept(), |row| sink.item(row))
                .await
                .context("Failed to load subscriptions")?;
        }
    }
    scope
        .for_each(&mut tx, &PURCHASES, vec![], |row| sink.purchase(row))
        .await
        .context("Failed to load purchases")?;
    scope
        .for_each(&mut tx, &USAGE, vec![(now - USAGE_KEPT).into()], |row| {
            sink.usage(row)
        })
        .await
        .context("Failed to load usage counters")?;
    tx.commit().await.context("Failed to end the ledger read")?;
    Ok(version)
}

/// What [`read`] reads before the subscription items: keys, their own terms, prices, grants.
async fn read_before_items(
    tx: &mut Tx,
    now: i64,
    scope: Scope<'_>,
    sink: &mut dyn LedgerSink,
) -> anyhow::Result<()> {
    let rolled_kept = || vec![(now - ROLLED_KEPT).into()];
    read_keys(tx, scope, rolled_kept(), sink)
        .await
        .context("Failed to load access keys")?;
    // Found through the partial index on keys with terms: streamed, as they are few.
    let terms = scope.statement(
        &format!(
            "SELECT k.id, k.customer_id, k.key_hash, k.expires_at, k.cap, k.cap_period \
             {LIVE_KEYS} AND (k.expires_at IS NOT NULL OR k.cap IS NOT NULL)"
        ),
        "k.customer_id",
        rolled_kept(),
    );
    tx.for_each(terms, |row| sink.key_terms(row))
        .await
        .context("Failed to load the keys' own terms")?;
    // Few (a catalog), and each read once rather than joined to every row that names it.
    let prices = scope.filtered(
        "SELECT p.id, p.usage_type, p.meter_event_name, pr.name AS product_name, \
                pr.metadata AS product_metadata, p.metadata AS price_metadata \
         FROM prices p LEFT JOIN products pr ON pr.id = p.product_id WHERE true",
        |customer| {
            format!(
                "p.id IN (SELECT si.price_id FROM subscription_items si \
                     JOIN subscriptions s ON s.id = si.subscription_id \
                     WHERE s.customer_id = {customer} \
                   UNION SELECT pu.price_id FROM purchases pu WHERE pu.customer_id = {customer})"
            )
        },
        vec![],
    );
    tx.for_each(prices, |row| sink.price(row))
        .await
        .context("Failed to load prices")?;
    scope
        .for_each(tx, &GRANTS, vec![], |row| sink.grant(row))
        .await
        .context("Failed to load grants")
}

/// The scope's live keys. Everyone's are read without their customers (at a million keys,
/// SQLite finding each key's customer by its id took half the keys' read): the customers
/// deleted, few and found through an index of their own, are read first and their keys
/// skipped.
async fn read_keys(
    tx: &mut Tx,
    scope: Scope<'_>,
    fixed: Vec<Arg>,
    sink: &mut dyn LedgerSink,
) -> anyhow::Result<()> {
    let Scope::Everyone = scope else {
        return scope.for_each(tx, &KEYS, fixed, |row| sink.key(row)).await;
    };
    let mut deleted = HashSet::new();
    tx.for_each(
        sql("SELECT id FROM customers WHERE deleted_at IS NOT NULL"),
        |(id,): (String,)| {
            deleted.insert(id);
        },
    )
    .await?;
    scope
        .for_each(tx, &EVERYONES_KEYS, fixed, |row: KeyRow| {
            if !deleted.contains(&row.customer_id) {
                sink.key(row);
            }
        })
        .await
}

/// One table of the ledger read: its columns, in the order of its row type's fields, the rest
/// of its `SELECT` (ending in a `WHERE` condition), the column that names the customer, and
/// what orders its rows for a packed read.
struct Table {
    columns: &'static [&'static str],
    rest: &'static str,
    customer: &'static str,
    /// What tells its rows apart in an order an index keeps (see [`Packed::key`]).
    key: &'static [&'static str],
}

impl Table {
    fn packed(&self, args: Vec<Arg>) -> Packed<'static> {
        Packed {
            columns: self.columns,
            rest: self.rest,
            key: self.key,
            args,
        }
    }
}

const KEYS: Table = Table {
    columns: &["k.id", "k.customer_id", "k.key_hash"],
    rest: LIVE_KEYS,
    customer: "k.customer_id",
    key: &["k.rowid"],
};

/// Every key [`LIVE_KEYS`] holds and those of deleted customers ($1 as there).
const EVERYONES_KEYS: Table = Table {
    rest: "FROM access_keys k WHERE k.revoked_at IS NULL \
           AND (k.expires_at IS NULL OR k.expires_at > $1)",
    ..KEYS
};

const GRANTS: Table = Table {
    columns: &[
        "id",
        "customer_id",
        "note",
        "predictors",
        "quota",
        "quota_period",
        "credits",
        "expires_at",
        "created_at",
    ],
    rest: "FROM grants WHERE revoked_at IS NULL",
    customer: "customer_id",
    key: &["grants.rowid"],
};

const ITEMS: Table = Table {
    columns: &[
        "si.id",
        "s.customer_id",
        "s.status",
        "s.cancel_at_period_end",
        "s.canceled_at",
        "s.ended_at",
        "s.past_due_since",
        "si.current_period_start",
        "si.current_period_end",
        "si.price_id",
        "s.created",
    ],
    rest: "FROM subscription_items si \
           JOIN subscriptions s ON s.id = si.subscription_id \
           WHERE (s.ended_at IS NULL OR s.ended_at > $1)",
    customer: "s.customer_id",
    key: &["si.rowid"],
};

const PURCHASES: Table = Table {
    columns: &[
        "pu.id",
        "pu.customer_id",
        "pu.quantity",
        "pu.paid_at",
        "pu.refunded_at",
        "pu.disputed_at",
        "pu.price_id",
    ],
    rest: "FROM purchases pu WHERE true",
    customer: "pu.customer_id",
    key: &["pu.rowid"],
};

const USAGE: Table = Table {
    columns: &["entitlement", "period_start", "customer_id", "used"],
    rest: "FROM usage_counters WHERE (period_start = 0 OR period_start > $1)",
    customer: "customer_id",
    // Clustered on its key (`WITHOUT ROWID`).
    key: &["entitlement", "period_start"],
};

async fn current_version(tx: &mut Tx) -> anyhow::Result<i64> {
    let (version,) = tx
        .fetch_one(sql("SELECT version FROM ledger_state WHERE id = 1"))
        .await
        .context("Failed to read the ledger version")?;
    Ok(version)
}

async fn read_rows(db: &Db, now: i64, scope: Scope<'_>) -> anyhow::Result<LedgerRows> {
    let mut rows = LedgerRows::default();
    rows.version = read(db, now, scope, &mut rows).await?;
    Ok(rows)
}

impl Snapshot for Db {
    fn ledger_version(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            let (version,) = self
                .fetch_one(sql("SELECT version FROM ledger_state WHERE id = 1"))
                .await
                .context("Failed to read the ledger version")?;
            Ok(version)
        })
    }

    fn load_ledger_into<'a>(
        &'a self,
        now: i64,
        sink: &'a mut dyn LedgerSink,
    ) -> BoxFuture<'a, anyhow::Result<i64>> {
        Box::pin(read(self, now, Scope::Everyone, sink))
    }

    fn load_customer<'a>(
        &'a self,
        customer_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>> {
        Box::pin(read_rows(self, now, Scope::Customer(customer_id)))
    }

    /// The key's customer is found inside the same snapshot, on one connection: at start-up
    /// every other connection may be busy, and opening one can cost more than the lookup.
    fn load_customer_of_key<'a>(
        &'a self,
        key_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>> {
        Box::pin(read_rows(self, now, Scope::HolderOf(key_hash)))
    }

    fn ledger_changes(
        &self,
        after: i64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<LedgerChange>>>> {
        Box::pin(async move {
            let mut tx = self.begin_read().await?;
            let version = current_version(&mut tx).await?;
            let changes: Vec<LedgerChange> = tx
                .fetch_all(
                    sql("SELECT version, customer_id FROM ledger_changes \
                         WHERE version > $1 AND version <= $2 ORDER BY version")
                    .bind(after)
                    .bind(version),
                )
                .await
                .context("Failed to read the ledger changes")?;
            tx.commit()
                .await
                .context("Failed to end the changes read")?;
            // Every version has its change row, so a full run is exactly this long.
            let complete = changes.len() as i64 == version - after
                && changes.first().is_none_or(|c| c.version == after + 1);
            Ok(complete.then_some(changes))
        })
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        let super::sql::Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let signal = self.signal.get_or_init(|| {
            let signal = Arc::new(Notify::new());
            tokio::spawn(super::postgres::listen(pool.clone(), Arc::clone(&signal)));
            signal
        });
        Some(Arc::clone(signal))
    }
}

/// Bumps the ledger version in `tx`, records which customer it changed (`None`: possibly many,
/// such as the catalog) and tells other processes at commit where the engine can. Changes are
/// kept for a window of versions; a gate further behind reloads everything.
pub(super) async fn record_change(tx: &mut Tx, customer: Option<&str>) -> anyhow::Result<()> {
    let (version,): (i64,) = tx
        .fetch_one(sql(
            "UPDATE ledger_state SET version = version + 1 WHERE id = 1 RETURNING version",
        ))
        .await
        .context("Failed to bump the ledger version")?;
    tx.execute(
        sql("INSERT INTO ledger_changes (version, customer_id) VALUES ($1, $2)")
            .bind(version)
            .bind(customer),
    )
    .await
    .context("Failed to record a ledger change")?;
    tx.execute(sql("DELETE FROM ledger_changes WHERE version <= $1").bind(version - CHANGES_KEPT))
        .await
        .context("Failed to trim the ledger changes")?;
    tx.notify_ledger_changed().await
}
