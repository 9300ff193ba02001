//! Issuing an access key: for the owner's CLI now, for checkout and the account page later.

use crate::domain::{AccessKey, KeyPrefix, Predictors, calendar, random_base62};
use crate::store::{Customer, IssueKey, Keys, NewGrant, NewKey};

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
    pub quota: Option<(u64, QuotaPeriodArg)>,
    pub credits: Option<u64>,
    /// The last day of access (`--expires YYYY-MM-DD`): access ends at the following midnight UTC.
    pub last_day: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuotaPeriodArg {
    Day,
    Month,
}

#[derive(Debug)]
pub struct IssueRequest {
    pub customer: CustomerRef,
    pub name: Option<String>,
    pub grant: Option<GrantSpec>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no customer {0} is known here (see `tollbooth customers list`)")]
    UnknownCustomer(String),
    #[error("several customers have the email {email}: {ids}; choose one with --customer")]
    AmbiguousEmail { email: String, ids: String },
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("the key name must be at most 100 characters")]
    NameTooLong,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub async fn issue_key(
    store: &dyn Keys,
    prefix: &KeyPrefix,
    request: IssueRequest,
    now: i64,
) -> Result<IssuedKey, IssueError> {
    let name = request
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(IssueError::NameTooLong);
    }
    let (customer_id, new_customer) = resolve_customer(store, request.customer, now).await?;
    let key = AccessKey::generate(prefix);
    let key_id = format!("key_{}", random_base62(16));
    let expires_at = request
        .grant
        .as_ref()
        .and_then(|g| g.last_day)
        .map(|day| day + calendar::DAY);
    let grant = request.grant.map(|g| NewGrant {
        id: format!("gr_{}", random_base62(16)),
        customer_id: customer_id.clone(),
        predictors: g.predictors.to_string(),
        quota: g.quota.map(|(n, _)| n.min(i64::MAX as u64) as i64),
        quota_period: g.quota.map(|(_, p)| match p {
            QuotaPeriodArg::Day => "day".to_owned(),
            QuotaPeriodArg::Month => "month".to_owned(),
        }),
        credits: g.credits.map(|n| n.min(i64::MAX as u64) as i64),
        expires_at,
        note: g.note,
        created_at: now,
    });
    let customer_created = new_customer.is_some();
    let issue = IssueKey {
        new_customer,
        key: NewKey {
            id: key_id.clone(),
            customer_id: customer_id.clone(),
            key_hash: key.hash().to_hex(),
            display_prefix: key.display_prefix(),
            name,
            created_at: now,
        },
        grant,
    };
    store.issue_key(&issue).await?;
    Ok(IssuedKey {
        key,
        key_id,
        customer_id,
        customer_created,
        grant_id: issue.grant.map(|g| g.id),
        expires_at,
    })
}

async fn resolve_customer(
    store: &dyn Keys,
    customer: CustomerRef,
    now: i64,
) -> Result<(String, Option<Customer>), IssueError> {
    match customer {
        CustomerRef::Id(id) => match store.customer(&id).await? {
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
            let found = store.customers_by_email(&email).await?;
            match found.as_slice() {
                [] => {
                    let customer = Customer {
                        id: format!("loc_{}", random_base62(16)),
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
