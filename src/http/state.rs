//! What every request handler can reach, built once by the composition root (`app`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, Semaphore};

use super::limits::{ClientAddress, Windows};
use super::session::Sessions;
use crate::gate::{Gate, Links};
use crate::health::Health;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::store::Db;

pub struct AppState {
    /// The hot path: the in-memory view of the ledger, and the use counted on it.
    pub gate: Arc<Gate>,
    /// The use cases the pages call: keys, checkout, the account.
    pub ledger: Arc<Ledger>,
    /// The ledger's database: the webhook inbox, and the readiness check.
    pub store: Arc<Db>,
    /// What the background jobs last managed, for the readiness check.
    pub health: Arc<Health>,
    /// Where refusal messages send people (the pricing and account pages, when selling).
    pub links: Links,
    /// The account page's signed sign-in cookies and CSRF tokens.
    pub sessions: Sessions,
    /// `@owner`, or `the owner` when FXN_OWNER is unset, for page copy.
    pub owner_label: String,
    /// Present when Stripe webhooks are configured.
    pub webhooks: Option<Webhooks>,
    /// Room for the pages and the webhook in flight (`middleware::PAGES_AT_ONCE`).
    pub pages_in_flight: Semaphore,
    /// The secret path segment of the authorize URL.
    pub authorize_token: AuthorizeToken,
    /// What is counted for the metrics listener: each authorization's outcome and latency.
    pub metrics: Arc<Metrics>,
    /// Who a page's client is (`CLIENT_IP_HEADER` behind a proxy).
    pub client_address: ClientAddress,
    /// Sign-in links asked for, per client and per email.
    pub link_limits: LinkLimits,
}

/// Sign-in links asked for, limited per client address and per email, so the form can neither
/// flood an inbox nor probe many addresses quickly.
pub struct LinkLimits {
    pub per_client: Windows<IpAddr>,
    pub per_email: Windows<String>,
}

impl Default for LinkLimits {
    fn default() -> Self {
        let window = Duration::from_secs(15 * 60);
        Self {
            per_client: Windows::new(10, window),
            per_email: Windows::new(3, window),
        }
    }
}

/// The webhook route's secrets, and the bell that wakes the inbox worker.
pub struct Webhooks {
    pub secrets: Vec<SecretString>,
    pub tolerance: i64,
    pub wake: Arc<Notify>,
}

/// The authorize token, kept only as its SHA-256.
pub struct AuthorizeToken([u8; 32]);

impl AuthorizeToken {
    pub fn new(token: &SecretString) -> Self {
        Self(Sha256::digest(token.expose_secret().as_bytes()).into())
    }

    /// Constant-time over fixed-length digests, so neither content nor length leaks.
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&self.0).into()
    }
}
