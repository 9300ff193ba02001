//! The admin API's idempotent requests: a POST with an `Idempotency-Key` is claimed here before
//! it runs, and its answer kept for 24 hours, so a retry gets the first answer instead of doing
//! the work again. The caller stores only hashes and a sealed answer (see http/admin).

use anyhow::Context as _;

use super::sql::sql;
use super::{BoxFuture, Db};

/// How long an answer is kept: a retry after this runs as a new request.
pub const KEPT_FOR: i64 = 86_400;

/// How long a claimed request may run before its claim is taken as abandoned (its process
/// ended mid-request): long past any request's deadline.
pub const ABANDONED_AFTER: i64 = 300;

pub trait Idempotency: Send + Sync {
    /// Claims request `id` for a first run, or says what became of the first one.
    fn claim<'a>(
        &'a self,
        id: &'a str,
        fingerprint: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Claim>>;
    /// Keeps the answer of a claimed request.
    fn finish<'a>(
        &'a self,
        id: &'a str,
        status: u16,
        answer: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Lets the request run again (its first run failed on our side and did nothing).
    fn forget<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing was asked under this id: run it.
    New,
    /// The first request is still running.
    Running,
    /// The same id came with another request (another path or body).
    Mismatch,
    /// The first request's answer.
    Done { status: u16, answer: String },
}

impl Idempotency for Db {
    fn claim<'a>(
        &'a self,
        id: &'a str,
        fingerprint: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Claim>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            tx.execute(
                sql("DELETE FROM admin_requests \
                     WHERE created_at < $1 OR (answer IS NULL AND created_at < $2)")
                .bind(now - KEPT_FOR)
                .bind(now - ABANDONED_AFTER),
            )
            .await
            .context("Failed to drop expired idempotent answers")?;
            let claimed = tx
                .execute(
                    sql("INSERT INTO admin_requests (id, fingerprint, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                    .bind(id)
                    .bind(fingerprint)
                    .bind(now),
                )
                .await
                .context("Failed to claim an idempotent request")?
                > 0;
            let claim = if claimed {
                Claim::New
            } else {
                let (stored, status, answer): (String, Option<i64>, Option<String>) = tx
                    .fetch_one(
                        sql("SELECT fingerprint, status, answer FROM admin_requests \
                             WHERE id = $1")
                        .bind(id),
                    )
                    .await
                    .context("Failed to read an idempotent request")?;
                match (stored == fingerprint, status, answer) {
                    (false, _, _) => Claim::Mismatch,
                    (true, Some(status), Some(answer)) => Claim::Done {
                        status: u16::try_from(status).unwrap_or(500),
                        answer,
                    },
                    (true, _, _) => Claim::Running,
                }
            };
            tx.commit()
                .await
                .context("Failed to commit an idempotent claim")?;
            Ok(claim)
        })
    }

    fn finish<'a>(
        &'a self,
        id: &'a str,
        status: u16,
        answer: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql("UPDATE admin_requests SET status = $1, answer = $2 WHERE id = $3")
                    .bind(i64::from(status))
                    .bind(answer)
                    .bind(id),
            )
            .await
            .context("Failed to keep an idempotent answer")?;
            Ok(())
        })
    }

    fn forget<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(sql("DELETE FROM admin_requests WHERE id = $1").bind(id))
                .await
                .context("Failed to drop an idempotent claim")?;
            Ok(())
        })
    }
}
