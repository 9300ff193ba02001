use anyhow::Context as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, Postgres};
use tokio::sync::Notify;

use super::Store;
use super::shared::{ledger_helpers, ledger_queries, read_ledger};

/// The store for several machines: one PostgreSQL database shared by every instance.
pub struct PgStore {
    pool: PgPool,
    signal: OnceLock<Arc<Notify>>,
}

impl PgStore {
    const CLAIM_EVENTS: &'static str = "UPDATE stripe_events SET claimed_until = $2 \
         WHERE id IN (SELECT id FROM stripe_events \
             WHERE processed_at IS NULL AND next_attempt_at <= $1 \
               AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY created, received_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, event_type, created, payload, received_at, attempts, last_error, \
             processed_at";

    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_lazy(url)
            .context("The PostgreSQL DATABASE_URL is not valid")?;
        // Start-up needs several connections at once (migrations, the first lookups, the full
        // load, LISTEN, the heartbeat). Opened together, their set-up round trips overlap
        // instead of queueing: with TLS each one costs tens of milliseconds of waiting.
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..WARM {
            let pool = pool.clone();
            opening.spawn(async move { pool.acquire().await });
        }
        // Held until all are open, so each acquire opens a connection of its own.
        let mut held = Vec::with_capacity(WARM);
        while let Some(opened) = opening.join_next().await {
            held.push(opened?.context("Failed to connect to PostgreSQL")?);
        }
        drop(held);
        // A released connection is pinged before it is idle again; an acquire meanwhile would
        // open yet another. Wait (briefly) until all are back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while pool.num_idle() < WARM && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Self {
            pool,
            signal: OnceLock::new(),
        })
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

/// Connections opened together at start: enough for start-up's concurrent users.
const WARM: usize = 4;

/// The channel every instance listens on; a notification means "the ledger changed".
const CHANNEL: &str = "tollbooth_ledger";

ledger_helpers!(
    PgStore,
    Postgres,
    Some("SELECT pg_notify('tollbooth_ledger', '')")
);

impl Store for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        let signal = self.signal.get_or_init(|| {
            let signal = Arc::new(Notify::new());
            tokio::spawn(listen(self.pool.clone(), Arc::clone(&signal)));
            signal
        });
        Some(Arc::clone(signal))
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

    ledger_queries!("jsonb_array_elements(CAST($1 AS jsonb)) AS j(value)");
}

/// Rings `signal` for every notification on the channel, and once after each (re)connection
/// so nothing sent while disconnected is missed. Ends when the pool is closed.
async fn listen(pool: PgPool, signal: Arc<Notify>) {
    while !pool.is_closed() {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    signal.notify_one();
                    while listener.recv().await.is_ok() {
                        signal.notify_one();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Failed to LISTEN for ledger changes"),
            },
            Err(e) if !pool.is_closed() => {
                tracing::warn!(error = %e, "Failed to connect to LISTEN for ledger changes");
            }
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
