//! Counted use, written behind the hot path in batches: usage counters (what quotas and
//! credits rest on), per-hour activity for reports, each key's last use, and the Billing Meter
//! events of metered prices (queued in the outbox in the same transaction). Several instances
//! share counts through a heartbeat and by reading back what the others wrote.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::ledger_rows::UsageRow;
use super::meters::MeterDelta;
use super::sql::{Statement, sql};
use super::{BoxFuture, Db, IdText};

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
    /// Like [`Self::flush_usage`], except that the counters are appended to the usage log as
    /// one row of `instance`'s instead of added to the counters; [`Self::compact_log`] and
    /// [`Self::fold_logged_row`] add them later.
    fn log_usage<'a>(
        &'a self,
        batch: &'a UsageBatch,
        instance: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Replaces `instance`'s logged rows by their sum, in new rows of at most `slice`
    /// counters each (returned by seq, in the order of the counters' key), in one
    /// transaction; [`Self::fold_logged_row`] then adds each to the counters in a transaction
    /// of its own, so a fold holds SQLite's one writer for a slice at a time. `counts` is the
    /// sum as the instance kept it, used when all `logged` rows it appended are still there;
    /// if another process folded some of them meanwhile (a start folds every row it finds),
    /// the rows left are read and summed instead.
    fn compact_log<'a>(
        &'a self,
        instance: &'a str,
        logged: usize,
        counts: &'a [CounterDelta],
        slice: usize,
        at: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<i64>>>;
    /// Adds one logged row to the counters and removes it, in one transaction; false, adding
    /// nothing, if another process took it first. Whoever removes a row adds it, so a row
    /// counts once whoever takes it: should SQLite give a removed row's seq to a newer row,
    /// that row is added by whoever removes it, and its instance, finding fewer rows than it
    /// logged, reads back the rest.
    fn fold_logged_row(&self, seq: i64, at: i64) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// Adds to the counters the logged rows of every instance but `instance` not seen since
    /// `seen_since` (`i64::MAX`: every other instance's, as a start does) and removes them;
    /// returns the totals of the counters they added to.
    fn fold_left_behind<'a>(
        &'a self,
        instance: &'a str,
        seen_since: i64,
        at: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<UsageRow>>>;
    /// Adds every logged row to the counters, whoever logged it (a start, an export; an
    /// instance still running reads what is left of its own when it next folds).
    fn fold_every_logged_row(&self, at: i64) -> BoxFuture<'_, anyhow::Result<Vec<UsageRow>>> {
        self.fold_left_behind("", i64::MAX, at)
    }
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
    pub last_used: Vec<(IdText, i64)>,
    /// Use of metered prices, to report to their Billing Meters.
    pub meters: Vec<MeterDelta>,
    /// Authorizations refused for known keys, per hour, key and reason.
    #[serde(default)]
    pub refused: Vec<KeyRefusalDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRefusalDelta {
    pub hour: i64,
    pub key_id: IdText,
    pub customer_id: IdText,
    /// The metrics' label of the reason.
    pub reason: IdText,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDelta {
    pub entitlement: IdText,
    pub period_start: i64,
    pub customer_id: IdText,
    pub used: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourlyDelta {
    pub hour: i64,
    pub tag: IdText,
    pub key_id: IdText,
    pub customer_id: IdText,
    pub count: i64,
}

impl CounterDelta {
    /// Its table's key. Rows written in this order go through the table's pages once; in the
    /// order they come from the gate's hash maps, each row lands on a page of its own.
    pub fn table_key(&self) -> (&str, i64) {
        (&self.entitlement, self.period_start)
    }
}

impl HourlyDelta {
    /// Its table's key (see [`CounterDelta::table_key`]).
    pub fn table_key(&self) -> (i64, &str, &str) {
        (self.hour, &self.tag, &self.key_id)
    }
}

impl Usage for Db {
    fn flush_usage<'a>(&'a self, batch: &'a UsageBatch) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(self.write_usage(batch, None))
    }

    fn log_usage<'a>(
        &'a self,
        batch: &'a UsageBatch,
        instance: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(self.write_usage(batch, Some(instance)))
    }

    fn compact_log<'a>(
        &'a self,
        instance: &'a str,
        logged: usize,
        counts: &'a [CounterDelta],
        slice: usize,
        at: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<i64>>> {
        Box::pin(async move {
            // Rendered before the write's turn is taken (see `write_usage`); again from what
            // is read, should another process have folded some of the rows meanwhile.
            let rendered = sliced_rows(counts, slice)?;
            let mut tx = self.begin_write().await?;
            let (left,): (i64,) = tx
                .fetch_one(sql("SELECT COUNT(*) FROM usage_log WHERE instance = $1").bind(instance))
                .await
                .context("Failed to count this instance's logged use")?;
            let slices = if usize::try_from(left) == Ok(logged) {
                let removed = tx
                    .execute(sql("DELETE FROM usage_log WHERE instance = $1").bind(instance))
                    .await
                    .context("Failed to remove folded use from the log")?;
                // Another process folded some of them between the count and the delete: the
                // next fold reads what is left.
                anyhow::ensure!(
                    usize::try_from(removed) == Ok(logged),
                    "the usage log changed while it was folded"
                );
                rendered
            } else {
                let rows: Vec<(String,)> = tx
                    .fetch_all(
                        sql("DELETE FROM usage_log WHERE instance = $1 RETURNING counters")
                            .bind(instance),
                    )
                    .await
                    .context("Failed to take this instance's logged use")?;
                sliced_rows(&summed(&rows)?, slice)?
            };
            let mut seqs = Vec::with_capacity(slices.len());
            for rows in slices {
                let (seq,): (i64,) = tx
                    .fetch_one(
                        sql("INSERT INTO usage_log (instance, at, counters) \
                             VALUES ($1, $2, $3) RETURNING seq")
                        .bind(instance)
                        .bind(at)
                        .bind(rows),
                    )
                    .await
                    .context("Failed to log summed use")?;
                seqs.push(seq);
            }
            tx.commit().await.context("Failed to commit summed use")?;
            Ok(seqs)
        })
    }

    fn fold_logged_row(&self, seq: i64, at: i64) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let row: Option<(String,)> = tx
                .fetch_optional(
                    sql("DELETE FROM usage_log WHERE seq = $1 RETURNING counters").bind(seq),
                )
                .await
                .context("Failed to take a logged row")?;
            let Some((counters,)) = row else {
                tx.rollback().await?;
                return Ok(false);
            };
            // The row holds its counts as the counters' upsert reads them.
            tx.execute(self.add_counters(counters, at))
                .await
                .context("Failed to fold logged use into the counters")?;
            tx.commit().await.context("Failed to commit folded use")?;
            Ok(true)
        })
    }

    fn fold_left_behind<'a>(
        &'a self,
        instance: &'a str,
        seen_since: i64,
        at: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<UsageRow>>> {
        Box::pin(async move {
            // Read first: nearly always there is nothing, and then no writer's turn is taken
            // (every start asks).
            let (others,): (i64,) = self
                .fetch_one(
                    sql("SELECT COUNT(*) FROM usage_log WHERE instance <> $1").bind(instance),
                )
                .await
                .context("Failed to look for logged use left behind")?;
            if others == 0 {
                return Ok(Vec::new());
            }
            let mut tx = self.begin_write().await?;
            let rows: Vec<(String,)> = tx
                .fetch_all(
                    sql(
                        "DELETE FROM usage_log WHERE instance <> $1 AND instance NOT IN \
                         (SELECT id FROM instances WHERE seen_at >= $2) RETURNING counters",
                    )
                    .bind(instance)
                    .bind(seen_since),
                )
                .await
                .context("Failed to take logged use left behind")?;
            if rows.is_empty() {
                tx.rollback().await?;
                return Ok(Vec::new());
            }
            let summed = summed(&rows)?;
            let totals = tx
                .fetch_all(self.add_counters_returning(counter_rows(&summed)?, at))
                .await
                .context("Failed to fold logged use left behind into the counters")?;
            tx.commit().await.context("Failed to commit folded use")?;
            Ok(totals)
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

impl Db {
    /// Each table's rows travel as one JSON array in one parameter: one statement per table
    /// however large the batch, and nothing to re-prepare per size. The rows go in the order
    /// of their table's key, so each page of it is read and written once per statement rather
    /// than once per row (the rows come from hash maps: random keys, random pages). With
    /// `log`, the counters go to the usage log as that instance's row.
    ///
    /// Every parameter is rendered before the write's turn is taken: a minute's are tens of
    /// thousands of rows to sort and render, and every other writer of the process (a
    /// webhook's) waits for that turn.
    async fn write_usage(&self, batch: &UsageBatch, log: Option<&str>) -> anyhow::Result<bool> {
        let rendered = Rendered::of(batch)?;
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
        if let Some(rows) = rendered.counters {
            let statement = match log {
                None => self.add_counters(rows, batch.at),
                Some(instance) => {
                    sql("INSERT INTO usage_log (instance, at, counters) VALUES ($1, $2, $3)")
                        .bind(instance)
                        .bind(batch.at)
                        .bind(rows)
                }
            };
            tx.execute(statement)
                .await
                .context("Failed to write usage counters")?;
        }
        if let Some(rows) = rendered.hourly {
            tx.execute(
                self.with_json_rows(
                    "INSERT INTO usage_hourly (hour, tag, key_id, customer_id, count) \
                     SELECT CAST(j.value ->> 0 AS BIGINT), j.value ->> 1, j.value ->> 2, \
                            j.value ->> 3, CAST(j.value ->> 4 AS BIGINT) \
                     FROM {json_rows} WHERE true \
                     ON CONFLICT (hour, tag, key_id) \
                     DO UPDATE SET count = usage_hourly.count + excluded.count",
                )
                .bind(rows),
            )
            .await
            .context("Failed to write hourly usage")?;
        }
        if let Some(rows) = rendered.refused {
            tx.execute(
                self.with_json_rows(
                    "INSERT INTO key_refusals_hourly (hour, key_id, customer_id, reason, count) \
                     SELECT CAST(j.value ->> 0 AS BIGINT), j.value ->> 1, j.value ->> 2, \
                            j.value ->> 3, CAST(j.value ->> 4 AS BIGINT) \
                     FROM {json_rows} WHERE true \
                     ON CONFLICT (hour, key_id, reason) \
                     DO UPDATE SET count = key_refusals_hourly.count + excluded.count",
                )
                .bind(rows),
            )
            .await
            .context("Failed to write refusals per key")?;
        }
        if let Some(rows) = rendered.last_used {
            tx.execute(
                self.with_json_rows(
                    "INSERT INTO key_activity (key_id, last_used_at) \
                     SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT) \
                     FROM {json_rows} WHERE true \
                     ON CONFLICT (key_id) DO UPDATE SET last_used_at = CASE \
                         WHEN excluded.last_used_at > key_activity.last_used_at \
                         THEN excluded.last_used_at ELSE key_activity.last_used_at END",
                )
                .bind(rows),
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
    }

    /// Adds counts (`rows`: a JSON array of [entitlement, period_start, customer_id, used]) to
    /// the counters.
    fn add_counters(&self, rows: String, at: i64) -> Statement {
        self.with_json_rows(ADD_COUNTERS).bind(rows).bind(at)
    }

    /// [`Self::add_counters`], answering with the counters' totals.
    fn add_counters_returning(&self, rows: String, at: i64) -> Statement {
        self.with_json_rows(&format!(
            "{ADD_COUNTERS} RETURNING entitlement, period_start, customer_id, used"
        ))
        .bind(rows)
        .bind(at)
    }
}

const ADD_COUNTERS: &str = "INSERT INTO usage_counters \
        (entitlement, period_start, customer_id, used, updated_at) \
     SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, \
            CAST(j.value ->> 3 AS BIGINT), $2 \
     FROM {json_rows} WHERE true \
     ON CONFLICT (entitlement, period_start) DO UPDATE \
     SET used = usage_counters.used + excluded.used, \
         updated_at = excluded.updated_at";

/// A batch's rows as the statements of [`Db::write_usage`] bind them: each table's a JSON
/// array in the order of its key (`None`: no rows for that table).
struct Rendered {
    counters: Option<String>,
    hourly: Option<String>,
    refused: Option<String>,
    last_used: Option<String>,
}

impl Rendered {
    fn of(batch: &UsageBatch) -> anyhow::Result<Self> {
        let counters = (!batch.counters.is_empty())
            .then(|| counter_rows(&batch.counters))
            .transpose()?;
        let hourly = (!batch.hourly.is_empty())
            .then(|| {
                let mut hourly: Vec<&HourlyDelta> = batch.hourly.iter().collect();
                hourly.sort_unstable_by(|a, b| a.table_key().cmp(&b.table_key()));
                let rows: Vec<_> = hourly
                    .iter()
                    .map(|h| (h.hour, &h.tag, &h.key_id, &h.customer_id, h.count))
                    .collect();
                serde_json::to_string(&rows)
            })
            .transpose()?;
        let refused = (!batch.refused.is_empty())
            .then(|| {
                let mut rows: Vec<_> = batch
                    .refused
                    .iter()
                    .map(|r| (r.hour, &r.key_id, &r.customer_id, &r.reason, r.count))
                    .collect();
                rows.sort_unstable_by(|a, b| (a.0, a.1, a.3).cmp(&(b.0, b.1, b.3)));
                serde_json::to_string(&rows)
            })
            .transpose()?;
        let last_used = (!batch.last_used.is_empty())
            .then(|| {
                let mut rows: Vec<_> = batch.last_used.iter().collect();
                rows.sort_unstable();
                serde_json::to_string(&rows)
            })
            .transpose()?;
        Ok(Self {
            counters,
            hourly,
            refused,
            last_used,
        })
    }
}

/// Counters as the store writes them: a JSON array of [entitlement, period_start,
/// customer_id, used], in the order of the counters' key.
fn counter_rows<'a>(counts: impl IntoIterator<Item = &'a CounterDelta>) -> anyhow::Result<String> {
    rendered_counters(&in_key_order(counts))
}

/// Counts as log rows of at most `slice` counters each, together in the order of the
/// counters' key (each as [`counter_rows`] renders it).
fn sliced_rows(counts: &[CounterDelta], slice: usize) -> anyhow::Result<Vec<String>> {
    in_key_order(counts)
        .chunks(slice.max(1))
        .map(rendered_counters)
        .collect()
}

fn in_key_order<'a>(counts: impl IntoIterator<Item = &'a CounterDelta>) -> Vec<&'a CounterDelta> {
    let mut counts: Vec<&CounterDelta> = counts.into_iter().collect();
    counts.sort_unstable_by(|a, b| a.table_key().cmp(&b.table_key()));
    counts
}

/// Counters already in the order of their key, rendered as [`counter_rows`] says.
fn rendered_counters(sorted: &[&CounterDelta]) -> anyhow::Result<String> {
    let rows: Vec<_> = sorted
        .iter()
        .map(|c| (&c.entitlement, c.period_start, &c.customer_id, c.used))
        .collect();
    Ok(serde_json::to_string(&rows)?)
}

/// The counts of logged rows, summed per counter.
fn summed(rows: &[(String,)]) -> anyhow::Result<Vec<CounterDelta>> {
    let mut sums: std::collections::HashMap<(IdText, i64), (IdText, i64)> =
        std::collections::HashMap::new();
    for (counters,) in rows {
        let counters: Vec<(IdText, i64, IdText, i64)> =
            serde_json::from_str(counters).context("A usage log row is not a list of counts")?;
        for (entitlement, period_start, customer_id, used) in counters {
            sums.entry((entitlement, period_start))
                .or_insert((customer_id, 0))
                .1 += used;
        }
    }
    Ok(sums
        .into_iter()
        .map(
            |((entitlement, period_start), (customer_id, used))| CounterDelta {
                entitlement,
                period_start,
                customer_id,
                used,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(entitlement: &str, period_start: i64) -> CounterDelta {
        CounterDelta {
            entitlement: entitlement.into(),
            period_start,
            customer_id: "cus_1".into(),
            used: 1,
        }
    }

    #[test]
    fn counters_are_written_in_the_order_of_their_key() {
        let rows =
            counter_rows(&[delta("ent_b", 5), delta("ent_a", 9), delta("ent_a", 2)]).unwrap();
        assert_eq!(
            rows,
            r#"[["ent_a",2,"cus_1",1],["ent_a",9,"cus_1",1],["ent_b",5,"cus_1",1]]"#
        );
    }
}
