//! Issuing and revoking access keys: by the owner (CLI), by a customer on the account page,
//! and by the welcome page after a Checkout (see `checkout.rs`).

use super::Ledger;
use crate::clock::unix_now;
use crate::domain::{
    AccessKey, CalendarPeriod, Grace, KeyCap, Predictors, StripeCustomerId, new_local_customer_id,
    random_base62,
};
use crate::store::{Customer, IssueKey, KeyListing, Keys, NewKey, RevokeOutcome, RollKey};
use crate::stripe::SyncReport;

/// Whose key it is: an existing customer by id, or a customer found (or created) by email.
#[derive(Debug, Clone)]
pub enum CustomerRef {
    Id(String),
    Email(String),
}

/// Access given by hand along with the key.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub predictors: Predictors,
    pub quota: Option<(u64, CalendarPeriod)>,
    pub credits: Option<u64>,
    /// The last day of access: access ends at the following midnight UTC.
    pub last_day: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct IssueRequest {
    pub customer: CustomerRef,
    pub name: Option<String>,
    pub grant: Option<GrantSpec>,
    /// The key's own cap, on top of what the customer's plans allow all their keys.
    pub cap: Option<KeyCap>,
}

/// Which key to roll or cap: any key by id, display prefix or the key itself (the owner's
/// tools), or one of a customer's own keys by id (the account page).
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Any(&'a str),
    Of {
        customer_id: &'a str,
        key_id: &'a str,
    },
}

/// A key rolled: the new one, to be shown once, and when the old one stops.
#[derive(Debug)]
pub struct RolledKey {
    pub key: AccessKey,
    pub key_id: String,
    pub customer_id: String,
    pub old_key_id: String,
    pub old_stops_at: i64,
}

/// Why a key could not be rolled or capped.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no active key has the id or prefix {0}")]
    NotFound(String),
    #[error("{0} matches several keys ({1}); use the key's id")]
    Ambiguous(String, String),
    #[error(
        "{0} was rolled already and stops at its grace period's end; roll the key that replaced it"
    )]
    AlreadyRolled(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The new key, to be shown once and never again.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: AccessKey,
    pub key_id: String,
    pub customer_id: String,
    pub customer_created: bool,
    pub grant_id: Option<String>,
    pub expires_at: Option<i64>,
    /// What was read from Stripe first, for a Stripe customer not seen here before.
    pub learned: Option<SyncReport>,
}

/// Why a key was not issued. The messages name what is wrong; each edge says what to do
/// about it in its own terms (a flag, a form).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no customer {0} is known here")]
    UnknownCustomer(String),
    #[error("Stripe has no customer {0}")]
    NotInStripe(String),
    #[error("several customers have the email {email}: {ids}")]
    AmbiguousEmail { email: String, ids: String },
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("the key name must be at most 100 characters")]
    NameTooLong,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What revoking one of a customer's own keys came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoke {
    Revoked,
    /// It is the customer's last active key: nothing was done until they confirm.
    NeedsConfirmation {
        id: String,
        prefix: String,
    },
    /// Not one of the customer's active keys.
    NotTheirs,
    /// Revoked meanwhile by someone else (another tab, the owner).
    NotRevoked,
}

impl Ledger {
    /// Issues a key (with a grant, when given) for a customer, creating the customer for a
    /// new email and reading a Stripe customer not seen yet from Stripe first.
    pub async fn issue_key(&self, request: IssueRequest) -> Result<IssuedKey, IssueError> {
        let now = unix_now();
        let name = request
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
            return Err(IssueError::NameTooLong);
        }
        let learned = match &request.customer {
            CustomerRef::Id(id) => self.learn_stripe_customer(id).await?,
            CustomerRef::Email(_) => None,
        };
        let (customer_id, new_customer) = self.resolve_customer(request.customer, now).await?;
        let key = AccessKey::generate(&self.key_prefix);
        let key_id = new_key_id();
        let grant = request
            .grant
            .as_ref()
            .map(|g| g.to_new_grant(&customer_id, now));
        let customer_created = new_customer.is_some();
        let mut stored = new_key(&key, &key_id, &customer_id, name, now);
        stored.cap = request.cap;
        let issue = IssueKey {
            new_customer,
            key: stored,
            grant,
        };
        self.db.issue_key(&issue).await?;
        self.refresh().await?;
        Ok(IssuedKey {
            key,
            key_id,
            customer_id,
            customer_created,
            expires_at: issue.grant.as_ref().and_then(|g| g.expires_at),
            grant_id: issue.grant.map(|g| g.id),
            learned,
        })
    }

    /// Revokes the key whose id or display prefix is `selector`, or the key itself (the
    /// owner's tools).
    pub async fn revoke_key(&self, selector: &str) -> anyhow::Result<RevokeOutcome> {
        let selector = match AccessKey::parse(selector.trim()) {
            Ok(key) => key.hash().to_hex(),
            Err(_) => selector.trim().to_owned(),
        };
        let outcome = self.db.revoke_key(&selector, unix_now()).await?;
        self.refresh().await?;
        Ok(outcome)
    }

    /// Revokes one of a customer's own active keys. Revoking the last one, which leaves the
    /// customer with no way to predict or sign in, waits for `confirmed`.
    pub async fn revoke_customer_key(
        &self,
        customer_id: &str,
        key_id: &str,
        confirmed: bool,
    ) -> anyhow::Result<Revoke> {
        let keys = self.db.list_keys(Some(customer_id)).await?;
        let now = unix_now();
        let active: Vec<_> = keys.iter().filter(|k| k.active(now)).collect();
        let Some(key) = active.iter().find(|k| k.id == key_id) else {
            return Ok(Revoke::NotTheirs);
        };
        if active.len() == 1 && !confirmed {
            return Ok(Revoke::NeedsConfirmation {
                id: key.id.clone(),
                prefix: key.display_prefix.clone(),
            });
        }
        let outcome = self.db.revoke_key(key_id, unix_now()).await?;
        self.refresh().await?;
        Ok(match outcome {
            RevokeOutcome::Revoked { .. } => Revoke::Revoked,
            _ => Revoke::NotRevoked,
        })
    }

    /// Replaces a key by a new one with the same name and cap; the old key keeps working
    /// for the `grace` period, then is refused with a message saying it was replaced.
    /// `session`, signed in with the old key, moves to the new one.
    pub async fn roll_key(
        &self,
        which: KeyRef<'_>,
        grace: Grace,
        session: Option<&str>,
    ) -> Result<RolledKey, KeyError> {
        let now = unix_now();
        let old = self.active_key(which, now).await?;
        if old.expires_at.is_some() {
            return Err(KeyError::AlreadyRolled(old.id));
        }
        let key = AccessKey::generate(&self.key_prefix);
        let key_id = new_key_id();
        let mut new = new_key(&key, &key_id, &old.customer_id, old.name.clone(), now);
        new.cap = old.cap();
        let roll = RollKey {
            old_id: old.id.clone(),
            new,
            old_expires_at: now + grace.seconds(),
            session: session.map(str::to_owned),
        };
        if !self.db.roll_key(&roll).await? {
            return Err(KeyError::AlreadyRolled(old.id));
        }
        self.refresh().await?;
        let alert =
            self.alert_key_rolled(&old.customer_id, &old.id, &key_id, roll.old_expires_at, now);
        if let Err(e) = alert.await {
            tracing::warn!(error = ?e, "Failed to queue the key-rolled alert");
        }
        Ok(RolledKey {
            key,
            key_id,
            customer_id: old.customer_id,
            old_key_id: old.id,
            old_stops_at: roll.old_expires_at,
        })
    }

    /// Sets (or, with `None`, removes) a key's own cap; returns the key's id.
    pub async fn cap_key(
        &self,
        which: KeyRef<'_>,
        cap: Option<KeyCap>,
    ) -> Result<String, KeyError> {
        let key = self.active_key(which, unix_now()).await?;
        if !self.db.set_key_cap(&key.id, cap).await? {
            return Err(KeyError::NotFound(key.id));
        }
        self.refresh().await?;
        Ok(key.id)
    }

    /// The one active key `which` names.
    async fn active_key(&self, which: KeyRef<'_>, now: i64) -> Result<KeyListing, KeyError> {
        let (selector, customer) = match which {
            KeyRef::Any(selector) => (selector.trim(), None),
            KeyRef::Of {
                customer_id,
                key_id,
            } => (key_id, Some(customer_id)),
        };
        let lookup = match (customer, AccessKey::parse(selector)) {
            (None, Ok(key)) => key.hash().to_hex(),
            _ => selector.to_owned(),
        };
        let mut found: Vec<KeyListing> = self
            .db
            .keys_matching(&lookup)
            .await?
            .into_iter()
            .filter(|k| k.active(now))
            .filter(|k| customer.is_none_or(|c| k.customer_id == c && k.id == selector))
            .collect();
        match found.len() {
            0 => Err(KeyError::NotFound(selector.to_owned())),
            1 => Ok(found.remove(0)),
            _ => Err(KeyError::Ambiguous(
                selector.to_owned(),
                found
                    .iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// A `cus_…` not known here yet is read from Stripe, with its subscriptions and purchases.
    async fn learn_stripe_customer(&self, id: &str) -> Result<Option<SyncReport>, IssueError> {
        let (Some(syncer), Ok(_)) = (&self.stripe, StripeCustomerId::parse(id)) else {
            return Ok(None);
        };
        if self.db.customer(id).await?.is_some() {
            return Ok(None);
        }
        let report = syncer.refresh_customer(id).await?;
        if report.customers == 0 {
            return Err(IssueError::NotInStripe(id.to_owned()));
        }
        Ok(Some(report))
    }

    async fn resolve_customer(
        &self,
        customer: CustomerRef,
        now: i64,
    ) -> Result<(String, Option<Customer>), IssueError> {
        match customer {
            CustomerRef::Id(id) => match self.db.customer(&id).await? {
                Some(c) => Ok((c.id, None)),
                None => Err(IssueError::UnknownCustomer(id)),
            },
            CustomerRef::Email(email) => {
                let email = email.trim().to_owned();
                let valid = email.len() <= 254
                    && !email.chars().any(char::is_whitespace)
                    && email
                        .split_once('@')
                        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
                if !valid {
                    return Err(IssueError::InvalidEmail(email));
                }
                let found = self.db.customers_by_email(&email).await?;
                match found.as_slice() {
                    [] => {
                        let customer = Customer {
                            id: new_local_customer_id(),
                            email: Some(email),
                            name: None,
                            created_at: now,
                        };
                        Ok((customer.id.clone(), Some(customer)))
                    }
                    [one] => Ok((one.id.clone(), None)),
                    many => Err(IssueError::AmbiguousEmail {
                        email,
                        ids: many
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }
    }
}

pub(super) fn new_key_id() -> String {
    format!("key_{}", random_base62(16))
}

/// What is stored of a new key: its hash and display prefix, never the key.
pub(super) fn new_key(
    key: &AccessKey,
    id: &str,
    customer_id: &str,
    name: Option<String>,
    now: i64,
) -> NewKey {
    NewKey {
        id: id.to_owned(),
        customer_id: customer_id.to_owned(),
        key_hash: key.hash().to_hex(),
        display_prefix: key.display_prefix(),
        name,
        created_at: now,
        cap: None,
    }
}
