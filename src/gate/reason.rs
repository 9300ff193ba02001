use std::sync::Arc;

use crate::domain::{
    AccessKeyError, CapPeriod, KeyCap, PredictorTagError, calendar, singular, thousands,
    unit_or_default,
};

/// Why a prediction is refused. Each reason renders a message for the person who made the
/// prediction (Function shows it to them): what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    Key(AccessKeyError),
    Tag(PredictorTagError),
    /// Unknown and revoked keys are told apart by nobody outside.
    UnknownKey,
    OtherOwner {
        owner: String,
    },
    NoPlan,
    NotIncluded,
    GrantExpired {
        on: i64,
    },
    PassExpired {
        on: i64,
    },
    Canceled {
        on: i64,
    },
    PastDue {
        since: i64,
    },
    Unpaid,
    Incomplete,
    Paused,
    Refunded {
        on: i64,
    },
    Disputed {
        on: i64,
    },
    QuotaUsed {
        limit: u64,
        resets_on: i64,
        /// The plan's name for what is counted (its `unit`), when it gives one.
        unit: Option<Arc<str>>,
    },
    CreditsUsed {
        total: u64,
        unit: Option<Arc<str>>,
    },
    RateLimited {
        per_minute: u32,
    },
    /// The key was rolled and its grace period is over.
    KeyRolled {
        on: i64,
    },
    /// The key's own cap is reached; its customer's plans would have allowed the prediction.
    KeyCapReached {
        cap: KeyCap,
        resets_at: Option<i64>,
    },
}

/// Where messages send people. Both are absent when the service sells nothing itself
/// (no Stripe), and messages then point to the owner instead.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub plans: Option<String>,
    pub account: Option<String>,
}

impl DenyReason {
    /// Every reason's label, in the order of [`Self::index`]: the metrics list each, seen or not.
    pub const LABELS: [&'static str; 23] = [
        "no_key",
        "key_too_long",
        "not_our_key",
        "key_typo",
        "bad_tag",
        "unknown_key",
        "other_owner",
        "no_plan",
        "not_included",
        "grant_expired",
        "pass_expired",
        "canceled",
        "past_due",
        "unpaid",
        "incomplete",
        "paused",
        "refunded",
        "disputed",
        "quota_used",
        "credits_used",
        "rate_limited",
        "key_rolled",
        "key_cap",
    ];

    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// Where the reason's label is in [`Self::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            Self::Key(AccessKeyError::Empty) => 0,
            Self::Key(AccessKeyError::TooLong) => 1,
            Self::Key(AccessKeyError::Malformed) => 2,
            Self::Key(AccessKeyError::BadChecksum) => 3,
            Self::Tag(_) => 4,
            Self::UnknownKey => 5,
            Self::OtherOwner { .. } => 6,
            Self::NoPlan => 7,
            Self::NotIncluded => 8,
            Self::GrantExpired { .. } => 9,
            Self::PassExpired { .. } => 10,
            Self::Canceled { .. } => 11,
            Self::PastDue { .. } => 12,
            Self::Unpaid => 13,
            Self::Incomplete => 14,
            Self::Paused => 15,
            Self::Refunded { .. } => 16,
            Self::Disputed { .. } => 17,
            Self::QuotaUsed { .. } => 18,
            Self::CreditsUsed { .. } => 19,
            Self::RateLimited { .. } => 20,
            Self::KeyRolled { .. } => 21,
            Self::KeyCapReached { .. } => 22,
        }
    }

    /// When several entitlements cover a predictor and none can be used, the reason shown is
    /// the one most worth acting on: the current state of a plan beats a long-gone one.
    pub fn helpfulness(&self) -> u8 {
        match self {
            Self::RateLimited { .. } => 9,
            Self::QuotaUsed { .. } => 8,
            Self::CreditsUsed { .. } => 7,
            Self::PastDue { .. } | Self::Unpaid | Self::Incomplete | Self::Paused => 6,
            Self::Canceled { .. } => 5,
            Self::PassExpired { .. } | Self::GrantExpired { .. } => 4,
            Self::Refunded { .. } | Self::Disputed { .. } => 3,
            _ => 0,
        }
    }

    /// A few words for a status column (the account page).
    pub fn short(&self) -> &'static str {
        match self {
            Self::GrantExpired { .. } | Self::PassExpired { .. } => "Expired",
            Self::Canceled { .. } => "Canceled",
            Self::PastDue { .. } => "Payment past due",
            Self::Unpaid => "Unpaid",
            Self::Incomplete => "Payment incomplete",
            Self::Paused => "Paused",
            Self::Refunded { .. } => "Refunded",
            Self::Disputed { .. } => "Payment disputed",
            Self::QuotaUsed { .. } => "Quota used up",
            Self::CreditsUsed { .. } => "Credits used up",
            Self::RateLimited { .. } => "Rate limited",
            Self::KeyRolled { .. } => "Replaced",
            Self::KeyCapReached { .. } => "Key limit reached",
            _ => "Not usable",
        }
    }

    pub fn message(&self, tag: &str, links: &Links) -> String {
        let buy = match &links.plans {
            Some(url) => format!("Buy access at {url}"),
            None => "Ask the predictor's owner for access".to_owned(),
        };
        let manage = match &links.account {
            Some(url) => format!("Manage your plan at {url}"),
            None => "Ask the predictor's owner for help".to_owned(),
        };
        let keys = match &links.account {
            Some(url) => format!("Your keys are at {url}"),
            None => "Ask the predictor's owner for your key".to_owned(),
        };
        match self {
            Self::Key(AccessKeyError::Empty) => format!(
                "No access key was sent. {tag} needs a paid access key, used as your Function \
                 access key. {buy}."
            ),
            Self::Key(AccessKeyError::TooLong) => format!(
                "The access key sent is too long to be a key for {tag}. Use the key you \
                 received as your Function access key. {keys}."
            ),
            Self::Key(AccessKeyError::Malformed) => format!(
                "{tag} needs a paid access key, used as your Function access key, and the key \
                 sent is not one. {buy}."
            ),
            Self::Key(AccessKeyError::BadChecksum) => format!(
                "The access key has a typo: it is not exactly the key that was issued. Copy it \
                 again, whole. {keys}."
            ),
            Self::Tag(e) => format!("This request cannot be authorized: {e}."),
            Self::UnknownKey => format!(
                "This access key is not valid: it may have been revoked or mistyped. {keys}."
            ),
            Self::OtherOwner { owner } => format!(
                "{tag} is not sold here: this service authorizes predictors of @{owner} only."
            ),
            Self::NoPlan => format!("Your access key has no active plan. {buy}."),
            Self::NotIncluded => format!("Your plan does not include {tag}. {buy}."),
            // Grants end at midnight after their last day; name that day.
            Self::GrantExpired { on } => format!(
                "Your access to {tag} ended on {}. {buy}.",
                calendar::date(*on - 1)
            ),
            Self::PassExpired { on } => format!(
                "Your pass for {tag} expired on {}. {buy}.",
                calendar::date(*on)
            ),
            Self::Canceled { on } => format!(
                "Your subscription was canceled on {}. {buy}.",
                calendar::date(*on)
            ),
            Self::PastDue { since } => format!(
                "Your subscription's payment has been past due since {}. Update your payment \
                 method to continue. {manage}.",
                calendar::date(*since)
            ),
            Self::Unpaid => {
                format!("Your subscription is unpaid. Pay the open invoice to continue. {manage}.")
            }
            Self::Incomplete => format!(
                "Your subscription's first payment has not gone through yet. Complete it to \
                 start. {manage}."
            ),
            Self::Paused => {
                format!("Your subscription is paused. Resume it to continue. {manage}.")
            }
            Self::Refunded { on } => format!(
                "Your purchase was refunded on {}, so it no longer gives access. {buy}.",
                calendar::date(*on)
            ),
            Self::Disputed { on } => format!(
                "The payment for your purchase was disputed on {}, so it no longer gives \
                 access. {manage}.",
                calendar::date(*on)
            ),
            Self::QuotaUsed {
                limit,
                resets_on,
                unit,
            } => format!(
                "You have used all {} {} of this period; it resets on {}. {buy}.",
                thousands(*limit),
                unit_or_default(unit.as_deref()),
                calendar::date(*resets_on)
            ),
            Self::CreditsUsed { total, unit } => {
                format!(
                    "You have used all {} of your {} credits. {buy}.",
                    thousands(*total),
                    singular(unit_or_default(unit.as_deref()))
                )
            }
            Self::RateLimited { per_minute } => format!(
                "Too many predictions: your plan allows {} per minute. Wait a moment and try \
                 again.",
                thousands(u64::from(*per_minute))
            ),
            Self::KeyRolled { on } => format!(
                "This access key was replaced by a new one and stopped working on {} UTC. \
                 Use the new key as your Function access key. {keys}.",
                calendar::date_time(*on)
            ),
            Self::KeyCapReached { cap, resets_at } => {
                let resets = match (cap.per, resets_at) {
                    (CapPeriod::Total, _) | (_, None) => String::new(),
                    (_, Some(at)) => format!(" until {} UTC", calendar::date_time(*at)),
                };
                format!(
                    "This access key has reached its own limit of {}, set on the key, so it \
                     is paused{resets}. Your account still has access: use another of your \
                     keys or raise this key's limit. {keys}.",
                    cap.describe()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_link_to_the_pages_when_the_service_sells_plans() {
        let links = Links {
            plans: Some("https://tb.example/".into()),
            account: Some("https://tb.example/account".into()),
        };
        let message = DenyReason::NotIncluded.message("@acme/x", &links);
        assert_eq!(
            message,
            "Your plan does not include @acme/x. Buy access at https://tb.example/."
        );
        let manual = DenyReason::NotIncluded.message("@acme/x", &Links::default());
        assert!(manual.contains("Ask the predictor's owner"), "{manual}");
    }
}
