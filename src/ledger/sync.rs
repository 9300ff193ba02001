//! Keeping the ledger in line with Stripe: the webhook inbox's events and the full reconcile,
//! each followed by bringing the gate up to date.

use std::time::Duration;

use super::Ledger;
use crate::clock::unix_now;
use crate::store::{Inbox, InboxEvent};
use crate::stripe::SyncReport;

/// The setting that keeps when the last successful reconcile ended (Unix seconds).
const LAST_RECONCILE: &str = "last_reconcile";
/// The setting that keeps what the last successful reconcile synced, in words.
const LAST_RECONCILE_REPORT: &str = "last_reconcile_report";

/// How long one attempt at an event may take (its re-reads from Stripe included).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds before the next attempt after `attempts` failures: 2, 4, 8 … up to an hour.
fn backoff(attempts: i64) -> i64 {
    2_i64
        .saturating_pow(attempts.clamp(1, 12) as u32)
        .min(3_600)
}

impl Ledger {
    /// Acts on one webhook event claimed from the inbox, re-reading from Stripe what it
    /// names, and records its outcome: processed, or its error and when to try again
    /// (backoff). An attempt is cut short after `ATTEMPT_TIMEOUT`, so while Stripe does not
    /// answer, every waiting event still gets its attempt. The gate is brought up to date
    /// beside the caller. Events are triggers that re-read Stripe, so several may run at once,
    /// in any order. Returns whether the event was processed (or will be tried again).
    pub async fn apply_event(&self, event: &InboxEvent) -> bool {
        let attempt = async {
            match (&self.stripe, serde_json::from_str(&event.payload)) {
                (Some(stripe), Ok(payload)) => {
                    stripe.handle_event(&event.event_type, &payload).await
                }
                (None, _) => Err(anyhow::anyhow!("Stripe is not configured")),
                (_, Err(e)) => Err(anyhow::anyhow!("stored payload is not JSON: {e}")),
            }
        };
        let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "no answer from Stripe within {} s",
                    ATTEMPT_TIMEOUT.as_secs()
                ))
            });
        let processed = outcome.is_ok();
        record(self.db.as_ref(), event, outcome).await;
        self.refresh_soon("webhook events");
        processed
    }

    /// Makes a failing webhook event due now (the owner's retry); false if no such event is
    /// waiting. The worker takes it at its next wake-up.
    pub async fn retry_event(&self, id: &str) -> anyhow::Result<bool> {
        self.db.retry_event(id, unix_now()).await
    }

    /// The full sync from Stripe (`tollbooth sync`, and periodically): every product, price
    /// and customer; what Stripe no longer lists is marked inactive. `progress` hears each step.
    pub async fn reconcile(&self, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<SyncReport> {
        let stripe = self.stripe.as_ref().ok_or_else(|| {
            anyhow::anyhow!("STRIPE_SECRET_KEY is not set: there is nothing to sync from")
        })?;
        let report = stripe.reconcile(progress).await;
        if let Ok(synced) = &report {
            self.db
                .put_setting(LAST_RECONCILE, &unix_now().to_string())
                .await?;
            self.db
                .put_setting(LAST_RECONCILE_REPORT, &synced.to_string())
                .await?;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = ?e, "Failed to refresh the view after reconcile");
        }
        report
    }

    /// When the last reconcile succeeded (on any instance, or by `tollbooth sync`), and what
    /// it synced, in words.
    pub async fn last_reconcile(&self) -> anyhow::Result<Option<(i64, String)>> {
        let at = self
            .db
            .setting(LAST_RECONCILE)
            .await?
            .and_then(|v| v.parse().ok());
        let report = self.db.setting(LAST_RECONCILE_REPORT).await?;
        Ok(at.map(|at| (at, report.unwrap_or_default())))
    }

    /// How long until the next reconcile is due, `every` after the last one that succeeded
    /// (on any instance, or by `tollbooth sync`): at once if none ever did. A machine that is
    /// stopped and started again does not wait a whole period to heal.
    pub async fn next_reconcile_in(&self, every: Duration) -> Duration {
        let last = match self.db.setting(LAST_RECONCILE).await {
            Ok(last) => last.and_then(|v| v.parse::<i64>().ok()),
            Err(e) => {
                tracing::warn!(error = ?e, "Failed to read when the last reconcile ran");
                None
            }
        };
        let Some(last) = last else {
            return Duration::ZERO;
        };
        let since = Duration::from_secs(unix_now().saturating_sub(last).max(0) as u64);
        every.saturating_sub(since)
    }
}

/// Marks the event processed, or schedules its next attempt with the error.
async fn record(store: &dyn Inbox, event: &InboxEvent, outcome: anyhow::Result<()>) {
    let recorded = match &outcome {
        Ok(()) => {
            tracing::info!(event = %event.id, r#type = %event.event_type, "Webhook event processed");
            store.event_done(&event.id, unix_now()).await
        }
        Err(e) => {
            let attempts = event.attempts + 1;
            let retry_in = backoff(attempts);
            tracing::warn!(
                event = %event.id,
                r#type = %event.event_type,
                attempts,
                retry_in,
                error = %format!("{e:#}"),
                "Webhook event failed; will retry"
            );
            store
                .event_failed(&event.id, &format!("{e:#}"), unix_now() + retry_in)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(event = %event.id, error = ?e, "Failed to record a webhook event's outcome");
    }
}
