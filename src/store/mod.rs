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
mod meters;
mod mirror;
mod postgres;
mod reports;
mod sessions;
mod settings;
mod snapshot;
pub mod sql;
mod sqlite;
pub mod transfer;
mod usage;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use tokio::sync::Notify;

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
pub use meters::{Meter, MeterDelta, MeterOutbox, MeterReport, SetAsideReport};
pub use mirror::{Mirror, PlanRow, Price, Product, Purchase, Subscription, SubscriptionItem};
pub use reports::{KeyRefusalDay, RecurringLine, RefusalDay, Reports, UsageDay};
pub use sessions::{Sessions, SignInLink, StoredSession};
pub use snapshot::{
    CHANGES_KEPT, GrantRow, ItemRow, KeyRow, LedgerChange, LedgerRows, LedgerSink, PurchaseRow,
    Snapshot, UsageRow,
};
pub use transfer::Transfer;
pub use usage::{CounterDelta, HourlyDelta, KeyRefusalDelta, Usage, UsageBatch};

use sql::{Pool, Tx};

/// What the role traits' methods return, so that `dyn Snapshot` and friends work without a
/// macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The ledger's database, on either engine.
pub struct Db {
    pool: Pool,
    /// PostgreSQL's `LISTEN` for ledger changes, started on first use.
    signal: OnceLock<Arc<Notify>>,
}

/// Opens the store named by `url`: `postgres://…` or `postgresql://…` for PostgreSQL,
/// `sqlite://FILE` for an SQLite file created (0600) if missing.
pub async fn connect(url: &str) -> anyhow::Result<Arc<Db>> {
    let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Pool::Postgres(postgres::connect(url).await?)
    } else {
        Pool::Sqlite(sqlite::connect(url).await?)
    };
    Ok(Arc::new(Db {
        pool,
        signal: OnceLock::new(),
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

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.execute(sql::sql("SELECT 1"))
            .await
            .context("Failed to reach the database")?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// A transaction that writes. On SQLite it takes the write lock up front.
    async fn begin_write(&self) -> anyhow::Result<Tx> {
        let begin = match self.pool {
            Pool::Sqlite(_) => sqlite::BEGIN_WRITE,
            Pool::Postgres(_) => postgres::BEGIN_WRITE,
        };
        Tx::begin(&self.pool, begin)
            .await
            .context("Failed to start a write transaction")
    }

    /// A transaction that reads one consistent state of the ledger.
    async fn begin_read(&self) -> anyhow::Result<Tx> {
        let begin = match self.pool {
            Pool::Sqlite(_) => sqlite::BEGIN_READ,
            Pool::Postgres(_) => postgres::BEGIN_READ,
        };
        Tx::begin(&self.pool, begin)
            .await
            .context("Failed to start a read transaction")
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
