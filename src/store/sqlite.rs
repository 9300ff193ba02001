//! What SQLite does its own way: opening the file, migrating it, starting transactions, and
//! two phrases of SQL. Everything else is in the role files, written once for both engines.

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
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

/// How long a write waits for another's to end: in SQLite's busy handler for another
/// process's, and for its turn ([`super::Db::write_turn`]) for one of this process's.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The default store: one file next to the binary (or on a Fly volume), in WAL mode so the
/// CLI and the server can use it at the same time.
pub(super) async fn connect(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("Failed to parse the SQLite URL {url}"))?;
    keep_private(options.get_filename())?;
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        // SQLite's own page cache (about 2 MiB per connection) is kept: a larger one held the
        // pages of the whole ledger read at start (16 MiB cost 170 bytes a key at 100,000
        // keys), and the flush did no better with it (docs/performance.md).
        .foreign_keys(true);
    // Two processes opening a new file at once both switch it to WAL, which takes its lock
    // without waiting: the one that finds it locked tries again.
    let mut attempt = 0;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("5") && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
            }
            opened => return opened.context("Failed to open the SQLite database"),
        }
    }
}

/// The database holds the session secret and the authorize token: only its owner may read
/// it. A new file is created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the database file's mode), and an existing one readable by others is made 0600.
fn keep_private(file: &Path) -> anyhow::Result<()> {
    if file.as_os_str() == ":memory:" {
        return Ok(());
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("Failed to create {}", file.display()));
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        let path = Path::new(&path);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).with_context(
                || {
                    format!(
                        "{} is readable by others and could not be made 0600",
                        path.display()
                    )
                },
            )?;
        }
    }
    Ok(())
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
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// In WAL mode a read transaction sees one snapshot from its first read to its end.
pub(super) const BEGIN_READ: &str = "BEGIN";
