//! Counted use, written behind the hot path in batches: usage counters (what quotas and
//! credits rest on), per-hour activity for reports, each key's last use, and the Billing Meter
//! events of metered prices (queued in the outbox in the same transaction). Several instances
//! share counts through a heartbeat and by reading back what the others wrote.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::meters::MeterDelta;
use super::snapshot::UsageRow;
use super::sql::sql;
use super::{BoxFuture, Db};

pub trait Usage: Send + Sync {
    /// Adds counted use in one transaction; usage writes do not bump the ledger version.
    /// Returns false, writing nothing, when the batch covers a journal already applied.
    fn flush_usage<'a>(&'a self, batch: &'a UsageBatch) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Says this instance is alive; returns how many other instances were alive in the last
    /// ten seconds.
    fn heartbeat<'a>(&'a self, instance: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<i64>>;
    /// Says this instance has stopped.
    fn leave<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Usage counters written since `since` (by any instance), to fold into this one's view.
    fn usage_since(&self, since: i64) -> BoxFuture<'_, anyhow::Result<Vec<UsageRow>>>;
    /// Adds refusals counted in the hour starting at `hour`, by reason.
    fn add_refusals<'a>(
        &'a self,
        hour: i64,
        counts: &'a [(&'static str, i64)],
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Counted use not yet written, taken from the gate by the flush.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBatch {
    pub at: i64,
    /// The usage journal whose counts this batch holds (all of them, and perhaps more), which
    /// it marks applied: a journal counts once, whichever writes it first.
    pub journal: Option<String>,
    pub counters: Vec<CounterDelta>,
    pub hourly: Vec<HourlyDelta>,
    pub last_used: Vec<(String, i64)>,
    /// Use of metered prices, to report to their Billing Meters.
    pub meters: Vec<MeterDelta>,
    /// Authorizations refused for known keys, per hour, key and reason.
    #[serde(default)]
    pub refused: Vec<KeyRefusalDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRefusalDelta {
    pub hour: i64,
    pub key_id: String,
    pub customer_id: String,
    /// The metrics' label of the reason.
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDelta {
    pub entitlement: String,
    pub period_start: i64,
    pub customer_id: String,
    pub used: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourlyDelta {
    pub hour: i64,
    pub tag: String,
    pub key_id: String,
    pub customer_id: String,
    pub count: i64,
}

impl Usage for Db {
    /// Each table's rows travel as one JSON array in one parameter: one statement per table
    /// however large the batch, and nothing to re-prepare per size.
    fn flush_usage<'a>(&'a self, batch: &'a UsageBatch) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            if let Some(journal) = &batch.journal {
                let first = tx
                    .execute(
                        sql(
                            "INSERT INTO usage_journals (id, applied_at) VALUES ($1, $2) \
                             ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(journal)
                        .bind(batch.at),
                    )
                    .await
                    .context("Failed to mark a usage journal applied")?
                    > 0;
                if !first {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            if !batch.counters.is_empty() {
                let rows: Vec<_> = batch
                    .counters
                    .iter()
                    .map(|c| (&c.entitlement, c.period_start, &c.customer_id, c.used))
                    .collect();
                tx.execute(
                    self.with_json_rows(
                        "INSERT INTO usage_counters \
                            (entitlement, period_start, customer_id, used, updated_at) \
                         SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, \
                                CAST(j.value ->> 3 AS BIGINT), $2 \
                         FROM {json_rows} WHERE true \
                         ON CONFLICT (entitlement, period_start) DO UPDATE \
                         SET used = usage_counters.used + excluded.used, \
                             updated_at = excluded.updated_at",
                    )
                    .bind(serde_json::to_string(&rows)?)
                    .bind(batch.at),
                )
                .await
                .context("Failed to write usage counters")?;
            }
            if !batch.hourly.is_empty() {
                let rows: Vec<_> = batch
                    .hourly
                    .iter()
                    .map(|h| (h.hour, &h.tag, &h.key_id, &h.customer_id, h.count))
                    .collect();
                tx.execute(
                    self.with_json_rows(
                        "INSERT INTO usage_hourly (hour, tag, key_id, customer_id, count) \
                         SELECT CAST(j.value ->> 0 AS BIGINT), j.value ->> 1, j.value ->> 2, \
                                j.value ->> 3, CAST(j.value ->> 4 AS BIGINT) \
                         FROM {json_rows} WHERE true \
                         ON CONFLICT (hour, tag, key_id) \
                         DO UPDATE SET count = usage_hourly.count + excluded.count",
                    )
                    .bind(serde_json::to_string(&rows)?),
                )
                .await
                .context("Failed to write hourly usage")?;
            }
            if !batch.refused.is_empty() {
                let rows: Vec<_> = batch
                    .refused
                    .iter()
                    .map(|r| (r.hour, &r.key_id, &r.customer_id, &r.reason, r.count))
                    .collect();
                tx.execute(
                    self.with_json_rows(
                        "INSERT INTO key_refusals_hourly (hour, key_id, customer_id, reason, count) \
                         SELECT CAST(j.value ->> 0 AS BIGINT), j.value ->> 1, j.value ->> 2, \
                                j.value ->> 3, CAST(j.value ->> 4 AS BIGINT) \
                         FROM {json_rows} WHERE true \
                         ON CONFLICT (hour, key_id, reason) \
                         DO UPDATE SET count = key_refusals_hourly.count + excluded.count",
                    )
                    .bind(serde_json::to_string(&rows)?),
                )
                .await
                .context("Failed to write refusals per key")?;
            }
            if !batch.last_used.is_empty() {
                tx.execute(
                    self.with_json_rows(
                        "INSERT INTO key_activity (key_id, last_used_at) \
                         SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT) \
                         FROM {json_rows} WHERE true \
                         ON CONFLICT (key_id) DO UPDATE SET last_used_at = CASE \
                             WHEN excluded.last_used_at > key_activity.last_used_at \
                             THEN excluded.last_used_at ELSE key_activity.last_used_at END",
                    )
                    .bind(serde_json::to_string(&batch.last_used)?),
                )
                .await
                .context("Failed to write key activity")?;
            }
            for m in &batch.meters {
                tx.execute(super::meters::queue(m, batch.at))
                    .await
                    .context("Failed to queue a meter report")?;
            }
            tx.commit().await.context("Failed to commit usage")?;
            Ok(true)
        })
    }

    fn add_refusals<'a>(
        &'a self,
        hour: i64,
        counts: &'a [(&'static str, i64)],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        // One statement for every reason of the hour: the counts travel as one JSON array.
        Box::pin(async move {
            if counts.is_empty() {
                return Ok(());
            }
            self.execute(
                self.with_json_rows(
                    "INSERT INTO refusals_hourly (hour, reason, count) \
                     SELECT $2, j.value ->> 0, CAST(j.value ->> 1 AS BIGINT) \
                     FROM {json_rows} WHERE true \
                     ON CONFLICT (hour, reason) \
                     DO UPDATE SET count = refusals_hourly.count + excluded.count",
                )
                .bind(serde_json::to_string(counts)?)
                .bind(hour),
            )
            .await
            .context("Failed to write refusals")?;
            Ok(())
        })
    }

    fn heartbeat<'a>(&'a self, instance: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<i64>> {
        Box::pin(async move {
            self.execute(
                sql("INSERT INTO instances (id, seen_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at")
                .bind(instance)
                .bind(now),
            )
            .await
            .context("Failed to record this instance's heartbeat")?;
            let (others,) = self
                .fetch_one(
                    sql("SELECT COUNT(*) FROM instances WHERE id <> $1 AND seen_at >= $2")
                        .bind(instance)
                        .bind(now - 10),
                )
                .await
                .context("Failed to count other instances")?;
            Ok(others)
        })
    }

    fn leave<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.execute(sql("DELETE FROM instances WHERE id = $1").bind(instance))
                .await
                .context("Failed to remove this instance's heartbeat")?;
            Ok(())
        })
    }

    fn usage_since(&self, since: i64) -> BoxFuture<'_, anyhow::Result<Vec<UsageRow>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT entitlement, period_start, customer_id, used FROM usage_counters \
                     WHERE updated_at >= $1",
                )
                .bind(since),
            )
            .await
            .context("Failed to read recent usage")
        })
    }
}
