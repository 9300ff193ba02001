//! Works the webhook inbox in the background: promptly after each delivery, and every second
//! for retries that came due. It claims due events (with a lease, so instances never work one
//! event twice) and hands them to the ledger (`Ledger::apply_events`), which applies each and
//! records its outcome, one event's failure never holding up the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Ticker;
use crate::clock::unix_now;
use crate::ledger::Ledger;
use crate::store::{Db, Inbox};

/// How long an instance holds the events it claimed; a crashed instance's claims lapse then.
const CLAIM_LEASE: i64 = 120;

pub async fn run(
    ledger: Arc<Ledger>,
    store: Arc<Db>,
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
            ledger.apply_events(&events).await;
        }
    }
}
