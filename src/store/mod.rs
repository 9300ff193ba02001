//! The ledger's storage, split by the role its callers need: the gate reads a [`Snapshot`],
//! the use cases write [`Keys`], the Stripe sync [`Mirror`]s objects, the webhook worker
//! drains the [`Inbox`], the flusher writes [`Usage`] and fills the [`MeterOutbox`], the
//! account page keeps its [`Sessions`], the CLI moves everything with [`Transfer`], the metrics count the [`Backlog`], the owner reads use in [`Reports`] and pages through the [`Directory`], gives [`Grants`], has [`Alerts`] delivered, and has the admin API's retries answered once ([`Idempotency`]) and the dashboard's sign-ins kept ([`AdminSessions`]), and every change leaves a row in the [`Audit`] log. Each role is a small trait in its own file with its
//! SQL beside it; a caller takes only the trait it uses, which is also what a test or a
//! benchmark fakes.
//!
//! One [`Db`] implements them all, on SQLite or PostgreSQL, chosen from the `DATABASE_URL`
//! scheme at start. The SQL is written once ([`sql`]); `sqlite.rs` and `postgres.rs` hold only
//! what the engines do differently.

mod admin_sessions;
mod alerts;
mod audit;
mod backlog;
mod directory;
mod grants;
mod idempotency;
mod inbox;
mod keys;
mod ledger_rows;
mod meters;
mod mirror;
mod packed;
mod pg_rows;
mod postgres;
mod reports;
mod sessions;
mod settings;
mod snapshot;
pub mod sql;
mod sqlite;
mod statement;
pub mod transfer;
mod usage;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

pub use admin_sessions::{AdminSession, AdminSessions};
pub use alerts::{AlertRow, Alerts, Delivered, DeliveryRow, NewAlert, NewDelivery};
pub use audit::{Audit, AuditRow};
pub use backlog::{Backlog, BacklogCounts};
pub use directory::{After, Directory, GrantListing};
pub use grants::{EndGrant, Grants, NewGrant};
pub use idempotency::{Claim, Idempotency};
pub use inbox::{Inbox, InboxEvent, NewEvent};
pub use keys::{
    Customer, CustomerListing, IssueKey, KeyListing, Keys, NewKey, RevokeOutcome, RollKey,
};
pub use ledger_rows::{
    GrantRow, ItemRow, KeyRow, LedgerRows, LedgerSink, PriceRow, PurchaseRow, UsageRow,
};
pub use meters::{Meter, MeterDelta, MeterOutbox, MeterReport, SetAsideReport};
pub use mirror::{Mirror, PlanRow, Price, Product, Purchase, Subscription, SubscriptionItem};
pub use reports::{KeyRefusalDay, RecurringLine, RefusalDay, Reports, UsageDay};
pub use sessions::{Sessions, SignInLink, StoredSession};
pub use snapshot::{CHANGES_KEPT, LedgerChange, Snapshot};
pub use transfer::Transfer;
pub use usage::{CounterDelta, HourlyDelta, KeyRefusalDelta, Usage, UsageBatch};

use sql::{Pool, Tx};

/// An id (or a tag, a reason's label) in a batch of use: kept in place when it is short, as
/// ids are (up to 23 bytes), so that a flush of tens of thousands of rows makes no allocation
/// per id. A `String` each left the flush's freed strings with the allocator: 10-20 bytes a
/// key under load at 100,000 keys (bench/results/2026-12-07-retained.md).
pub type IdText = smol_str::SmolStr;

/// What the role traits' methods return, so that `dyn Snapshot` and friends work without a
/// macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The ledger's database, on either engine.
pub struct Db {
    pool: Pool,
    /// PostgreSQL's `LISTEN` for ledger changes, started on first use.
    signal: OnceLock<Arc<Notify>>,
    /// SQLite's writers in this process, in the order they came (see [`Db::write_turn`]).
    writers: Option<Arc<Mutex<()>>>,
}

/// How long a read beside another ([`Db::begin_read_beside`]) may wait for its connection
/// to open: about what it saves at a million keys.
const BESIDE_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Opens the store named by `url`: `postgres://…` or `postgresql://…` for PostgreSQL,
/// `sqlite://FILE` for an SQLite file created (0600) if missing.
pub async fn connect(url: &str) -> anyhow::Result<Arc<Db>> {
    let (pool, writers) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Pool::Postgres(postgres::connect(url).await?), None)
    } else {
        let pool = Pool::Sqlite(sqlite::connect(url).await?);
        (pool, Some(Arc::new(Mutex::new(()))))
    };
    Ok(Arc::new(Db {
        pool,
        signal: OnceLock::new(),
        writers,
    }))
}

impl Db {
    /// `"sqlite"` or `"postgres"`, for the start-up summary.
    pub fn engine(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Applies the engine's migrations (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::migrate(pool).await,
            Pool::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Reads, so it never waits for a writer's turn.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let (_,): (i64,) = self
            .fetch_one(sql::sql("SELECT CAST(1 AS BIGINT)"))
            .await
            .context("Failed to reach the database")?;
        Ok(())
    }

    /// This process's turn to write, on SQLite (`None` on PostgreSQL, whose writers do not
    /// exclude each other). SQLite lets one connection write at a time; a connection that finds
    /// the lock taken sleeps in its busy handler, longer each time (up to 100 ms a try), while
    /// holding a pooled connection, so under a burst of writes (webhook events, the usage
    /// flush, receipts) one could wait hundreds of milliseconds while others came and went, and
    /// readers ran short of connections. Here writers queue first, in order, before taking a
    /// connection; only another process's writes (the CLI) still meet the busy handler.
    async fn write_turn(&self) -> anyhow::Result<Option<OwnedMutexGuard<()>>> {
        let Some(writers) = &self.writers else {
            return Ok(None);
        };
        let turn = tokio::time::timeout(sqlite::BUSY_TIMEOUT, Arc::clone(writers).lock_owned())
            .await
            .with_context(|| {
                format!(
                    "The database is busy: another write took longer than {} s",
                    sqlite::BUSY_TIMEOUT.as_secs()
                )
            })?;
        Ok(Some(turn))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// A transaction that writes. On SQLite it waits for this process's turn to write, then
    /// takes the write lock up front; the turn passes on when the transaction ends.
    async fn begin_write(&self) -> anyhow::Result<Tx> {
        let begin = match self.pool {
            Pool::Sqlite(_) => sqlite::BEGIN_WRITE,
            Pool::Postgres(_) => postgres::BEGIN_WRITE,
        };
        let turn = self.write_turn().await?;
        Tx::begin(&self.pool, begin, turn)
            .await
            .context("Failed to start a write transaction")
    }

    /// A transaction that reads one consistent state of the ledger.
    async fn begin_read(&self) -> anyhow::Result<Tx> {
        let begin = match self.pool {
            Pool::Sqlite(_) => sqlite::BEGIN_READ,
            Pool::Postgres(_) => postgres::BEGIN_READ,
        };
        Tx::begin(&self.pool, begin, None)
            .await
            .context("Failed to start a read transaction")
    }

    /// A second read transaction in `tx`'s snapshot (as [`Self::begin_read`] began it), on a
    /// connection of its own, where the engine can share a snapshot (PostgreSQL) and the pool
    /// has a connection idle or room to open one within [`BESIDE_WAIT`]: it never waits for a
    /// connection others hold (at start-up, the first requests' lookups). `None` otherwise,
    /// and always on SQLite, whose reads of one snapshot share its connection.
    async fn begin_read_beside(&self, tx: &mut Tx) -> anyhow::Result<Option<Tx>> {
        // The connection first: without one, the snapshot is not exported for nothing.
        let Some(mut beside) = Tx::try_begin(&self.pool, postgres::BEGIN_READ, BESIDE_WAIT)
            .await
            .context("Failed to start a second read transaction")?
        else {
            return Ok(None);
        };
        let (snapshot,): (String,) = tx
            .fetch_one(sql::sql("SELECT pg_export_snapshot()"))
            .await
            .context("Failed to export the read's snapshot")?;
        beside
            .execute(sql::Statement::assembled(postgres::set_snapshot(
                &snapshot,
            )?))
            .await
            .context("Failed to share the read's snapshot")?;
        Ok(Some(beside))
    }

    /// `sql` with `{json_rows}` replaced by the engine's way of turning the JSON array in `$1`
    /// into rows `j.value`: a batch of any size is one statement with one parameter.
    fn with_json_rows(&self, sql: &str) -> sql::Statement {
        let rows = match self.pool {
            Pool::Sqlite(_) => sqlite::JSON_ROWS,
            Pool::Postgres(_) => postgres::JSON_ROWS,
        };
        sql::Statement::assembled(sql.replace("{json_rows}", rows))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::sql::{PACKED_ROWS, Packed, sql};

    /// A new SQLite file in `dir` with the one table `create` makes.
    async fn sqlite_with(dir: &tempfile::TempDir, create: &'static str) -> Arc<Db> {
        let db = connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let mut tx = db.begin_write().await.unwrap();
        tx.execute(sql(create)).await.unwrap();
        tx.commit().await.unwrap();
        db
    }

    /// Writers of one process take their turns in the order they came, without holding a
    /// connection while they wait, and a transaction that ends without a commit passes its
    /// turn on.
    #[tokio::test]
    async fn sqlite_writers_queue_in_order_and_leave_connections_to_readers() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_with(&dir, "CREATE TABLE turns (n INTEGER NOT NULL)").await;

        let holder = db.begin_write().await.unwrap();
        let mut writers = Vec::new();
        for n in 0..8_i64 {
            let writer = Arc::clone(&db);
            writers.push(tokio::spawn(async move {
                let mut tx = writer.begin_write().await?;
                tx.execute(sql("INSERT INTO turns (n) VALUES ($1)").bind(n))
                    .await?;
                tx.commit().await
            }));
            // Each writer is waiting for its turn before the next one asks.
            for _ in 0..100 {
                if Arc::strong_count(db.writers.as_ref().unwrap()) >= n as usize + 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Eight writers wait and the pool has four connections: a reader still gets one.
        let (one,): (i64,) =
            tokio::time::timeout(Duration::from_secs(2), db.fetch_one(sql("SELECT 1")))
                .await
                .expect("a reader is not kept waiting by queued writers")
                .unwrap();
        assert_eq!(one, 1);

        drop(holder); // ends without a commit
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let order: Vec<(i64,)> = db
            .fetch_all(sql("SELECT n FROM turns ORDER BY rowid"))
            .await
            .unwrap();
        let order: Vec<i64> = order.into_iter().map(|(n,)| n).collect();
        assert_eq!(
            order,
            (0..8).collect::<Vec<_>>(),
            "turns in the order asked"
        );
    }

    /// A packed read lends its connection to a reader task and gets it back: every row comes
    /// once across chunks, a read whose rows do not decode fails alone, and the transaction
    /// goes on after both.
    #[tokio::test]
    async fn a_packed_read_reads_every_row_and_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_with(
            &dir,
            "CREATE TABLE numbers (n INTEGER NOT NULL, label TEXT NOT NULL)",
        )
        .await;
        let rows = 2 * PACKED_ROWS as i64 + 1;
        let mut tx = db.begin_write().await.unwrap();
        tx.execute(
            sql(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) \
                 INSERT INTO numbers SELECT n, 'n' || n FROM s",
            )
            .bind(rows),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let read = |columns| Packed {
            columns,
            rest: "FROM numbers WHERE true",
            key: &["rowid"],
            args: vec![],
        };
        let mut tx = db.begin_read().await.unwrap();
        let mut seen = Vec::new();
        tx.for_each_packed(read(&["n", "label"]), |row: (i64, String)| seen.push(row))
            .await
            .unwrap();
        seen.sort();
        let expected: Vec<(i64, String)> = (1..=rows).map(|n| (n, format!("n{n}"))).collect();
        assert_eq!(seen, expected);

        let undecodable = tx.for_each_packed(read(&["label"]), |_: (i64,)| {}).await;
        assert!(undecodable.is_err(), "text is not a number");
        let (count,): (i64,) = tx
            .fetch_one(sql("SELECT count(*) FROM numbers"))
            .await
            .unwrap();
        assert_eq!(count, rows);
        tx.commit().await.unwrap();
    }

    /// On PostgreSQL only (`TEST_DATABASE_URL`, as the PostgreSQL suite runs): a read beside
    /// another sees that read's snapshot, not a row committed after it began, and is not begun
    /// when every connection the pool may open is taken; on SQLite there is none.
    #[tokio::test]
    async fn a_read_beside_sees_the_first_reads_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = sqlite_with(&dir, "CREATE TABLE t (n INTEGER)").await;
        let mut tx = sqlite.begin_read().await.unwrap();
        assert!(sqlite.begin_read_beside(&mut tx).await.unwrap().is_none());
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            return;
        };
        let db = connect(&url).await.unwrap();
        let table = format!("read_beside_{}", std::process::id());
        let statement = |text: &str| sql::Statement::assembled(text.replace("{t}", &table));
        db.execute(statement("DROP TABLE IF EXISTS {t}"))
            .await
            .unwrap();
        db.execute(statement("CREATE TABLE {t} (n int8 NOT NULL)"))
            .await
            .unwrap();
        db.execute(statement("INSERT INTO {t} VALUES (1)"))
            .await
            .unwrap();

        let count = || statement("SELECT count(*) FROM {t}");
        let mut tx = db.begin_read().await.unwrap();
        let (first,): (i64,) = tx.fetch_one(count()).await.unwrap();
        db.execute(statement("INSERT INTO {t} VALUES (2)"))
            .await
            .unwrap();
        let mut beside = db
            .begin_read_beside(&mut tx)
            .await
            .unwrap()
            .expect("PostgreSQL shares a snapshot");
        let (beside_saw,): (i64,) = beside.fetch_one(count()).await.unwrap();
        let (committed,): (i64,) = db.fetch_one(count()).await.unwrap();
        assert_eq!((first, beside_saw, committed), (1, 1, 2));
        beside.commit().await.unwrap();

        // With every connection of the pool taken, none is waited for.
        let Pool::Postgres(pool) = &db.pool else {
            unreachable!("a PostgreSQL URL")
        };
        let mut taken = Vec::new();
        while let Ok(Ok(conn)) =
            tokio::time::timeout(Duration::from_millis(300), pool.acquire()).await
        {
            taken.push(conn);
        }
        let none = tokio::time::timeout(Duration::from_secs(1), db.begin_read_beside(&mut tx))
            .await
            .expect("a read beside does not wait for a connection")
            .unwrap();
        assert!(none.is_none());
        drop(taken);
        tx.commit().await.unwrap();
        db.execute(statement("DROP TABLE {t}")).await.unwrap();
    }
}
