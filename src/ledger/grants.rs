//! Access the owner gives by hand, apart from any key: a grant for a customer (predictors,
//! a quota or credits, a last day), and ending one early.

use super::Ledger;
use super::keys::GrantSpec;
use crate::clock::unix_now;
use crate::domain::{calendar, random_base62};
use crate::store::{EndGrant, Grants, Keys, NewGrant};

/// Why a grant was not given.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("no customer {0} is known here")]
    UnknownCustomer(String),
    #[error("a quota must be at least 1 prediction per period")]
    ZeroQuota,
    #[error("credits must be at least 1")]
    ZeroCredits,
    #[error("a grant gives a quota or credits, not both")]
    QuotaAndCredits,
    #[error("the last day {0} has passed")]
    LastDayPassed(String),
    #[error("the note must be at most 500 characters")]
    NoteTooLong,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl GrantSpec {
    /// Whether the grant gives something now: a quota or credits of at least one, a last day
    /// not yet past.
    pub fn check(&self, now: i64) -> Result<(), GrantError> {
        if self.quota.is_some() && self.credits.is_some() {
            return Err(GrantError::QuotaAndCredits);
        }
        if self.quota.is_some_and(|(n, _)| n == 0) {
            return Err(GrantError::ZeroQuota);
        }
        if self.credits == Some(0) {
            return Err(GrantError::ZeroCredits);
        }
        if let Some(day) = self.last_day
            && day + calendar::DAY <= now
        {
            return Err(GrantError::LastDayPassed(calendar::date(day)));
        }
        if self.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            return Err(GrantError::NoteTooLong);
        }
        Ok(())
    }

    /// The stored form of this grant for `customer_id`, made `now`.
    pub(super) fn to_new_grant(&self, customer_id: &str, now: i64) -> NewGrant {
        NewGrant {
            id: format!("gr_{}", random_base62(16)),
            customer_id: customer_id.to_owned(),
            predictors: self.predictors.to_string(),
            quota: self.quota.map(|(n, _)| n.min(i64::MAX as u64) as i64),
            quota_period: self.quota.map(|(_, p)| p.as_str().to_owned()),
            credits: self.credits.map(|n| n.min(i64::MAX as u64) as i64),
            expires_at: self.last_day.map(|day| day + calendar::DAY),
            note: self.note.clone(),
            created_at: now,
        }
    }
}

impl Ledger {
    /// Gives an existing customer a grant; returns the stored grant.
    pub async fn grant(&self, customer_id: &str, spec: &GrantSpec) -> Result<NewGrant, GrantError> {
        let now = unix_now();
        spec.check(now)?;
        if self.db.customer(customer_id).await?.is_none() {
            return Err(GrantError::UnknownCustomer(customer_id.to_owned()));
        }
        let grant = spec.to_new_grant(customer_id, now);
        self.db.create_grant(&grant).await?;
        self.refresh().await?;
        Ok(grant)
    }

    /// Ends a grant now: what it gave stops at once on this instance, within a poll interval
    /// on the others.
    pub async fn end_grant(&self, id: &str) -> anyhow::Result<EndGrant> {
        let outcome = self.db.end_grant(id, unix_now()).await?;
        self.refresh().await?;
        Ok(outcome)
    }
}
