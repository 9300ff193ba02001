//! What the owner reads about use: predictions allowed per day, customer, key and predictor,
//! from the per-hour activity the usage flush writes (about once a minute), and refusals per
//! day and reason.

use anyhow::Context as _;
use sqlx::FromRow;

use super::sql::sql;
use super::{BoxFuture, Db};

pub trait Reports: Send + Sync {
    /// Allowed predictions per UTC day, customer, key and predictor tag, for days starting in
    /// `[since, until)` (Unix seconds), oldest first: everyone's, or one customer's.
    fn usage_by_day<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<UsageDay>>>;
    /// Authorizations refused per UTC day and reason, for days starting in `[since, until)`.
    fn refusals_by_day(
        &self,
        since: i64,
        until: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<RefusalDay>>>;
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RefusalDay {
    pub day: i64,
    /// The metrics' label: `unknown_key`, `quota_used`, …
    pub reason: String,
    pub refusals: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct UsageDay {
    /// The day's midnight, UTC.
    pub day: i64,
    pub customer_id: String,
    pub key_id: String,
    pub tag: String,
    pub predictions: i64,
}

impl Reports for Db {
    fn usage_by_day<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<UsageDay>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT (hour / 86400) * 86400 AS day, customer_id, key_id, tag, \
                        CAST(SUM(count) AS BIGINT) AS predictions \
                     FROM usage_hourly \
                     WHERE hour >= $1 AND hour < $2 AND ($3 IS NULL OR customer_id = $3) \
                     GROUP BY (hour / 86400) * 86400, customer_id, key_id, tag \
                     ORDER BY day, customer_id, key_id, tag",
                )
                .bind(since)
                .bind(until)
                .bind(customer_id),
            )
            .await
            .context("Failed to read use per day")
        })
    }

    fn refusals_by_day(
        &self,
        since: i64,
        until: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<RefusalDay>>> {
        Box::pin(async move {
            self.fetch_all(
                sql("SELECT (hour / 86400) * 86400 AS day, reason, \
                        CAST(SUM(count) AS BIGINT) AS refusals \
                     FROM refusals_hourly WHERE hour >= $1 AND hour < $2 \
                     GROUP BY (hour / 86400) * 86400, reason ORDER BY day, reason")
                .bind(since)
                .bind(until),
            )
            .await
            .context("Failed to read refusals per day")
        })
    }
}
