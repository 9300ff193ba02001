//! Reports use of metered prices to Stripe Billing Meters from the outbox the usage flush
//! fills. Each event carries its outbox id as `identifier`, so Stripe counts a retried event
//! once even if an earlier attempt's answer was lost.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::Ticker;
use crate::clock::unix_now;
use crate::store::{Db, MeterOutbox};
use crate::stripe::StripeApi;

/// Sends what is waiting; stops at the first failure so a Stripe outage is not hammered.
async fn report(api: &StripeApi, store: &dyn MeterOutbox) -> anyhow::Result<usize> {
    let mut sent = 0;
    for event in store.unsent_meter_reports(100).await? {
        let form = json!({
            "event_name": event.event_name,
            "identifier": event.id,
            "timestamp": event.created_at,
            "payload": {
                "stripe_customer_id": event.customer_id,
                "value": event.value.to_string(),
            },
        });
        match api.post("/billing/meter_events", &form).await {
            Ok(_) => {
                store.meter_report_done(&event.id, None, unix_now()).await?;
                sent += 1;
            }
            Err(e) => {
                let error = e.to_string();
                store
                    .meter_report_done(&event.id, Some(&error), unix_now())
                    .await?;
                anyhow::bail!("Stripe refused meter event {}: {error}", event.id);
            }
        }
    }
    Ok(sent)
}

pub async fn run(api: StripeApi, store: Arc<Db>, every: Duration, stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::after(every, stop);
    while ticker.next().await {
        match report(&api, store.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "Metered use reported to Stripe"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Meter reporting failed; will retry")
            }
        }
    }
}
