//! The Billing Meter outbox: use of metered prices, queued by the usage flush and sent to
//! Stripe by the meter reporter. Each row's id is the event's idempotent `identifier`.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::{Statement, sql};
use super::{BoxFuture, Db};
use crate::domain::random_base62;

pub trait MeterOutbox: Send + Sync {
    /// Billing Meter events not yet accepted by Stripe, oldest first.
    fn unsent_meter_reports(&self, limit: i64) -> BoxFuture<'_, anyhow::Result<Vec<MeterReport>>>;
    /// Records an attempt to send a meter event: sent when `error` is `None`.
    fn meter_report_done<'a>(
        &'a self,
        id: &'a str,
        error: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A Billing Meter event waiting in the outbox; `id` is its idempotent identifier.
#[derive(Debug, Clone, FromRow)]
pub struct MeterReport {
    pub id: String,
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
    pub created_at: i64,
    pub attempts: i64,
}

/// Use of one metered price by one customer since the last flush, to report to its meter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MeterDelta {
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
}

/// The statement that queues one meter event, run inside the usage flush's transaction.
pub(super) fn queue(delta: &MeterDelta, at: i64) -> Statement {
    sql(
        "INSERT INTO meter_reports (id, customer_id, event_name, value, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(format!("mr_{}", random_base62(24)))
    .bind(&delta.customer_id)
    .bind(&delta.event_name)
    .bind(delta.value)
    .bind(at)
}

impl MeterOutbox for Db {
    fn unsent_meter_reports(&self, limit: i64) -> BoxFuture<'_, anyhow::Result<Vec<MeterReport>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT id, customer_id, event_name, value, created_at, attempts \
                     FROM meter_reports WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
                )
                .bind(limit),
            )
            .await
            .context("Failed to read the meter outbox")
        })
    }

    fn meter_report_done<'a>(
        &'a self,
        id: &'a str,
        error: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql(
                    "UPDATE meter_reports SET attempts = attempts + 1, last_error = $1, \
                        sent_at = CASE WHEN $1 IS NULL THEN $2 ELSE NULL END WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(id),
            )
            .await
            .context("Failed to record a meter report")?;
            Ok(())
        })
    }
}
