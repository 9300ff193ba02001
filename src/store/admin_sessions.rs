//! The dashboard's sign-ins, kept server-side so that signing out ends every copy of the
//! cookie, and a session ends with the token it was started with.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::sql;
use super::{BoxFuture, Db};

pub trait AdminSessions: Send + Sync {
    fn start_admin_session<'a>(
        &'a self,
        session: &'a AdminSession,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The session with this id if it has not ended or expired at `now`.
    fn live_admin_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<AdminSession>>>;
    fn end_admin_session<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AdminSession {
    pub id: String,
    /// The token's label, who acts in the audit log.
    pub label: String,
    /// SHA-256 (hex) of the token signed in with.
    pub token_digest: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl AdminSessions for Db {
    fn start_admin_session<'a>(
        &'a self,
        session: &'a AdminSession,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql("DELETE FROM admin_sessions WHERE expires_at < $1 OR ended_at < $1")
                    .bind(session.created_at - 30 * 86_400),
            )
            .await
            .context("Failed to clear old dashboard sessions")?;
            self.execute(
                sql("INSERT INTO admin_sessions \
                        (id, label, token_digest, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)")
                .bind(&session.id)
                .bind(&session.label)
                .bind(&session.token_digest)
                .bind(session.created_at)
                .bind(session.expires_at),
            )
            .await
            .context("Failed to start a dashboard session")?;
            Ok(())
        })
    }

    fn live_admin_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<AdminSession>>> {
        Box::pin(async move {
            self.fetch_optional(
                sql(
                    "SELECT id, label, token_digest, created_at, expires_at FROM admin_sessions \
                     WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
                )
                .bind(id)
                .bind(now),
            )
            .await
            .context("Failed to read a dashboard session")
        })
    }

    fn end_admin_session<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql("UPDATE admin_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                    .bind(now)
                    .bind(id),
            )
            .await
            .context("Failed to end a dashboard session")?;
            Ok(())
        })
    }
}
