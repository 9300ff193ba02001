//! What PostgreSQL does its own way: connecting (with the first connections opened together),
//! migrating under an advisory lock, snapshot reads (one snapshot shared by two connections),
//! claiming with `SKIP LOCKED`, and telling other instances about changes with `LISTEN/NOTIFY`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
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
    let options =
        PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.clone());
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
        match opened? {
            Ok(connection) => held.push(connection),
            Err(_) => return Err(diagnose(&options).await),
        }
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

/// Why PostgreSQL cannot be reached, in words that name the server: the pool only says it
/// timed out. Tries one connection of its own, for two seconds more at most.
async fn diagnose(options: &PgConnectOptions) -> anyhow::Error {
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let attempt = tokio::time::timeout(Duration::from_secs(2), options.connect()).await;
    let problem = match attempt {
        Err(_) => "did not answer within 5 s: check the host, the port and the network".to_owned(),
        Ok(Ok(_)) => "answered too slowly to open the first connections within 3 s".to_owned(),
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "refused the connection: is PostgreSQL running there, on that port?".to_owned()
        }
        Ok(Err(sqlx::Error::Database(e))) => match e.code().as_deref() {
            Some("28P01" | "28000") => format!(
                "refused the credentials of user {:?}: check the user and the password",
                options.get_username()
            ),
            Some("3D000") => format!(
                "has no database {:?}: create it first",
                options.get_database().unwrap_or_default()
            ),
            _ => e.message().to_owned(),
        },
        Ok(Err(e)) => e.to_string(),
    };
    anyhow::anyhow!("DATABASE_URL: PostgreSQL at {place} {problem}")
}

/// sqlx takes an advisory lock, so instances starting together migrate one at a time.
pub(super) async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .context("Failed to migrate the PostgreSQL database")
}

pub(super) const BEGIN_WRITE: &str = "BEGIN";

/// A repeatable-read snapshot, so the ledger is loaded as of one instant.
pub(super) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The statement that makes a transaction just begun see the snapshot `pg_export_snapshot()`
/// named (a parameter cannot stand for it, so its characters are checked first).
pub(super) fn set_snapshot(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
        "PostgreSQL named a snapshot {name:?}, which is not a snapshot's name"
    );
    Ok(format!("SET TRANSACTION SNAPSHOT '{name}'"))
}

/// Sent in every transaction that changes the ledger; delivered to listeners at commit.
pub(super) async fn notify_ledger_changed(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_notify('tollbooth_ledger', '')")
        .execute(conn)
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
