//! Selling: the plans on sale, a Checkout Session for one of them, fulfilling a paid session
//! (the same re-read of the customer as the webhook: whichever comes first, the other changes
//! nothing) with the session's one key, and the Billing Portal.

use super::Ledger;
use super::keys::{new_key, new_key_id};
use crate::clock::unix_now;
use crate::domain::{
    AccessKey, CheckoutSessionId, PlanRules, PriceType, StripeCustomerId, UsageType,
};
use crate::store::{IssueKey, Keys, Mirror, PlanRow};
use crate::stripe::ApiError;
use crate::stripe::billing::{self, NewCheckout, SessionState};

/// A price on sale, with what it buys.
#[derive(Debug, Clone)]
pub struct Offer {
    pub price_id: String,
    pub name: String,
    pub description: Option<String>,
    /// In the currency's minor units.
    pub unit_amount: i64,
    pub currency: String,
    pub price_type: PriceType,
    pub usage_type: UsageType,
    /// A recurring price's billing interval: its unit (`month`) and how many of them.
    pub interval: Option<(String, i64)>,
    pub rules: PlanRules,
}

impl Offer {
    fn of(row: PlanRow) -> Self {
        let (rules, _) =
            PlanRules::from_metadata(Some(&row.product_metadata), Some(&row.price_metadata));
        Self {
            interval: row
                .recurring_interval
                .map(|unit| (unit, row.recurring_interval_count.unwrap_or(1))),
            price_type: PriceType::parse(&row.price_type),
            usage_type: UsageType::parse(row.usage_type.as_deref()),
            price_id: row.price_id,
            name: row.name,
            description: row.description,
            unit_amount: row.unit_amount.unwrap_or(0),
            currency: row.currency,
            rules,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("this service does not sell through Stripe")]
    NotSelling,
    #[error("that plan is not on sale any more")]
    NotOnSale,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What a paid (or unpaid) Checkout Session came to on the welcome page.
#[derive(Debug)]
pub enum Welcome {
    /// The session's key, to be shown this once.
    NewKey(AccessKey),
    /// The session's key was shown before and is never shown again.
    AlreadyShown,
    /// The customer is signed in here: the purchase went to their account and its keys.
    AddedToAccount,
    /// Not paid (yet): expired, still processing, or not finished.
    NotPaid(SessionState),
}

#[derive(Debug, thiserror::Error)]
pub enum FulfilError {
    #[error("this service does not sell through Stripe")]
    NotSelling,
    #[error("Stripe has no such Checkout Session")]
    UnknownSession,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("this service does not sell through Stripe")]
    NotSelling,
    /// A customer made here, given access by the owner: nothing is billed.
    #[error("the customer has no billing in Stripe")]
    NoBilling,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Ledger {
    /// The plans on sale (nothing when the service does not sell).
    pub async fn offers(&self) -> anyhow::Result<Vec<Offer>> {
        if !self.selling() {
            return Ok(Vec::new());
        }
        Ok(self
            .db
            .catalog()
            .await?
            .into_iter()
            .map(Offer::of)
            .collect())
    }

    /// A Checkout Session for one price, paid by `customer` when they are signed in; returns
    /// the URL to send the customer to.
    pub async fn start_checkout(
        &self,
        price_id: &str,
        customer: Option<&str>,
    ) -> Result<String, CheckoutError> {
        let stripe = self.stripe.as_ref().ok_or(CheckoutError::NotSelling)?;
        let offer = self
            .offers()
            .await?
            .into_iter()
            .find(|o| o.price_id == price_id)
            .ok_or(CheckoutError::NotOnSale)?;
        let customer = customer.and_then(|id| StripeCustomerId::parse(id).ok());
        let url = billing::create_checkout(
            stripe.api(),
            &NewCheckout {
                price_id: &offer.price_id,
                price_type: offer.price_type,
                usage_type: offer.usage_type,
                free: offer.unit_amount == 0 && offer.usage_type != UsageType::Metered,
                customer: customer.as_ref(),
                success_url: format!(
                    "{}/welcome?session_id={{CHECKOUT_SESSION_ID}}",
                    self.public_url
                ),
                cancel_url: format!("{}/", self.public_url),
            },
        )
        .await
        .map_err(anyhow::Error::from)?;
        Ok(url)
    }

    /// Fulfils a Checkout Session the customer came back from: the purchase is read from
    /// Stripe into the ledger, and the session gets its one key, unless the customer is
    /// signed in here (`signed_in`) and the purchase simply joins their account.
    pub async fn fulfil_checkout(
        &self,
        session_id: &CheckoutSessionId,
        signed_in: Option<&str>,
    ) -> Result<Welcome, FulfilError> {
        let stripe = self.stripe.as_ref().ok_or(FulfilError::NotSelling)?;
        let session = match billing::checkout_session(stripe.api(), session_id).await {
            Ok(session) => session,
            Err(ApiError::NotFound(_)) => return Err(FulfilError::UnknownSession),
            Err(e) => return Err(anyhow::Error::from(e).into()),
        };
        if session.state != SessionState::Paid {
            return Ok(Welcome::NotPaid(session.state));
        }
        let customer_id = session
            .customer
            .ok_or_else(|| anyhow::anyhow!("A paid Checkout Session has no customer"))?;
        stripe.refresh_customer(&customer_id).await?;
        let welcome = if signed_in == Some(customer_id.as_str()) {
            Welcome::AddedToAccount
        } else {
            let key = AccessKey::generate(&self.key_prefix);
            let issue = IssueKey {
                new_customer: None,
                key: new_key(
                    &key,
                    &new_key_id(),
                    &customer_id,
                    Some("First key".into()),
                    unix_now(),
                ),
                grant: None,
            };
            if self
                .db
                .issue_key_for_session(session_id.as_ref(), &issue)
                .await?
            {
                Welcome::NewKey(key)
            } else {
                Welcome::AlreadyShown
            }
        };
        self.refresh().await?;
        Ok(welcome)
    }

    /// A Stripe Billing Portal session for the customer; returns its URL.
    pub async fn billing_portal(&self, customer_id: &str) -> Result<String, BillingError> {
        let stripe = self.stripe.as_ref().ok_or(BillingError::NotSelling)?;
        let customer = StripeCustomerId::parse(customer_id).map_err(|_| BillingError::NoBilling)?;
        let return_url = format!("{}/account", self.public_url);
        billing::billing_portal(stripe.api(), &customer, &return_url)
            .await
            .map_err(|e| BillingError::Unexpected(e.into()))
    }
}
