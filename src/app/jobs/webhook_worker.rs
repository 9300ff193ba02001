//! Works the webhook inbox in the background: promptly after each delivery, with retries and
//! backoff for failures, one event's failure never holding up the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Ticker;
use crate::clock::unix_now;
use crate::gate::Gate;
use crate::store::{Db, Inbox, InboxEvent};
use crate::stripe::Syncer;

/// How long an instance holds the events it claimed; a crashed instance's claims lapse then.
const CLAIM_LEASE: i64 = 120;

/// Seconds before the next attempt after `attempts` failures: 2, 4, 8 … up to an hour.
pub fn backoff(attempts: i64) -> i64 {
    2_i64
        .saturating_pow(attempts.clamp(1, 12) as u32)
        .min(3_600)
}

pub async fn run(
    syncer: Syncer,
    store: Arc<Db>,
    gate: Arc<Gate>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    // Woken by each delivery; the second's round picks up retries that came due.
    let mut ticker = Ticker::after(Duration::from_secs(1), stop).or_when(Some(wake));
    while ticker.next().await {
        loop {
            let events = match store.claim_events(unix_now(), CLAIM_LEASE, 50).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = ?e, "Failed to read the webhook inbox");
                    break;
                }
            };
            if events.is_empty() {
                break;
            }
            for event in &events {
                process(&syncer, store.as_ref(), event).await;
            }
            // The view reloads beside the worker, which goes on with the next events; reloads
            // run one at a time, so a burst costs back-to-back reloads.
            let (gate, store) = (Arc::clone(&gate), Arc::clone(&store));
            tokio::spawn(async move {
                if let Err(e) = gate.refresh(store.as_ref(), unix_now()).await {
                    tracing::warn!(error = ?e, "Failed to refresh the view after webhook events");
                }
            });
        }
    }
}

async fn process(syncer: &Syncer, store: &dyn Inbox, event: &InboxEvent) {
    let outcome = match serde_json::from_str(&event.payload) {
        Ok(payload) => syncer.handle_event(&event.event_type, &payload).await,
        Err(e) => Err(anyhow::anyhow!("stored payload is not JSON: {e}")),
    };
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
