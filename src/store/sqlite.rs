//! What SQLite does its own way: opening the file, migrating it, starting transactions, and
//! two phrases of SQL. Everything else is in the role files, written once for both engines.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Transaction;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

/// How a JSON array parameter becomes rows (`j.value`).
pub(super) const JSON_ROWS: &str = "json_each($1) AS j";

/// SQLite has one writer at a time (`BEGIN IMMEDIATE`), so a plain update claims.
pub(super) const CLAIM_EVENTS: &str = "UPDATE stripe_events SET claimed_until = $2 \
     WHERE id IN (SELECT id FROM stripe_events \
         WHERE processed_at IS NULL AND next_attempt_at <= $1 \
           AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY created, received_at, id LIMIT $3) \
     RETURNING id, event_type, created, payload, received_at, attempts, last_error, \
         processed_at";

/// The default store: one file next to the binary (or on a Fly volume), in WAL mode so the
/// CLI and the server can use it at the same time.
pub(super) async fn connect(url: &str) -> anyhow::Result<SqlitePool> {
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)
            .with_context(|| format!("Failed to parse the SQLite URL {url}"))?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        // SQLite's own page cache (about 2 MiB per connection) is kept: a larger one held the
        // pages of the whole ledger read at start (16 MiB cost 170 bytes a key at 100,000
        // keys), and the flush did no better with it (docs/performance.md).
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .context("Failed to open the SQLite database")
}

/// SQLite has no advisory lock: two processes migrating a new file at once race, and the
/// loser finds a table the winner just created. Trying again sees what the winner applied.
pub(super) async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match sqlx::migrate!("./migrations/sqlite").run(pool).await {
            Ok(()) => return Ok(()),
            Err(
                sqlx::migrate::MigrateError::Execute(_)
                | sqlx::migrate::MigrateError::ExecuteMigration(..),
            ) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e).context("Failed to migrate the SQLite database"),
        }
    }
}

/// `BEGIN IMMEDIATE` takes the write lock up front, so a write transaction waits on
/// `busy_timeout` instead of failing when another process wrote first.
pub(super) async fn begin_write(pool: &SqlitePool) -> anyhow::Result<Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .context("Failed to start a write transaction")
}

pub(super) async fn begin_read(pool: &SqlitePool) -> anyhow::Result<Transaction<'static, Sqlite>> {
    pool.begin()
        .await
        .context("Failed to start a read transaction")
}
