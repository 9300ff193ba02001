//! Alerts and their delivery outbox: an alert fires once per (customer, kind, subject,
//! threshold, period), its deliveries written in the same transaction, so a restart neither
//! loses one nor sends one twice; a delivery is claimed for a while before it is sent, so two
//! instances do not send it at once.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::{Tx, sql};
use super::{BoxFuture, Db};

pub trait Alerts: Send + Sync {
    /// Every customer's own thresholds (`80,100`).
    fn alert_preferences(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, String)>>>;
    /// One customer's own thresholds, if they set some.
    fn alert_preference<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
    /// Sets (or, with `None`, removes) a customer's own thresholds.
    fn set_alert_preference<'a>(
        &'a self,
        customer_id: &'a str,
        alert_at: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Fires the alert with its deliveries unless it fired already; returns whether it did now.
    fn fire_alert<'a>(
        &'a self,
        alert: &'a NewAlert,
        deliveries: &'a [NewDelivery],
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Alerts of limits and failed payments that have fired and are not resolved.
    fn open_alerts(&self) -> BoxFuture<'_, anyhow::Result<Vec<AlertRow>>>;
    /// Resolves the alert with its deliveries unless it was resolved already.
    fn resolve_alert<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        deliveries: &'a [NewDelivery],
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Claims up to `limit` deliveries due at `now` for `lease` seconds: another instance does
    /// not take them meanwhile.
    fn claim_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<DeliveryRow>>>;
    /// Records a delivery's outcome: sent, tried again at `retry_at`, or given up (`None`).
    fn delivery_done<'a>(
        &'a self,
        id: &'a str,
        outcome: Delivered<'a>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: String,
    pub customer_id: String,
    /// `quota`, `credits`, `key_rolled`.
    pub kind: &'static str,
    pub subject: String,
    pub threshold: i64,
    pub period_start: i64,
    pub fired_at: i64,
    /// JSON: what the alert says.
    pub detail: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct AlertRow {
    pub id: String,
    pub customer_id: String,
    pub kind: String,
    pub subject: String,
    pub threshold: i64,
    pub period_start: i64,
    pub detail: String,
}

/// One message to send about an alert: to the owner's webhook or to the customer by email.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `msg_…`: the webhook's `webhook-id`, the same on every retry.
    pub id: String,
    pub event_type: String,
    /// `webhook` or `email`.
    pub channel: &'static str,
    /// The email address, for `email`.
    pub recipient: Option<String>,
    /// The webhook's JSON body, or the email's subject and text as JSON.
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub channel: String,
    pub recipient: Option<String>,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
}

pub enum Delivered<'a> {
    Sent,
    Failed { error: &'a str, retry_at: i64 },
    GaveUp { error: &'a str },
}

async fn insert_deliveries(
    tx: &mut Tx,
    alert_id: &str,
    deliveries: &[NewDelivery],
) -> anyhow::Result<()> {
    for d in deliveries {
        tx.execute(
            sql("INSERT INTO alert_deliveries \
                    (id, alert_id, event_type, channel, recipient, payload, created_at, \
                     next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
            .bind(&d.id)
            .bind(alert_id)
            .bind(&d.event_type)
            .bind(d.channel)
            .bind(&d.recipient)
            .bind(&d.payload)
            .bind(d.created_at),
        )
        .await
        .context("Failed to queue an alert's delivery")?;
    }
    Ok(())
}

impl Alerts for Db {
    fn alert_preferences(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, String)>>> {
        Box::pin(async move {
            self.fetch_all(sql("SELECT customer_id, alert_at FROM alert_preferences"))
                .await
                .context("Failed to read alert preferences")
        })
    }

    fn alert_preference<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move {
            let row: Option<(String,)> = self
                .fetch_optional(
                    sql("SELECT alert_at FROM alert_preferences WHERE customer_id = $1")
                        .bind(customer_id),
                )
                .await
                .context("Failed to read alert preferences")?;
            Ok(row.map(|(at,)| at))
        })
    }

    fn set_alert_preference<'a>(
        &'a self,
        customer_id: &'a str,
        alert_at: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let statement = match alert_at {
                Some(at) => sql(
                    "INSERT INTO alert_preferences (customer_id, alert_at, updated_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (customer_id) DO UPDATE \
                         SET alert_at = excluded.alert_at, updated_at = excluded.updated_at",
                )
                .bind(customer_id)
                .bind(at)
                .bind(now),
                None => {
                    sql("DELETE FROM alert_preferences WHERE customer_id = $1").bind(customer_id)
                }
            };
            self.execute(statement)
                .await
                .context("Failed to store alert preferences")?;
            Ok(())
        })
    }

    fn fire_alert<'a>(
        &'a self,
        alert: &'a NewAlert,
        deliveries: &'a [NewDelivery],
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let fired = tx
                .execute(
                    sql(
                        "INSERT INTO alerts (id, customer_id, kind, subject, threshold, \
                            period_start, fired_at, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (customer_id, kind, subject, threshold, period_start) \
                         DO NOTHING",
                    )
                    .bind(&alert.id)
                    .bind(&alert.customer_id)
                    .bind(alert.kind)
                    .bind(&alert.subject)
                    .bind(alert.threshold)
                    .bind(alert.period_start)
                    .bind(alert.fired_at)
                    .bind(&alert.detail),
                )
                .await
                .context("Failed to record an alert")?
                > 0;
            if fired {
                insert_deliveries(&mut tx, &alert.id, deliveries).await?;
            }
            tx.commit().await.context("Failed to commit an alert")?;
            Ok(fired)
        })
    }

    fn open_alerts(&self) -> BoxFuture<'_, anyhow::Result<Vec<AlertRow>>> {
        Box::pin(async move {
            self.fetch_all(sql(
                "SELECT id, customer_id, kind, subject, threshold, period_start, detail \
                 FROM alerts WHERE resolved_at IS NULL AND kind IN ('quota', 'credits', 'payment')",
            ))
            .await
            .context("Failed to read open alerts")
        })
    }

    fn resolve_alert<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        deliveries: &'a [NewDelivery],
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let resolved = tx
                .execute(
                    sql("UPDATE alerts SET resolved_at = $1 WHERE id = $2 AND resolved_at IS NULL")
                        .bind(now)
                        .bind(id),
                )
                .await
                .context("Failed to resolve an alert")?
                > 0;
            if resolved {
                insert_deliveries(&mut tx, id, deliveries).await?;
            }
            tx.commit()
                .await
                .context("Failed to commit a resolved alert")?;
            Ok(resolved)
        })
    }

    fn claim_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<DeliveryRow>>> {
        Box::pin(async move {
            let due: Vec<DeliveryRow> = self
                .fetch_all(
                    sql(
                        "SELECT id, event_type, channel, recipient, payload, created_at, attempts \
                         FROM alert_deliveries \
                         WHERE delivered_at IS NULL AND given_up_at IS NULL \
                           AND next_attempt_at <= $1 \
                         ORDER BY next_attempt_at, id LIMIT $2",
                    )
                    .bind(now)
                    .bind(limit),
                )
                .await
                .context("Failed to read due alert deliveries")?;
            let mut claimed = Vec::with_capacity(due.len());
            for delivery in due {
                let taken = self
                    .execute(
                        sql("UPDATE alert_deliveries SET next_attempt_at = $1 \
                             WHERE id = $2 AND delivered_at IS NULL AND next_attempt_at <= $3")
                        .bind(now + lease)
                        .bind(&delivery.id)
                        .bind(now),
                    )
                    .await
                    .context("Failed to claim an alert delivery")?;
                if taken > 0 {
                    claimed.push(delivery);
                }
            }
            Ok(claimed)
        })
    }

    fn delivery_done<'a>(
        &'a self,
        id: &'a str,
        outcome: Delivered<'a>,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let statement = match outcome {
                Delivered::Sent => sql("UPDATE alert_deliveries \
                         SET delivered_at = $1, attempts = attempts + 1, last_error = NULL \
                         WHERE id = $2")
                .bind(now)
                .bind(id),
                Delivered::Failed { error, retry_at } => sql("UPDATE alert_deliveries \
                         SET next_attempt_at = $1, attempts = attempts + 1, last_error = $2 \
                         WHERE id = $3")
                .bind(retry_at)
                .bind(error)
                .bind(id),
                Delivered::GaveUp { error } => sql("UPDATE alert_deliveries \
                         SET given_up_at = $1, attempts = attempts + 1, last_error = $2 \
                         WHERE id = $3")
                .bind(now)
                .bind(error)
                .bind(id),
            };
            self.execute(statement)
                .await
                .context("Failed to record an alert delivery")?;
            Ok(())
        })
    }
}
