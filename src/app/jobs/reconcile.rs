//! The periodic full sync from Stripe, which heals whatever webhooks missed: every
//! `RECONCILE_EVERY` after the last one that succeeded, which is at once after a start if that
//! was longer ago.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Ticker;
use crate::domain::Actor;
use crate::ledger::Ledger;

pub async fn run(ledger: Arc<Ledger>, every: Duration, stop: watch::Receiver<bool>) {
    let first = ledger.next_reconcile_in(every).await;
    let mut ticker = Ticker::first_in(first, every, stop);
    while ticker.next().await {
        match Actor::Reconcile.acting(ledger.reconcile(&|_| {})).await {
            Ok(report) => tracing::info!(%report, "Reconciled with Stripe"),
            Err(e) => tracing::warn!(error = ?e, "Reconcile with Stripe failed; will try again"),
        }
    }
}
