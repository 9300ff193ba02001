//! What waits behind the hot path, counted for the owner's metrics: webhook events not yet
//! processed (and of those, the ones that failed at least once), and Billing Meter reports
//! Stripe has not accepted yet.

use anyhow::Context as _;

use super::sql::sql;
use super::{BoxFuture, Db};

pub trait Backlog: Send + Sync {
    fn backlog(&self) -> BoxFuture<'_, anyhow::Result<BacklogCounts>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogCounts {
    pub events_waiting: i64,
    pub events_failing: i64,
    pub meter_reports_unsent: i64,
}

impl Backlog for Db {
    fn backlog(&self) -> BoxFuture<'_, anyhow::Result<BacklogCounts>> {
        Box::pin(async move {
            let (events_waiting, events_failing, meter_reports_unsent): (i64, i64, i64) = self
                .fetch_one(sql("SELECT \
                        (SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL), \
                        (SELECT COUNT(*) FROM stripe_events \
                            WHERE processed_at IS NULL AND attempts > 0), \
                        (SELECT COUNT(*) FROM meter_reports WHERE sent_at IS NULL)"))
                .await
                .context("Failed to count the webhook inbox and the meter outbox")?;
            Ok(BacklogCounts {
                events_waiting,
                events_failing,
                meter_reports_unsent,
            })
        })
    }
}
