//! What every request handler can reach, built once by the composition root (`app`).

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use super::session::Sessions;
use crate::domain::KeyPrefix;
use crate::gate::{Gate, Links};
use crate::store::Db;
use crate::stripe::Syncer;

pub struct AppState {
    /// The hot path: the in-memory view of the ledger, and the use counted on it.
    pub gate: Arc<Gate>,
    /// The ledger's database, for what pages read and the webhook inbox.
    pub store: Arc<Db>,
    /// Where refusal messages send people (the pricing and account pages, when selling).
    pub links: Links,
    /// Present when Stripe is configured: the pages sell, the account links to billing.
    pub syncer: Option<Syncer>,
    /// The account page's signed sign-in cookies and CSRF tokens.
    pub sessions: Sessions,
    /// `PUBLIC_URL`, without a trailing slash: where Stripe sends customers back to.
    pub public_url: String,
    /// The prefix of keys made on the pages (`KEY_PREFIX`).
    pub key_prefix: KeyPrefix,
    /// `@owner`, or `the owner` when FXN_OWNER is unset, for page copy.
    pub owner_label: String,
    /// Present when Stripe webhooks are configured.
    pub webhooks: Option<Webhooks>,
    /// The secret path segment of the authorize URL.
    pub authorize_token: AuthorizeToken,
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
