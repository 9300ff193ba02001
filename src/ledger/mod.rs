//! The ledger's use cases, the one way every edge (the pages, the CLI, the background jobs)
//! changes who may predict: issue and revoke keys, fulfil a Checkout Session, sign a customer
//! in, apply Stripe's events and reconcile. Each does its writes, then brings this process's
//! gate up to date, once, in one place ([`Ledger::refresh`]), so every edge gets the same
//! behaviour.

mod account;
mod checkout;
mod keys;
mod sync;

use std::sync::Arc;

use crate::clock::unix_now;
use crate::domain::KeyPrefix;
use crate::gate::Gate;
use crate::store::Db;
use crate::stripe::Syncer;

pub use account::{Account, PlanStatus, SESSION_LIFETIME, Session, Standing, Term, Use};
pub use checkout::{BillingError, CheckoutError, FulfilError, Offer, Welcome};
pub use keys::{CustomerRef, GrantSpec, IssueError, IssueRequest, IssuedKey, Revoke};

pub struct Ledger {
    db: Arc<Db>,
    /// This process's gate, brought up to date after each write. `None` in the CLI: running
    /// servers see its writes through the ledger version within a poll interval.
    gate: Option<Arc<Gate>>,
    /// The prefix of new keys (`KEY_PREFIX`).
    key_prefix: KeyPrefix,
    /// Present when Stripe is configured: the service sells, and Stripe customers are read
    /// back from Stripe.
    stripe: Option<Syncer>,
    /// `PUBLIC_URL`: where Stripe sends customers back to.
    public_url: String,
}

impl Ledger {
    pub fn new(
        db: Arc<Db>,
        gate: Option<Arc<Gate>>,
        key_prefix: KeyPrefix,
        stripe: Option<Syncer>,
        public_url: String,
    ) -> Self {
        Self {
            db,
            gate,
            key_prefix,
            stripe,
            public_url,
        }
    }

    /// Whether the service sells through Stripe (pricing, checkout, billing).
    pub fn selling(&self) -> bool {
        self.stripe.is_some()
    }

    /// Brings this process's gate up to the ledger's version: after this process's own
    /// writes, and when another process's are seen (the ledger poller). Returns whether the
    /// view changed.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        match &self.gate {
            Some(gate) => gate.refresh(self.db.as_ref(), unix_now()).await,
            None => Ok(false),
        }
    }

    /// [`Self::refresh`] beside the caller, which goes on with its next work; refreshes run one
    /// at a time, so a burst of writes costs back-to-back refreshes.
    fn refresh_soon(&self, after: &'static str) {
        let (Some(gate), db) = (self.gate.clone(), Arc::clone(&self.db)) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = gate.refresh(db.as_ref(), unix_now()).await {
                tracing::warn!(error = ?e, "Failed to refresh the view after {after}");
            }
        });
    }
}
