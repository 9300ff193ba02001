//! The ledger's use cases, the one way every edge (the pages, the CLI, the background jobs)
//! changes who may predict: issue and revoke keys, fulfil a Checkout Session, sign a customer
//! in, apply Stripe's events and reconcile. Each does its writes, then brings this process's
//! gate up to date, once, in one place ([`Ledger::refresh`]), so every edge gets the same
//! behaviour.

mod account;
mod alerts;
mod checkout;
mod email_sign_in;
mod grants;
mod keys;
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::unix_now;
use crate::domain::KeyPrefix;
use crate::gate::Gate;
use crate::notify::email::Mailer;
use crate::notify::webhook::OwnerWebhook;
use crate::store::Db;
use crate::stripe::Syncer;

pub use account::{Account, PlanStatus, SESSION_LIFETIME, Session, Standing, Term, Use};
pub use checkout::{BillingError, CheckoutError, FulfilError, Offer, Welcome};
pub use email_sign_in::LINK_LIFETIME;
pub use grants::GrantError;
pub use keys::{
    CustomerRef, GrantSpec, IssueError, IssueRequest, IssuedKey, KeyError, KeyRef, Revoke,
    RolledKey,
};

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
    /// A refresh has been asked for beside its caller and has not started yet.
    refresh_waiting: Arc<AtomicBool>,
    /// Present when email is configured (`SMTP_URL`): sign-in links and alerts go out.
    mailer: Option<Arc<Mailer>>,
    /// Present when `OWNER_WEBHOOK_URL` is set: alerts are POSTed to the owner.
    owner_webhook: Option<Arc<OwnerWebhook>>,
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
            refresh_waiting: Arc::new(AtomicBool::new(false)),
            mailer: None,
            owner_webhook: None,
        }
    }

    /// This ledger, POSTing alerts to the owner's webhook.
    pub fn with_owner_webhook(mut self, webhook: OwnerWebhook) -> Self {
        self.owner_webhook = Some(Arc::new(webhook));
        self
    }

    /// This ledger, sending email through `mailer`.
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Whether email goes out (sign-in links can be sent).
    pub fn emails(&self) -> bool {
        self.mailer.is_some()
    }

    /// Whether the service sells through Stripe (pricing, checkout, billing).
    pub fn selling(&self) -> bool {
        self.stripe.is_some()
    }

    /// The ledger version this process's gate shows (`None` in the CLI, which has none).
    pub fn view_version(&self) -> Option<i64> {
        self.gate.as_ref().map(|gate| gate.version())
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

    /// [`Self::refresh`] beside the caller, which goes on with its next work. Calls while a
    /// refresh is already waiting to start share it: a burst of writes costs one or two
    /// refreshes, not one each.
    fn refresh_soon(&self, after: &'static str) {
        let (Some(gate), db) = (self.gate.clone(), Arc::clone(&self.db)) else {
            return;
        };
        if self.refresh_waiting.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiting = Arc::clone(&self.refresh_waiting);
        tokio::spawn(async move {
            // From here on, a new write asks for a refresh of its own.
            waiting.store(false, Ordering::Release);
            if let Err(e) = gate.refresh(db.as_ref(), unix_now()).await {
                tracing::warn!(error = ?e, "Failed to refresh the view after {after}");
            }
        });
    }
}
