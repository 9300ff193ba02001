//! The account page's use cases: signing in with a key and out again (sessions are kept
//! server-side, so ending one ends every copy of its cookie), and a customer's account as they
//! see it (their plans, what they have used, their keys), in plain terms rather than the
//! gate's packed types.

use super::Ledger;
use crate::clock::unix_now;
use crate::domain::{AccessKey, KeyCap, StripeCustomerId, random_base62, unit_or_default};
use crate::gate::{Entitlement, Limit, Source, Status};
use crate::store::{KeyListing, Keys, Sessions, StoredSession};

/// A signed-in customer: the session, the key it was started with, and whose it is.
pub type Session = StoredSession;

/// Sessions last a week; signing in again is one paste of a key.
pub const SESSION_LIFETIME: i64 = 7 * 86_400;

/// A customer's account, as the account page shows it.
pub struct Account {
    pub email: Option<String>,
    pub plans: Vec<PlanStatus>,
    /// Active keys only (a rolled key until it stops), oldest first, each with its use
    /// against its own cap, if it has one.
    pub keys: Vec<(KeyListing, Option<u64>)>,
    /// Whether the customer can manage billing in Stripe's Billing Portal.
    pub billing: bool,
}

/// One plan (a subscription item, a purchase or access given by the owner) of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStatus {
    pub name: String,
    /// The predictors the plan covers, as people read them ("all of acme's predictors").
    pub covers: String,
    pub standing: Standing,
    pub term: Term,
    pub usage: Use,
    /// What one counted use is called (the plan's `unit`, plural): "predictions" by default.
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Active,
    Trial,
    /// Past due, still within the grace period.
    PastDue,
    /// Not usable now, with a few words saying why.
    Stopped(&'static str),
}

/// When a plan ends, renews or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Ended(i64),
    Ends(i64),
    Renews(i64),
    /// The last moment of access (the day shown is the day it falls on).
    Until(i64),
    Open,
}

/// What a plan has used in its current period, against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Unlimited { used: u64, metered: bool },
    Quota { used: u64, per_period: u64 },
    Credits { used: u64, total: u64 },
}

impl Ledger {
    /// Starts a session for whoever holds `key`, if it is an active key.
    pub async fn sign_in(&self, key: &str) -> anyhow::Result<Option<Session>> {
        let Ok(key) = AccessKey::parse(key.trim()) else {
            return Ok(None);
        };
        let now = unix_now();
        let Some((key_id, customer_id)) = self.gate.as_ref().and_then(|g| g.key_owner(&key, now))
        else {
            return Ok(None);
        };
        let session = Session {
            // 190 random bits: the cookie's signature is a second lock, not the only one.
            id: format!("ses_{}", random_base62(32)),
            customer_id,
            key_id: Some(key_id),
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
        };
        self.db.start_session(&session).await?;
        Ok(Some(session))
    }

    /// The session with this id while it is live: not signed out, not expired, and its key
    /// not revoked.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<Session>> {
        self.db.live_session(id, unix_now()).await
    }

    /// Ends the session: every copy of its cookie stops working.
    pub async fn sign_out(&self, session: &Session) -> anyhow::Result<()> {
        self.db.end_session(&session.id, unix_now()).await
    }

    /// Ends every session of the customer, on every device; returns how many there were.
    pub async fn sign_out_everywhere(&self, customer_id: &str) -> anyhow::Result<u64> {
        self.db.end_sessions_of(customer_id, unix_now()).await
    }

    pub async fn account(&self, customer_id: &str) -> anyhow::Result<Account> {
        let now = unix_now();
        let customer = self.db.customer(customer_id).await?;
        let plans = match &self.gate {
            Some(gate) => gate
                .customer(customer_id, now)
                .iter()
                .map(|(e, used)| PlanStatus::of(e, *used, now, gate.past_due_grace()))
                .collect(),
            None => Vec::new(),
        };
        let mut keys = self
            .db
            .list_keys(Some(customer_id))
            .await?
            .into_iter()
            .filter(|k| k.active(now))
            .collect::<Vec<KeyListing>>();
        // Use not yet written counts in the plans above: "last used" must agree with it.
        if let Some(gate) = &self.gate {
            let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
            let recent = gate.unwritten_last_use(&ids, now);
            for (key, recent) in keys.iter_mut().zip(recent) {
                key.last_used_at = key.last_used_at.max(recent);
            }
        }
        let keys = keys
            .into_iter()
            .map(|k| {
                let used = k.cap().map(|cap| self.key_cap_used(&k.id, cap, now));
                (k, used)
            })
            .collect();
        Ok(Account {
            email: customer.and_then(|c| c.email),
            plans,
            keys,
            billing: self.selling() && StripeCustomerId::parse(customer_id).is_ok(),
        })
    }
}

impl Ledger {
    /// What a key has used against its own cap, as this process counts it.
    fn key_cap_used(&self, key_id: &str, cap: KeyCap, now: i64) -> u64 {
        self.gate
            .as_ref()
            .map_or(0, |g| g.key_cap_used(key_id, cap, now))
    }
}

impl PlanStatus {
    fn of(e: &Entitlement, used: u64, now: i64, past_due_grace: i64) -> Self {
        let standing = match (e.in_force(now, past_due_grace), &e.source) {
            (Ok(()), Source::Subscription(s)) if s.status == Status::Trialing => Standing::Trial,
            (Ok(()), Source::Subscription(s)) if s.status == Status::PastDue => Standing::PastDue,
            (Ok(()), _) => Standing::Active,
            (Err(reason), _) => Standing::Stopped(reason.short()),
        };
        let term = match &e.source {
            Source::Subscription(s)
                if s.ended_at.get().is_some() || s.status == Status::Canceled =>
            {
                Term::Ended(s.ended_at().unwrap_or(s.period_end.get()))
            }
            Source::Subscription(s) if s.cancel_at_period_end => Term::Ends(s.period_end.get()),
            Source::Subscription(s) => Term::Renews(s.period_end.get()),
            // Grants end at midnight after their last day.
            Source::Grant { expires_at } => expires_at
                .get()
                .map_or(Term::Open, |at| Term::Until(at - 1)),
            Source::Purchase {
                pass_expires_at, ..
            } => pass_expires_at.get().map_or(Term::Open, Term::Until),
        };
        let usage = match e.limit.get() {
            Limit::Unlimited => Use::Unlimited {
                used,
                metered: e.plan.meter.is_some(),
            },
            Limit::Quota { per_period, .. } => Use::Quota { used, per_period },
            Limit::Credits { total } => Use::Credits { used, total },
        };
        Self {
            name: e.plan.name.to_string(),
            covers: e.plan.predictors.describe(),
            standing,
            term,
            usage,
            unit: unit_or_default(e.plan.unit.as_deref()).to_owned(),
        }
    }

    /// Whether the plan can be used now.
    pub fn usable(&self) -> bool {
        !matches!(self.standing, Standing::Stopped(_))
    }
}
