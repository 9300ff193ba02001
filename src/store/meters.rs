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
    /// Sets a report Stripe refused for good aside, with Stripe's answer: it is not sent again.
    fn set_meter_report_aside<'a>(
        &'a self,
        id: &'a str,
        error: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Reports set aside, newest first, with their error.
    fn meter_reports_set_aside(
        &self,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<SetAsideReport>>>;
    /// Each meter's payload keys by event name: (event name, customer key, value key).
    fn meter_payload_keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, String, String)>>>;
}

/// A meter report Stripe refused for good.
#[derive(Debug, Clone, FromRow)]
pub struct SetAsideReport {
    pub id: String,
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
    pub created_at: i64,
    pub set_aside_at: i64,
    pub last_error: Option<String>,
}

/// A Billing Meter as reports need it: the payload keys of its `customer_mapping` and
/// `value_settings`.
#[derive(Debug, Clone)]
pub struct Meter {
    pub id: String,
    pub event_name: String,
    pub customer_key: String,
    pub value_key: String,
    pub updated_at: i64,
}

/// Stores what a meter reads from a payload (the Stripe mirror's write, kept beside the outbox
/// that uses it).
pub(super) async fn upsert_meter(db: &Db, meter: &Meter) -> anyhow::Result<()> {
    db.execute(
        sql("INSERT INTO billing_meters \
                (event_name, meter_id, customer_key, value_key, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_name) DO UPDATE \
             SET meter_id = excluded.meter_id, customer_key = excluded.customer_key, \
                 value_key = excluded.value_key, updated_at = excluded.updated_at")
        .bind(&meter.event_name)
        .bind(&meter.id)
        .bind(&meter.customer_key)
        .bind(&meter.value_key)
        .bind(meter.updated_at),
    )
    .await
    .context("Failed to store a meter")?;
    Ok(())
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
    pub customer_id: super::IdText,
    pub event_name: super::IdText,
    pub value: i64,
}

/// The statement that queues one meter event, run inside the usage flush's transaction.
pub(super) fn queue(delta: &MeterDelta, at: i64) -> Statement {
    sql(
        "INSERT INTO meter_reports (id, customer_id, event_name, value, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(format!("mr_{}", random_base62(24)))
    .bind(delta.customer_id.as_str())
    .bind(delta.event_name.as_str())
    .bind(delta.value)
    .bind(at)
}

impl MeterOutbox for Db {
    fn unsent_meter_reports(&self, limit: i64) -> BoxFuture<'_, anyhow::Result<Vec<MeterReport>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT id, customer_id, event_name, value, created_at, attempts \
                     FROM meter_reports WHERE sent_at IS NULL AND set_aside_at IS NULL \
                     ORDER BY created_at, id LIMIT $1",
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

    fn set_meter_report_aside<'a>(
        &'a self,
        id: &'a str,
        error: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(
                sql(
                    "UPDATE meter_reports SET attempts = attempts + 1, last_error = $1, \
                        set_aside_at = $2 WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(id),
            )
            .await
            .context("Failed to set a meter report aside")?;
            Ok(())
        })
    }

    fn meter_reports_set_aside(
        &self,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<SetAsideReport>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT id, customer_id, event_name, value, created_at, set_aside_at, \
                        last_error FROM meter_reports WHERE set_aside_at IS NOT NULL \
                     ORDER BY set_aside_at DESC, id LIMIT $1",
                )
                .bind(limit),
            )
            .await
            .context("Failed to read the meter reports set aside")
        })
    }

    fn meter_payload_keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, String, String)>>> {
        Box::pin(async move {
            self.fetch_all(sql(
                "SELECT event_name, customer_key, value_key FROM billing_meters",
            ))
            .await
            .context("Failed to read the meters' payload keys")
        })
    }
}
