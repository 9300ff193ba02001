//! What PostgreSQL does its own way: connecting (with the first connections opened together),
//! migrating under an advisory lock, snapshot reads, claiming with `SKIP LOCKED`, and telling
//! other instances about changes with `LISTEN/NOTIFY`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Transaction;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, Postgres};
use tokio::sync::Notify;

/// How a JSON array parameter becomes rows (`j.value`).
pub(super) const JSON_ROWS: &str = "jsonb_array_elements(CAST($1 AS jsonb)) AS j(value)";

/// Instances claim side by side without waiting on each other.
pub(super) const CLAIM_EVENTS: &str = "UPDATE stripe_events SET claimed_until = $2 \
     WHERE id IN (SELECT id FROM stripe_events \
         WHERE processed_at IS NULL AND next_attempt_at <= $1 \
           AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY created, received_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, event_type, created, payload, received_at, attempts, last_error, \
         processed_at";

/// The channel every instance listens on; a notification means "the ledger changed".
const CHANNEL: &str = "tollbooth_ledger";

/// Connections opened together at start: enough for start-up's concurrent users.
const WARM: usize = 4;

/// The store for several machines: one PostgreSQL database shared by every instance.
pub(super) async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_lazy(url)
        .context("The PostgreSQL DATABASE_URL is not valid")?;
    // Start-up needs several connections at once (migrations, the first lookups, the full
    // load, LISTEN, the heartbeat). Opened together, their set-up round trips overlap instead
    // of queueing: with TLS each one costs tens of milliseconds of waiting.
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
    Ok(pool)
}

/// sqlx takes an advisory lock, so instances starting together migrate one at a time.
pub(super) async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .context("Failed to migrate the PostgreSQL database")
}

pub(super) async fn begin_write(pool: &PgPool) -> anyhow::Result<Transaction<'static, Postgres>> {
    pool.begin()
        .await
        .context("Failed to start a write transaction")
}

/// A repeatable-read snapshot, so the ledger is loaded as of one instant.
pub(super) async fn begin_read(pool: &PgPool) -> anyhow::Result<Transaction<'static, Postgres>> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("Failed to start a read transaction")
}

/// Sent in every transaction that changes the ledger; delivered to listeners at commit.
pub(super) async fn notify_ledger_changed(
    tx: &mut Transaction<'static, Postgres>,
) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_notify('tollbooth_ledger', '')")
        .execute(&mut **tx)
        .await
        .context("Failed to notify other instances")?;
    Ok(())
}

/// Rings `signal` for every notification on the channel, and once after each (re)connection
/// so nothing sent while disconnected is missed. Ends when the pool is closed.
pub(super) async fn listen(pool: PgPool, signal: Arc<Notify>) {
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
