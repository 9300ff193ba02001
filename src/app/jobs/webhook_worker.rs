//! Works the webhook inbox in the background: promptly after each delivery, and every second
//! for retries that came due. It claims due events (with a lease, so instances never work one
//! event twice) and hands them to the ledger (`Ledger::apply_events`), which applies each and
//! records its outcome, one event's failure never holding up the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::Ticker;
use crate::clock::unix_now;
use crate::domain::Actor;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::store::{Db, Inbox};

/// How long an instance holds the events it claimed; a crashed instance's claims lapse then.
const CLAIM_LEASE: i64 = 120;

/// Webhook events worked at once.
const EVENTS_AT_ONCE: usize = 8;

pub async fn run(
    ledger: Arc<Ledger>,
    store: Arc<Db>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    let room = Arc::new(Semaphore::new(EVENTS_AT_ONCE));
    let mut working = JoinSet::new();
    // Woken by each delivery and each event done; the second's round picks up retries that
    // came due.
    let mut ticker = Ticker::after(Duration::from_secs(1), stop).or_when(Some(Arc::clone(&wake)));
    while ticker.next().await {
        while working.try_join_next().is_some() {}
        let free = room.available_permits();
        if free == 0 {
            continue;
        }
        let events = match store
            .claim_events(unix_now(), CLAIM_LEASE, free as i64)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = ?e, "Failed to read the webhook inbox");
                continue;
            }
        };
        for event in events {
            let permit = Arc::clone(&room)
                .try_acquire_owned()
                .expect("no more events claimed than there is room for");
            let (ledger, wake, metrics) =
                (Arc::clone(&ledger), Arc::clone(&wake), Arc::clone(&metrics));
            working.spawn(async move {
                let processed = Actor::StripeEvent(event.id.clone())
                    .acting(ledger.apply_event(&event))
                    .await;
                metrics.webhook_event(&event.event_type, processed);
                drop(permit);
                wake.notify_one();
            });
        }
    }
    // Events under way finish (each within its attempt's timeout) before the service stops.
    while working.join_next().await.is_some() {}
}
