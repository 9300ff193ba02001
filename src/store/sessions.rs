//! The account page's sessions, kept server-side so that ending one ends every copy of its
//! cookie.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::sql;
use super::{BoxFuture, Db};

pub trait Sessions: Send + Sync {
    fn start_session<'a>(&'a self, session: &'a StoredSession)
    -> BoxFuture<'a, anyhow::Result<()>>;
    /// The session with this id if it has not ended, has not expired at `now`, and the key it
    /// was started with is still active.
    fn live_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<StoredSession>>>;
    fn end_session<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Ends every session of the customer; returns how many were live.
    fn end_sessions_of<'a>(
        &'a self,
        customer_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<u64>>;
    /// Stores a sign-in link's token hash for a customer (and drops links long expired).
    fn add_sign_in_link<'a>(&'a self, link: &'a SignInLink) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Uses the link whose token hashes to `token_hash` if it is unused and unexpired at
    /// `now`, in one statement (a second use finds it used); returns its customer.
    fn use_sign_in_link<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
}

/// A sign-in link as stored: its token's SHA-256 (hex), never the token.
#[derive(Debug, Clone)]
pub struct SignInLink {
    pub token_hash: String,
    pub customer_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StoredSession {
    pub id: String,
    pub customer_id: String,
    /// The key signed in with; `None` for a session started from a link sent by email.
    pub key_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Sessions for Db {
    fn start_session<'a>(
        &'a self,
        session: &'a StoredSession,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // The customer's sessions that ended long ago go as a new one starts.
            self.execute(
                sql("DELETE FROM sessions WHERE customer_id = $1 AND \
                     (expires_at < $2 OR ended_at < $2)")
                .bind(&session.customer_id)
                .bind(session.created_at - 30 * 86_400),
            )
            .await
            .context("Failed to clear old sessions")?;
            self.execute(
                sql(
                    "INSERT INTO sessions (id, customer_id, key_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&session.id)
                .bind(&session.customer_id)
                .bind(&session.key_id)
                .bind(session.created_at)
                .bind(session.expires_at),
            )
            .await
            .context("Failed to store a session")?;
            Ok(())
        })
    }

    fn live_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<StoredSession>>> {
        Box::pin(async move {
            self.fetch_optional(
                sql(
                    "SELECT s.id, s.customer_id, s.key_id, s.created_at, s.expires_at \
                     FROM sessions s LEFT JOIN access_keys k ON k.id = s.key_id \
                     WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
                       AND (s.key_id IS NULL OR (k.id IS NOT NULL AND k.revoked_at IS NULL \
                            AND (k.expires_at IS NULL OR k.expires_at > $2)))",
                )
                .bind(id)
                .bind(now),
            )
            .await
            .context("Failed to read a session")
        })
    }

    fn end_session<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                    .bind(now)
                    .bind(id),
            )
            .await
            .context("Failed to end a session")?;
            Ok(())
        })
    }

    fn end_sessions_of<'a>(
        &'a self,
        customer_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<u64>> {
        Box::pin(async move {
            self.execute(
                sql("UPDATE sessions SET ended_at = $1 \
                     WHERE customer_id = $2 AND ended_at IS NULL AND expires_at > $1")
                .bind(now)
                .bind(customer_id),
            )
            .await
            .context("Failed to end the customer's sessions")
        })
    }

    fn add_sign_in_link<'a>(&'a self, link: &'a SignInLink) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql("DELETE FROM sign_in_links WHERE expires_at < $1")
                    .bind(link.created_at - 86_400),
            )
            .await
            .context("Failed to clear old sign-in links")?;
            self.execute(
                sql("INSERT INTO sign_in_links \
                        (token_hash, customer_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)")
                .bind(&link.token_hash)
                .bind(&link.customer_id)
                .bind(link.created_at)
                .bind(link.expires_at),
            )
            .await
            .context("Failed to store a sign-in link")?;
            Ok(())
        })
    }

    fn use_sign_in_link<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move {
            let used: Option<(String,)> = self
                .fetch_optional(
                    sql("UPDATE sign_in_links SET used_at = $1 \
                         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
                         RETURNING customer_id")
                    .bind(now)
                    .bind(token_hash),
                )
                .await
                .context("Failed to use a sign-in link")?;
            Ok(used.map(|(customer,)| customer))
        })
    }
}
