//! Alerts, off the hot path: after each usage flush, the customers whose limited use was
//! written are checked against their thresholds, and the customers whose ledger rows changed
//! (a subscription past due or ended) against their plans' state; once a minute, fired alerts that no longer
//! hold are resolved; every round, the deliveries due are sent (the owner's webhook, email).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Ticker;
use crate::clock::unix_now;
use crate::domain::Thresholds;
use crate::ledger::Ledger;
use crate::store::{Alerts, Db, Snapshot};

/// How often fired alerts are looked at again to see whether they still hold.
const RESOLVE_EVERY: Duration = Duration::from_secs(60);

/// Customers whose limited use was written since the alerts last looked, filled by the usage
/// flusher; its bell rings the alerts job.
#[derive(Default)]
pub struct Touched {
    customers: Mutex<HashSet<String>>,
    pub bell: Arc<Notify>,
}

impl Touched {
    pub fn add<'a>(&self, customers: impl Iterator<Item = &'a str>) {
        let mut set = self.customers.lock().unwrap_or_else(|e| e.into_inner());
        let before = set.len();
        set.extend(customers.map(str::to_owned));
        if set.len() > before {
            self.bell.notify_one();
        }
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.customers.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub async fn run(
    ledger: Arc<Ledger>,
    store: Arc<Db>,
    touched: Arc<Touched>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::every(every, stop).or_when(Some(Arc::clone(&touched.bell)));
    let mut fired = HashSet::new();
    let mut resolved_at = tokio::time::Instant::now();
    // Changes to the ledger (a payment failed, a subscription ended), from any process.
    let mut version = store.ledger_version().await.unwrap_or(0);
    while ticker.next().await {
        let now = unix_now();
        // A customer's state is read from this process's view: a change the view does not
        // show yet (written, not yet refreshed) waits for a round after it does, or the
        // customer would be checked against their state before the change, and never again.
        let shown = ledger.view_version().unwrap_or(i64::MAX);
        match store.ledger_changes(version).await {
            Ok(Some(changes)) => {
                let seen = changes.iter().take_while(|c| c.version <= shown);
                if let Some(last) = seen.clone().last() {
                    version = last.version;
                }
                touched.add(seen.filter_map(|c| c.customer_id.as_deref()));
            }
            // Too far behind to read the changes one by one: start again from now.
            Ok(None) => version = store.ledger_version().await.unwrap_or(version),
            Err(e) => tracing::warn!(error = ?e, "Failed to read ledger changes for alerts"),
        }
        let customers = touched.take();
        if !customers.is_empty() {
            let checked = match own_thresholds(store.as_ref()).await {
                Ok(own) => ledger.check_alerts(&customers, &own, &mut fired, now).await,
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                // Looked at again with the next use of these customers.
                tracing::warn!(error = ?e, "Failed to check alerts");
                touched.add(customers.iter().map(String::as_str));
            }
        }
        if resolved_at.elapsed() >= RESOLVE_EVERY {
            resolved_at = tokio::time::Instant::now();
            if let Err(e) = ledger.resolve_alerts(now).await {
                tracing::warn!(error = ?e, "Failed to resolve alerts");
            }
            // What this process remembers as fired matters only until the period turns.
            if fired.len() > 100_000 {
                fired.clear();
            }
        }
        match ledger.deliver_alerts(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "Alerts delivered"),
            Err(e) => tracing::warn!(error = ?e, "Failed to deliver alerts; will retry"),
        }
    }
}

/// Customers' own thresholds, as set on the account page.
async fn own_thresholds(store: &dyn Alerts) -> anyhow::Result<HashMap<String, Thresholds>> {
    Ok(store
        .alert_preferences()
        .await?
        .into_iter()
        .filter_map(|(customer, at)| Some((customer, Thresholds::parse(&at).ok()?)))
        .collect())
}
