//! Statements written once for both engines. The ledger's SQL means the same on SQLite and
//! PostgreSQL (`$n` parameters, `RETURNING`, `ON CONFLICT`, integer times, text ids), and its
//! values are integers, text and booleans, so a [`Statement`] carries its text and its values
//! as plain data, and is bound to the engine's own types only when it runs. This file is the one
//! place that dispatches on the engine; each role's file holds its SQL as ordinary code.

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Database, Postgres, Sqlite, Type};

use super::packed::{Chunks, hand_on};
pub use super::packed::{PACKED_ROWS, Packed};
use super::pg_rows;
use super::statement::arguments;
pub use super::statement::{Arg, Kind, Record, Statement, sql};

/// Rows a large read hands on between yields to the runtime's other tasks: rows streaming in
/// never made it wait, so it held its thread a whole statement (bench/results/2026-12-07-keys-read.md).
const YIELD_EVERY: usize = 256;

/// Counts a row handed on by a large read, yielding to the runtime every [`YIELD_EVERY`].
async fn handed_on(handed: &mut usize) {
    *handed += 1;
    if handed.is_multiple_of(YIELD_EVERY) {
        tokio::task::yield_now().await;
    }
}

/// An open pool of either engine.
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction of either engine, on a pooled connection of its own. A transaction that does
/// not end in a successful `COMMIT` or `ROLLBACK` (a statement failed, the disk is full, the
/// caller gave up) closes its connection instead of returning it to the pool: whatever state
/// the engine left it in (SQLite may have rolled back by itself, or not), no later caller gets
/// a connection still inside a transaction.
pub(super) struct Tx {
    conn: Conn,
    open: bool,
    /// A writer's turn on SQLite, passed on when the transaction ends (after `conn`).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    /// Lent to the reader of [`Tx::for_each_packed`], or lost with it (the reader panicked
    /// and closed it): nothing more runs in this transaction.
    Lent,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            match &mut self.conn {
                Conn::Sqlite(conn) => conn.close_on_drop(),
                Conn::Postgres(conn) => conn.close_on_drop(),
                Conn::Lent => {}
            }
        }
    }
}

/// Binds `$statement` for the engine of `$target`, then runs `$body` with `$query` (the text
/// and the engine's arguments) and `$exec` (the engine's pool or connection).
macro_rules! dispatch {
    ($target:expr, $statement:expr, |$query:ident, $exec:ident| $body:expr) => {{
        let Statement { sql, args } = $statement;
        match $target {
            Target::Sqlite($exec) => {
                let $query = (sql, arguments::<Sqlite>(args)?);
                $body
            }
            Target::Postgres($exec) => {
                let $query = (sql, arguments::<Postgres>(args)?);
                $body
            }
        }
    }};
}

/// Where a statement runs: a pool, or an open transaction's connection.
enum Target<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// Statements outside a transaction, each on a pooled connection.
impl super::Db {
    fn target(&self) -> Target<&SqlitePool, &PgPool> {
        match &self.pool {
            Pool::Sqlite(pool) => Target::Sqlite(pool),
            Pool::Postgres(pool) => Target::Postgres(pool),
        }
    }

    /// A statement that writes (or one that reads only); on SQLite it waits for this
    /// process's turn to write.
    pub async fn execute(&self, statement: Statement) -> anyhow::Result<u64> {
        let _turn = self.write_turn().await?;
        Ok(dispatch!(self.target(), statement, |q, exec| {
            sqlx::query_with(q.0, q.1)
                .execute(exec)
                .await?
                .rows_affected()
        }))
    }

    pub async fn fetch_all<T: Record>(&self, statement: Statement) -> anyhow::Result<Vec<T>> {
        Ok(dispatch!(self.target(), statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_all(exec).await?
        }))
    }

    pub async fn fetch_optional<T: Record>(
        &self,
        statement: Statement,
    ) -> anyhow::Result<Option<T>> {
        Ok(dispatch!(self.target(), statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_optional(exec).await?
        }))
    }

    pub async fn fetch_one<T: Record>(&self, statement: Statement) -> anyhow::Result<T> {
        Ok(dispatch!(self.target(), statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_one(exec).await?
        }))
    }
}

impl Tx {
    /// Starts a transaction with `begin` (the engine's `BEGIN …`) on a connection of `pool`.
    /// A writer on SQLite brings its `turn` ([`super::Db::write_turn`]).
    pub(super) async fn begin(
        pool: &Pool,
        begin: &'static str,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> anyhow::Result<Self> {
        let conn = match pool {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        };
        Self::begin_on(conn, begin, turn).await
    }

    /// A PostgreSQL read transaction ([`Self::begin`] with `begin`) on a connection `pool` has
    /// idle or can open within `wait`: `None` if every connection the pool may have is in use
    /// (others need it) or `wait` passed, and always on SQLite (a second SQLite transaction
    /// would not share the first one's snapshot, which is what this is for).
    pub(super) async fn try_begin(
        pool: &Pool,
        begin: &'static str,
        wait: std::time::Duration,
    ) -> anyhow::Result<Option<Self>> {
        let Pool::Postgres(pool) = pool else {
            return Ok(None);
        };
        if pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections() {
            return Ok(None);
        }
        match tokio::time::timeout(wait, pool.acquire()).await {
            Ok(conn) => Ok(Some(
                Self::begin_on(Conn::Postgres(conn?), begin, None).await?,
            )),
            Err(_) => Ok(None),
        }
    }

    async fn begin_on(
        conn: Conn,
        begin: &'static str,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> anyhow::Result<Self> {
        let mut tx = Self {
            conn,
            open: false,
            _turn: turn,
        };
        // A `BEGIN` that failed started nothing: the connection goes back to the pool as is.
        tx.execute(sql(begin)).await?;
        tx.open = true;
        Ok(tx)
    }

    fn target(
        &mut self,
    ) -> anyhow::Result<
        Target<&mut <Sqlite as Database>::Connection, &mut <Postgres as Database>::Connection>,
    > {
        match &mut self.conn {
            Conn::Sqlite(conn) => Ok(Target::Sqlite(&mut **conn)),
            Conn::Postgres(conn) => Ok(Target::Postgres(&mut **conn)),
            Conn::Lent => anyhow::bail!("The transaction's connection was lost with its reader"),
        }
    }

    pub async fn execute(&mut self, statement: Statement) -> anyhow::Result<u64> {
        Ok(dispatch!(self.target()?, statement, |q, exec| {
            sqlx::query_with(q.0, q.1)
                .execute(exec)
                .await?
                .rows_affected()
        }))
    }

    pub async fn fetch_all<T: Record>(&mut self, statement: Statement) -> anyhow::Result<Vec<T>> {
        Ok(dispatch!(self.target()?, statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_all(exec).await?
        }))
    }

    pub async fn fetch_optional<T: Record>(
        &mut self,
        statement: Statement,
    ) -> anyhow::Result<Option<T>> {
        Ok(dispatch!(self.target()?, statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_optional(exec).await?
        }))
    }

    pub async fn fetch_one<T: Record>(&mut self, statement: Statement) -> anyhow::Result<T> {
        Ok(dispatch!(self.target()?, statement, |q, exec| {
            sqlx::query_as_with(q.0, q.1).fetch_one(exec).await?
        }))
    }

    /// Every row as JSON values, the columns read as `kinds` in order.
    pub async fn fetch_values(
        &mut self,
        statement: Statement,
        kinds: &[Kind],
    ) -> anyhow::Result<Vec<Vec<serde_json::Value>>> {
        fn values<R: sqlx::Row>(row: &R, kinds: &[Kind]) -> anyhow::Result<Vec<serde_json::Value>>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
            for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
        {
            kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    Ok(match kind {
                        Kind::Int => serde_json::json!(row.try_get::<Option<i64>, _>(i)?),
                        Kind::Text => serde_json::json!(row.try_get::<Option<String>, _>(i)?),
                        Kind::Bool => serde_json::json!(row.try_get::<Option<bool>, _>(i)?),
                    })
                })
                .collect()
        }
        dispatch!(self.target()?, statement, |q, exec| {
            let rows = sqlx::query_with(q.0, q.1).fetch_all(exec).await?;
            rows.iter().map(|row| values(row, kinds)).collect()
        })
    }

    /// Hands each row to `each` as it is decoded, so a large read is never held whole.
    pub async fn for_each<T: Record>(
        &mut self,
        statement: Statement,
        mut each: impl FnMut(T) + Send,
    ) -> anyhow::Result<()> {
        dispatch!(self.target()?, statement, |q, exec| {
            let mut rows = sqlx::query_as_with(q.0, q.1).fetch(exec);
            let mut handed = 0_usize;
            while let Some(row) = rows.try_next().await? {
                each(row);
                handed_on(&mut handed).await;
            }
        });
        Ok(())
    }

    /// Hands each row of a large read to `each`, like [`Self::for_each`], with what the
    /// engine does best. PostgreSQL streams the rows, each decoded by its columns' positions
    /// ([`pg_rows`]). SQLite's driver hands every row from its
    /// own thread to the runtime, a wake-up and a few allocations each, which at a million rows
    /// cost several times the read itself; there SQLite packs [`PACKED_ROWS`] rows at a time,
    /// in the order of `read.key`, into one JSON array, asked for by a task of its own while
    /// this one decodes the array before. The connection closes when the transaction ends.
    pub async fn for_each_packed<T: Record + DeserializeOwned>(
        &mut self,
        read: Packed<'_>,
        mut each: impl FnMut(T) + Send,
    ) -> anyhow::Result<()> {
        let mut conn = match std::mem::replace(&mut self.conn, Conn::Lent) {
            Conn::Sqlite(conn) => conn,
            other => {
                self.conn = other;
                return self.ahead(read)?.for_each(each).await;
            }
        };
        let chunks = Chunks {
            first: Statement::assembled(read.sqlite_chunk(false)).sql,
            next: Statement::assembled(read.sqlite_chunk(true)).sql,
            fixed: read.args,
        };
        // The connection is lent to a task of its own, which asks for the next chunk as soon
        // as SQLite hands one over, on whichever thread the runtime has free, while this one
        // decodes: in one task, the next chunk waited for each decode to end. Should that
        // task not give it back (it panicked), the connection closes rather than go back to
        // the pool inside this transaction; so it also closes when the transaction ends.
        conn.close_on_drop();
        let (sender, mut arrived) = tokio::sync::mpsc::channel::<String>(2);
        let reader = tokio::spawn(async move {
            let read = chunks.read(&mut conn, sender).await;
            (conn, read)
        });
        let decoded = async {
            while let Some(array) = arrived.recv().await {
                hand_on(&array, &mut each).context("Failed to read a packed row")?;
                tokio::task::yield_now().await; // See YIELD_EVERY.
            }
            anyhow::Ok(())
        }
        .await;
        // A failed decode stops the reader at its next chunk.
        drop(arrived);
        let (conn, read) = reader.await.context("The ledger's reader failed")?;
        self.conn = Conn::Sqlite(conn);
        read.and(decoded)
    }

    /// A large read on PostgreSQL, sent before its rows are wanted: see [`Ahead`].
    pub(super) fn ahead(&mut self, read: Packed<'_>) -> anyhow::Result<Ahead<'_>> {
        let Target::Postgres(conn) = self.target()? else {
            anyhow::bail!("A read ahead is PostgreSQL's");
        };
        let text = Statement::assembled(read.select()).sql;
        Ok(Ahead {
            rows: sqlx::query_with(text, arguments::<Postgres>(read.args)?).fetch(conn),
            first: None,
            ended: false,
        })
    }

    /// Commits; if that fails, the transaction's connection is closed (see [`Tx`]).
    pub async fn commit(mut self) -> anyhow::Result<()> {
        self.execute(sql("COMMIT"))
            .await
            .context("Failed to commit")?;
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> anyhow::Result<()> {
        self.execute(sql("ROLLBACK"))
            .await
            .context("Failed to roll back")?;
        self.open = false;
        Ok(())
    }

    /// Tells other processes the ledger changed, at commit, where the engine can
    /// (PostgreSQL `NOTIFY`); on SQLite they find out by polling the version.
    pub(super) async fn notify_ledger_changed(&mut self) -> anyhow::Result<()> {
        if let Conn::Postgres(conn) = &mut self.conn {
            super::postgres::notify_ledger_changed(conn).await?;
        }
        Ok(())
    }
}

/// A large read on PostgreSQL ([`Tx::ahead`]) whose rows are taken later: awaiting
/// [`Self::ready`] beside other work sends the statement and keeps its first row, so the server
/// prepares the rest (a join's hash, say) meanwhile, and the rows that follow wait on the socket
/// until [`Self::for_each`] takes them.
pub(super) struct Ahead<'c> {
    rows: futures_util::stream::BoxStream<'c, Result<sqlx::postgres::PgRow, sqlx::Error>>,
    first: Option<sqlx::postgres::PgRow>,
    ended: bool,
}

impl Ahead<'_> {
    /// Sends the statement, if not yet sent, and waits for its first row (or its end).
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        if self.first.is_none() && !self.ended {
            match self.rows.try_next().await? {
                Some(row) => self.first = Some(row),
                None => self.ended = true,
            }
        }
        Ok(())
    }

    /// Hands each row to `each`, decoded by its columns' positions ([`pg_rows`]).
    pub async fn for_each<T: DeserializeOwned>(
        mut self,
        mut each: impl FnMut(T) + Send,
    ) -> anyhow::Result<()> {
        self.ready().await?;
        let Some(first) = self.first.take() else {
            return Ok(());
        };
        let columns = pg_rows::columns(&first)?;
        let mut row = Some(first);
        let mut handed = 0_usize;
        while let Some(current) = row {
            each(pg_rows::decode(&current, &columns).context("Failed to decode a row")?);
            handed_on(&mut handed).await;
            row = self.rows.try_next().await?;
        }
        Ok(())
    }
}
