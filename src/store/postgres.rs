use anyhow::Context as _;
use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};

use super::Store;
use super::shared::{ledger_helpers, ledger_queries};

/// The store for several machines: one PostgreSQL database shared by every instance.
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .context("Failed to connect to PostgreSQL")?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, Postgres>> {
        self.pool
            .begin()
            .await
            .context("Failed to start a write transaction")
    }

    /// A repeatable-read snapshot, so the ledger is loaded as of one instant.
    async fn begin_read(&self) -> anyhow::Result<sqlx::Transaction<'static, Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .context("Failed to start a read transaction")
    }
}

ledger_helpers!(Postgres);

impl Store for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn migrate(&self) -> super::BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            // sqlx takes an advisory lock, so instances starting together migrate one at a time.
            sqlx::migrate!("./migrations/postgres")
                .run(&self.pool)
                .await
                .context("Failed to migrate the PostgreSQL database")
        })
    }

    ledger_queries!();
}
