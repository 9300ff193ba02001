//! Picks up changes made by other processes (the CLI, other instances): at once when the
//! engine signals them (PostgreSQL `NOTIFY`), and within one poll interval in any case. Its
//! first round, at start, loads the whole ledger into the gate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Ticker;
use crate::clock::unix_now;
use crate::gate::Gate;
use crate::health::Health;
use crate::ledger::Ledger;
use crate::store::{Db, Snapshot};

pub async fn run(
    ledger: Arc<Ledger>,
    gate: Arc<Gate>,
    store: Arc<Db>,
    health: Arc<Health>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::every(every, stop).or_when(store.change_signal());
    while ticker.next().await {
        match ledger.refresh().await {
            Ok(changed) => {
                health.view_refreshed(unix_now());
                if changed {
                    tracing::info!(keys = gate.key_count(), "Ledger changed; view reloaded");
                }
            }
            Err(e) => {
                health.view_refresh_failed(unix_now());
                tracing::warn!(error = ?e, "Failed to refresh the ledger view");
            }
        }
    }
}
