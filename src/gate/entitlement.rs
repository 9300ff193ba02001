use std::num::NonZeroU32;
use std::sync::Arc;

use crate::domain::{Predictors, Thresholds, calendar};

use super::reason::DenyReason;

/// One thing that lets a customer predict: a manual grant, a subscription item, or a one-time
/// purchase, with the plan it follows and its limit.
#[derive(Debug, Clone)]
pub struct Entitlement {
    /// The grant, subscription item or purchase, as its slot in the gate's ids; also the key of
    /// its usage counter.
    pub slot: u32,
    /// Shared by every entitlement of the same plan (one copy, which stays in cache).
    pub plan: Arc<Plan>,
    pub source: Source,
    /// What it allows, in 8 bytes ([`Limit`] takes 16): read it with [`LimitBits::get`].
    pub limit: LimitBits,
}

/// What many entitlements hold alike: the terms of one plan.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Plan {
    /// What the customer calls it: the product's name, or the grant's note.
    pub name: Box<str>,
    pub predictors: Predictors,
    /// Predictions per minute for the customer while this plan is the one used.
    pub rate_limit: Option<u32>,
    /// For a metered price: its Billing Meter's event name (a slot of the gate's meter names),
    /// which use is reported to.
    pub meter: Option<u32>,
    /// Percentages of the limit at which the customer and the owner are told.
    pub alert_at: Thresholds,
    /// Credits left under which the customer and the owner are told.
    pub alert_credits_below: Option<u64>,
    /// What a counted use is called on the pages (the plan's `unit`), plural.
    pub unit: Option<Arc<str>>,
}

/// A moment in Unix seconds in 4 bytes, for the view's million entitlements: from 1970 to
/// February 2106, where a later moment (a pass "until 9999") stays, which is as good as never
/// for a process running now; an earlier one is 1970's first second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moment(u32);

impl Moment {
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl From<i64> for Moment {
    fn from(at: i64) -> Self {
        Self(at.clamp(0, i64::from(u32::MAX)) as u32)
    }
}

/// A [`Moment`] or none, in the same 4 bytes (no moment the gate keeps is at 0, in 1970): a
/// quarter of the size of an `Option<i64>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp(Option<NonZeroU32>);

impl Stamp {
    pub fn get(self) -> Option<i64> {
        self.0.map(|at| i64::from(at.get()))
    }
}

impl From<Option<i64>> for Stamp {
    fn from(at: Option<i64>) -> Self {
        Self(at.and_then(|at| match at {
            0 => None,
            ..0 => NonZeroU32::new(1),
            _ => NonZeroU32::new(Moment::from(at).0),
        }))
    }
}

#[derive(Debug, Clone)]
pub enum Source {
    Grant {
        expires_at: Stamp,
    },
    Subscription(SubscriptionState),
    Purchase {
        pass_expires_at: Stamp,
        refunded_at: Stamp,
        disputed_at: Stamp,
    },
}

/// A subscription item as the gate needs it.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionState {
    pub status: Status,
    pub period_start: Moment,
    pub period_end: Moment,
    pub cancel_at_period_end: bool,
    pub canceled_at: Stamp,
    pub ended_at: Stamp,
    pub past_due_since: Stamp,
}

impl SubscriptionState {
    /// When it ended, or was canceled, if it was.
    pub fn ended_at(&self) -> Option<i64> {
        self.ended_at.get().or(self.canceled_at.get())
    }
}

/// Stripe's subscription statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Trialing,
    PastDue,
    Canceled,
    Unpaid,
    Incomplete,
    IncompleteExpired,
    Paused,
}

impl Status {
    /// Unknown statuses (Stripe may add some) deny, as the safe reading.
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "incomplete" => Self::Incomplete,
            "paused" => Self::Paused,
            _ => Self::IncompleteExpired,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Quota {
        per_period: u64,
        period: QuotaPeriod,
    },
    Credits {
        total: u64,
    },
}

/// A [`Limit`] in one word, for the view's million entitlements: the kind in the top two
/// bits, a quota's period in the next two, the number in the other 60. A number of 2^60 or
/// more (a quota of a quintillion predictions) is kept as 2^60 - 1: as good as unlimited, and
/// shown as that number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LimitBits(u64);

impl LimitBits {
    const KIND: u32 = 62;
    const PERIOD: u32 = 60;
    const NUMBER: u64 = (1 << Self::PERIOD) - 1;

    pub fn get(self) -> Limit {
        let number = self.0 & Self::NUMBER;
        match self.0 >> Self::KIND {
            0 => Limit::Unlimited,
            1 => Limit::Quota {
                per_period: number,
                period: match (self.0 >> Self::PERIOD) & 0b11 {
                    0 => QuotaPeriod::Day,
                    1 => QuotaPeriod::Month,
                    _ => QuotaPeriod::Billing,
                },
            },
            _ => Limit::Credits { total: number },
        }
    }
}

impl From<Limit> for LimitBits {
    fn from(limit: Limit) -> Self {
        let (kind, period, number) = match limit {
            Limit::Unlimited => (0, 0, 0),
            Limit::Quota { per_period, period } => {
                let period = match period {
                    QuotaPeriod::Day => 0,
                    QuotaPeriod::Month => 1,
                    QuotaPeriod::Billing => 2,
                };
                (1, period, per_period)
            }
            Limit::Credits { total } => (2, 0, total),
        };
        Self(kind << Self::KIND | period << Self::PERIOD | number.min(Self::NUMBER))
    }
}

impl PartialEq<Limit> for LimitBits {
    fn eq(&self, other: &Limit) -> bool {
        self.get() == *other
    }
}

impl std::fmt::Debug for LimitBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Day,
    Month,
    /// The subscription item's current billing period.
    Billing,
}

/// The usage period an entitlement counts in at some instant: `start` keys the counter
/// (0 for lifetime counts such as credits), `end` is when a quota resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: Option<i64>,
}

impl Entitlement {
    /// Unlimited entitlements are used before quotas, quotas before credits, so that what
    /// runs out is spent last.
    pub fn rank(&self) -> u8 {
        match self.limit.get() {
            Limit::Unlimited => 0,
            Limit::Quota { .. } => 1,
            Limit::Credits { .. } => 2,
        }
    }

    pub fn period(&self, now: i64) -> Period {
        match (self.limit.get(), &self.source) {
            (Limit::Credits { .. }, _) | (_, Source::Purchase { .. }) => Period {
                start: 0,
                end: None,
            },
            (
                Limit::Quota {
                    period: QuotaPeriod::Day,
                    ..
                },
                _,
            ) => {
                let start = calendar::day_start(now);
                Period {
                    start,
                    end: Some(start + calendar::DAY),
                }
            }
            (_, Source::Subscription(s)) => billing_period(s, now),
            _ => Period {
                start: calendar::month_start(now),
                end: Some(calendar::next_month_start(now)),
            },
        }
    }

    /// Whether the entitlement is in force at `now`, regardless of its limit.
    pub fn in_force(&self, now: i64, past_due_grace: i64) -> Result<(), DenyReason> {
        match &self.source {
            Source::Grant { expires_at } => match expires_at.get() {
                Some(at) if at <= now => Err(DenyReason::GrantExpired { on: at }),
                _ => Ok(()),
            },
            Source::Purchase {
                pass_expires_at,
                refunded_at,
                disputed_at,
            } => {
                if let Some(on) = refunded_at.get() {
                    Err(DenyReason::Refunded { on })
                } else if let Some(on) = disputed_at.get() {
                    Err(DenyReason::Disputed { on })
                } else if let Some(on) = pass_expires_at.get().filter(|at| *at <= now) {
                    Err(DenyReason::PassExpired { on })
                } else {
                    Ok(())
                }
            }
            Source::Subscription(s) => subscription_in_force(s, now, past_due_grace),
        }
    }
}

fn subscription_in_force(s: &SubscriptionState, now: i64, grace: i64) -> Result<(), DenyReason> {
    let ended = |fallback: i64| DenyReason::Canceled {
        on: s.ended_at().unwrap_or(fallback),
    };
    if s.ended_at.get().is_some_and(|at| at <= now) {
        return Err(ended(now));
    }
    match s.status {
        Status::Active | Status::Trialing => {
            // Stripe ends the subscription at the period's end; honour that even before the
            // `deleted` event arrives.
            if s.cancel_at_period_end && s.period_end.get() <= now {
                Err(DenyReason::Canceled {
                    on: s.period_end.get(),
                })
            } else {
                Ok(())
            }
        }
        Status::PastDue => {
            let since = s.past_due_since.get().unwrap_or(s.period_start.get());
            if now - since <= grace {
                Ok(())
            } else {
                Err(DenyReason::PastDue { since })
            }
        }
        Status::Canceled | Status::IncompleteExpired => Err(ended(now)),
        Status::Unpaid => Err(DenyReason::Unpaid),
        Status::Incomplete => Err(DenyReason::Incomplete),
        Status::Paused => Err(DenyReason::Paused),
    }
}

/// The stored period, or, if Stripe's renewal has not reached us yet, the next one of the
/// same length, so the new period's counter is the one the renewal will name.
fn billing_period(s: &SubscriptionState, now: i64) -> Period {
    let length = (s.period_end.get() - s.period_start.get()).max(1);
    let mut start = s.period_start.get();
    while start + length <= now {
        start += length;
    }
    Period {
        start,
        end: Some(start + length),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view holds one per subscription item, grant and purchase: its size is most of the
    /// view's memory (docs/performance.md).
    #[test]
    fn an_entitlement_takes_48_bytes() {
        assert_eq!(size_of::<Stamp>(), 4);
        assert_eq!(size_of::<LimitBits>(), 8);
        assert_eq!(size_of::<Entitlement>(), 48);
    }

    #[test]
    fn a_limit_reads_back_from_its_word() {
        let limits = [
            Limit::Unlimited,
            Limit::Credits { total: 0 },
            Limit::Credits { total: 1_500 },
            Limit::Quota {
                per_period: 0,
                period: QuotaPeriod::Day,
            },
            Limit::Quota {
                per_period: 7,
                period: QuotaPeriod::Month,
            },
            Limit::Quota {
                per_period: (1 << 60) - 1,
                period: QuotaPeriod::Billing,
            },
        ];
        for limit in limits {
            assert_eq!(LimitBits::from(limit).get(), limit);
        }
        let most = (1 << 60) - 1;
        assert_eq!(
            LimitBits::from(Limit::Credits { total: u64::MAX }).get(),
            Limit::Credits { total: most },
            "a larger number is kept as the largest the word holds, not wrapped"
        );
        assert_eq!(
            LimitBits::from(Limit::Quota {
                per_period: i64::MAX as u64,
                period: QuotaPeriod::Day,
            })
            .get(),
            Limit::Quota {
                per_period: most,
                period: QuotaPeriod::Day,
            }
        );
    }

    #[test]
    fn moments_outside_four_bytes_stay_at_the_ends() {
        assert_eq!(Stamp::from(Some(1_700_000_000)).get(), Some(1_700_000_000));
        assert_eq!(Stamp::from(None).get(), None);
        assert_eq!(Stamp::from(Some(0)).get(), None);
        assert_eq!(
            Stamp::from(Some(-5)).get(),
            Some(1),
            "before 1970: long past"
        );
        assert_eq!(
            Stamp::from(Some(253_402_300_799)).get(),
            Some(i64::from(u32::MAX)),
            "9999-12-31: 2106, as good as never"
        );
        assert_eq!(Moment::from(-1).get(), 0);
    }
}
