//! Types that are valid by construction: input is parsed into them at the edge, and code
//! inside never checks them again.

mod access_key;
mod actor;
pub mod calendar;
mod key_terms;
mod owner;
mod plan;
mod predictor_tag;
mod price;
mod stripe_ids;
mod tag_pattern;

pub use access_key::{AccessKey, AccessKeyError, KeyHash, KeyPrefix, MAX_KEY_BYTES, random_base62};
pub use actor::Actor;
pub use key_terms::{CapPeriod, Grace, GraceError, KeyCap, KeyCapError};
pub use owner::{Owner, OwnerError};
pub use plan::{PlanRules, Thresholds, singular, unit_or_default};
pub use predictor_tag::{PredictorTag, PredictorTagError};
pub use price::{CalendarPeriod, PriceType, UsageType};
pub use stripe_ids::{
    CheckoutSessionId, NotACheckoutSession, NotAStripeCustomer, StripeCustomerId, is_stripe_id,
    new_local_customer_id,
};
pub use tag_pattern::{Predictors, TagPatternError};

/// Lowercase hex of `bytes` (digests, tokens' hashes).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `1,234,567`: counts as people read them.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
