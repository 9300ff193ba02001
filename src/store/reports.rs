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
    /// A customer's refused authorizations per UTC day, key and reason, for days starting in
    /// `[since, until)`, newest first.
    fn refusals_of<'a>(
        &'a self,
        customer_id: &'a str,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyRefusalDay>>>;
    /// What active subscriptions bill for each licensed (not metered) price, per item: the
    /// money behind MRR.
    fn recurring_lines(&self) -> BoxFuture<'_, anyhow::Result<Vec<RecurringLine>>>;
    /// One-time purchases paid in `[since, until)` and not refunded, per currency: amount in
    /// minor units.
    fn one_time_revenue(
        &self,
        since: i64,
        until: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<(String, i64)>>>;
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct KeyRefusalDay {
    pub day: i64,
    pub key_id: String,
    pub reason: String,
    pub refusals: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RecurringLine {
    pub currency: String,
    /// Minor units per interval, for one unit.
    pub unit_amount: i64,
    pub quantity: i64,
    /// `day`, `week`, `month` or `year`.
    pub recurring_interval: String,
    pub recurring_interval_count: i64,
}

impl RecurringLine {
    /// What the line bills in an average month, in minor units.
    pub fn monthly(&self) -> f64 {
        let per_interval = (self.unit_amount * self.quantity) as f64;
        let count = self.recurring_interval_count.max(1) as f64;
        let months = match self.recurring_interval.as_str() {
            "day" => count * 12.0 / 365.0,
            "week" => count * 12.0 / 52.0,
            "year" => count * 12.0,
            _ => count,
        };
        per_interval / months
    }
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

    fn recurring_lines(&self) -> BoxFuture<'_, anyhow::Result<Vec<RecurringLine>>> {
        Box::pin(async move {
            self.fetch_all(sql(
                "SELECT p.currency, p.unit_amount, i.quantity, p.recurring_interval, \
                    COALESCE(p.recurring_interval_count, 1) AS recurring_interval_count \
                 FROM subscription_items i \
                 JOIN subscriptions s ON s.id = i.subscription_id \
                 JOIN prices p ON p.id = i.price_id \
                 WHERE s.status IN ('active', 'past_due') AND s.ended_at IS NULL \
                   AND p.price_type = 'recurring' AND p.unit_amount IS NOT NULL \
                   AND p.recurring_interval IS NOT NULL \
                   AND COALESCE(p.usage_type, 'licensed') = 'licensed'",
            ))
            .await
            .context("Failed to read recurring revenue")
        })
    }

    fn one_time_revenue(
        &self,
        since: i64,
        until: i64,
    ) -> BoxFuture<'_, anyhow::Result<Vec<(String, i64)>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT p.currency, CAST(SUM(p.unit_amount * u.quantity) AS BIGINT) \
                     FROM purchases u JOIN prices p ON p.id = u.price_id \
                     WHERE u.paid_at >= $1 AND u.paid_at < $2 AND u.refunded_at IS NULL \
                       AND p.unit_amount IS NOT NULL \
                     GROUP BY p.currency ORDER BY p.currency",
                )
                .bind(since)
                .bind(until),
            )
            .await
            .context("Failed to read one-time revenue")
        })
    }

    fn refusals_of<'a>(
        &'a self,
        customer_id: &'a str,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyRefusalDay>>> {
        Box::pin(async move {
            self.fetch_all(
                sql("SELECT (hour / 86400) * 86400 AS day, key_id, reason, \
                        CAST(SUM(count) AS BIGINT) AS refusals \
                     FROM key_refusals_hourly \
                     WHERE customer_id = $1 AND hour >= $2 AND hour < $3 \
                     GROUP BY (hour / 86400) * 86400, key_id, reason \
                     ORDER BY day DESC, refusals DESC, key_id, reason")
                .bind(customer_id)
                .bind(since)
                .bind(until),
            )
            .await
            .context("Failed to read a customer's refusals")
        })
    }
}
