//! The ids of Stripe objects the ledger acts on by their kind: a customer who can be billed
//! (`cus_…`) as opposed to one made here (`loc_…`), and a Checkout Session (`cs_…`). Parsed
//! once where they come in; nothing inside checks a prefix again.

use std::fmt;

use super::random_base62;

/// Whether `id` has the characters a Stripe id may hold, so it is safe in a URL path.
pub fn is_stripe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A customer of the owner's Stripe account: billed there, and read back from there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeCustomerId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Stripe customer id (cus_…)")]
pub struct NotAStripeCustomer(String);

impl StripeCustomerId {
    pub fn parse(id: &str) -> Result<Self, NotAStripeCustomer> {
        if id.starts_with("cus_") && is_stripe_id(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(NotAStripeCustomer(id.to_owned()))
        }
    }
}

impl AsRef<str> for StripeCustomerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripeCustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a new customer made here, not in Stripe (`keys issue --email`): given access by
/// the owner, with nothing to bill.
pub fn new_local_customer_id() -> String {
    format!("loc_{}", random_base62(16))
}

/// A Stripe Checkout Session, as named in the welcome page's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this link is missing its payment session")]
pub struct NotACheckoutSession;

impl CheckoutSessionId {
    pub fn parse(id: &str) -> Result<Self, NotACheckoutSession> {
        if id.starts_with("cs_") && is_stripe_id(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(NotACheckoutSession)
        }
    }
}

impl AsRef<str> for CheckoutSessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stripe_customers_parse_as_stripe_customers() {
        assert!(StripeCustomerId::parse("cus_NffrFeUfNV2Hib").is_ok());
        assert!(StripeCustomerId::parse(&new_local_customer_id()).is_err());
        assert!(StripeCustomerId::parse("cus_a/../b").is_err());
        assert!(CheckoutSessionId::parse("cs_test_a1").is_ok());
        assert!(CheckoutSessionId::parse("cus_1").is_err());
        assert!(CheckoutSessionId::parse("cs_1?x=1").is_err());
    }
}
