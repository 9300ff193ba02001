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
/// it is not. Each digit's value is looked up, with no branch per digit: `u8::from_str_radix`
/// per pair cost about 1,500 instructions for a key's digest, read for every key when the
/// ledger loads (bench/results/2026-12-07-retained.md), and a branch per digit, letter or
/// number at random, was mispredicted for about half of them (7% of a million-key load on
/// PostgreSQL, bench/results/2026-12-07-pg-rows.md).
pub fn unhex_into(text: &str, out: &mut [u8]) -> Option<()> {
    /// A digit's value, or [`NOT_HEX`] for a byte that is not one.
    const NOT_HEX: u8 = 0x10;
    const DIGITS: [u8; 256] = {
        let mut table = [NOT_HEX; 256];
        let mut c = 0;
        while c < 256 {
            table[c] = match c as u8 {
                b'0'..=b'9' => c as u8 - b'0',
                b'a'..=b'f' => c as u8 - b'a' + 10,
                b'A'..=b'F' => c as u8 - b'A' + 10,
                _ => NOT_HEX,
            };
            c += 1;
        }
        table
    };
    let text = text.as_bytes();
    if text.len() != 2 * out.len() {
        return None;
    }
    let mut seen = 0;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (DIGITS[pair[0] as usize], DIGITS[pair[1] as usize]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    (seen & NOT_HEX == 0).then_some(())
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
