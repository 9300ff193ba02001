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

/// The bytes of hex `text` (two digits a byte, either case), or `None` if it is not that.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![0; text.len() / 2];
    unhex_into(text, &mut out)?;
    Some(out)
}

/// Fills `out` with the bytes of hex `text`, which must be exactly twice as long; `None` if
/// it is not. A digit at a time: `u8::from_str_radix` per pair cost about 1,500 instructions
/// for a key's digest, read for every key when the ledger loads
/// (bench/results/2026-12-07-retained.md).
pub fn unhex_into(text: &str, out: &mut [u8]) -> Option<()> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
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
