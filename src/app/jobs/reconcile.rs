//! The periodic full sync from Stripe, which heals whatever webhooks missed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Ticker;
use crate::clock::unix_now;
use crate::gate::Gate;
use crate::store::Db;
use crate::stripe::Syncer;

pub async fn run(
    syncer: Syncer,
    gate: Arc<Gate>,
    store: Arc<Db>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::after(every, stop);
    while ticker.next().await {
        match syncer.reconcile(&|_| {}).await {
            Ok(report) => tracing::info!(%report, "Reconciled with Stripe"),
            Err(e) => tracing::warn!(error = ?e, "Reconcile with Stripe failed; will try again"),
        }
        if let Err(e) = gate.refresh(store.as_ref(), unix_now()).await {
            tracing::warn!(error = ?e, "Failed to refresh the view after reconcile");
        }
    }
}
