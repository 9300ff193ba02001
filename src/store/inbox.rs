//! The webhook inbox: verified Stripe events, stored once by id, worked in the background with
//! retries and backoff, claimed with a lease so several instances never work one event twice.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::sql;
use super::{BoxFuture, Db, Pool};

pub trait Inbox: Send + Sync {
    /// Stores a verified webhook event; returns false if its id was already stored.
    fn insert_event<'a>(&'a self, event: &'a NewEvent) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Claims unprocessed events whose next attempt is due and that no other instance holds,
    /// for `lease` seconds; oldest first. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets
    /// instances claim side by side without waiting on each other.
    fn claim_events(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>>;
    /// Unprocessed events that have failed at least once, with their last error.
    fn failed_events(&self) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>>;
    fn event_done<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Makes an unprocessed event due now (the owner's "retry"); false if there is no such
    /// event waiting.
    fn retry_event<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<bool>>;
    fn event_failed<'a>(
        &'a self,
        id: &'a str,
        error: &'a str,
        retry_at: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A verified webhook event, as received.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct InboxEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub processed_at: Option<i64>,
}

impl Inbox for Db {
    fn insert_event<'a>(&'a self, event: &'a NewEvent) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    sql("INSERT INTO stripe_events \
                            (id, event_type, created, payload, received_at, next_attempt_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING")
                    .bind(&event.id)
                    .bind(&event.event_type)
                    .bind(event.created)
                    .bind(&event.payload)
                    .bind(event.received_at),
                )
                .await
                .context("Failed to store a webhook event")?;
            Ok(inserted > 0)
        })
    }

    fn claim_events(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>> {
        Box::pin(async move {
            let claim = match self.pool {
                Pool::Sqlite(_) => super::sqlite::CLAIM_EVENTS,
                Pool::Postgres(_) => super::postgres::CLAIM_EVENTS,
            };
            let mut tx = self.begin_write().await?;
            let mut events: Vec<InboxEvent> = tx
                .fetch_all(sql(claim).bind(now).bind(now + lease).bind(limit))
                .await
                .context("Failed to claim webhook events")?;
            tx.commit()
                .await
                .context("Failed to commit webhook claims")?;
            events.sort_by(|a, b| {
                (a.created, a.received_at, &a.id).cmp(&(b.created, b.received_at, &b.id))
            });
            Ok(events)
        })
    }

    fn failed_events(&self) -> BoxFuture<'_, anyhow::Result<Vec<InboxEvent>>> {
        Box::pin(async move {
            self.fetch_all(sql(
                "SELECT id, event_type, created, payload, received_at, attempts, last_error, \
                    processed_at \
                 FROM stripe_events WHERE processed_at IS NULL AND attempts > 0 \
                 ORDER BY created, id",
            ))
            .await
            .context("Failed to read failed webhook events")
        })
    }

    fn event_done<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql(
                    "UPDATE stripe_events SET processed_at = $1, attempts = attempts + 1, \
                        last_error = NULL, claimed_until = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(id),
            )
            .await
            .context("Failed to mark a webhook event processed")?;
            Ok(())
        })
    }

    fn retry_event<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let due = self
                .execute(
                    sql("UPDATE stripe_events SET next_attempt_at = $1 \
                         WHERE id = $2 AND processed_at IS NULL")
                    .bind(now)
                    .bind(id),
                )
                .await
                .context("Failed to make a webhook event due")?;
            Ok(due > 0)
        })
    }

    fn event_failed<'a>(
        &'a self,
        id: &'a str,
        error: &'a str,
        retry_at: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql(
                    "UPDATE stripe_events SET attempts = attempts + 1, last_error = $1, \
                        next_attempt_at = $2, claimed_until = NULL WHERE id = $3",
                )
                .bind(error)
                .bind(retry_at)
                .bind(id),
            )
            .await
            .context("Failed to record a webhook event failure")?;
            Ok(())
        })
    }
}
