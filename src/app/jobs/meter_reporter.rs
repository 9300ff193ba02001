//! Reports use of metered prices to Stripe Billing Meters from the outbox the usage flush
//! fills. Each event carries its outbox id as `identifier`, so Stripe counts a retried event
//! once even if an earlier attempt's answer was lost (within Stripe's rolling 24 hours, which is
//! how long it keeps identifiers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::Ticker;
use crate::clock::unix_now;
use crate::store::{Db, MeterOutbox};
use crate::stripe::{ApiError, StripeApi};

/// Sends what is waiting, oldest first, each with its meter's payload keys. A report Stripe
/// refuses for good is set aside and the next goes on; any other failure stops the round, so a
/// Stripe outage is not hammered.
async fn report(api: &StripeApi, store: &dyn MeterOutbox) -> anyhow::Result<usize> {
    let mut sent = 0;
    let keys: HashMap<String, (String, String)> = store
        .meter_payload_keys()
        .await?
        .into_iter()
        .map(|(event, customer, value)| (event, (customer, value)))
        .collect();
    for event in store.unsent_meter_reports(100).await? {
        // Stripe's defaults for a meter not read yet.
        let (customer_key, value_key) = keys
            .get(&event.event_name)
            .map_or(("stripe_customer_id", "value"), |(c, v)| {
                (c.as_str(), v.as_str())
            });
        let mut payload = serde_json::Map::new();
        payload.insert(customer_key.to_owned(), json!(event.customer_id));
        payload.insert(value_key.to_owned(), json!(event.value.to_string()));
        let form = json!({
            "event_name": event.event_name,
            "identifier": event.id,
            "timestamp": event.created_at,
            "payload": payload,
        });
        match api.post("/billing/meter_events", &form).await {
            Ok(_) => {
                store.meter_report_done(&event.id, None, unix_now()).await?;
                sent += 1;
            }
            Err(e @ ApiError::Refused { .. }) => {
                let error = e.to_string();
                tracing::warn!(
                    report = %event.id, %error,
                    "Stripe refused a meter report for good; set aside (see `tollbooth events`)"
                );
                store
                    .set_meter_report_aside(&event.id, &error, unix_now())
                    .await?;
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
