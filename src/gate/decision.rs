//! The decision itself: pure, so every allow and deny reason is tested as a table.

use crate::domain::PredictorTag;

use super::entitlement::{Entitlement, Limit, Period};
use super::reason::DenyReason;

/// Which entitlement to charge one prediction to, and its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub index: usize,
    pub period: Period,
    /// The most uses the counter may reach in this period (`None`: unlimited).
    pub cap: Option<u64>,
}

/// Decides for one customer's entitlements, given what each has used so far in its current
/// period (`used(entitlement, period_start)`). Among the usable entitlements that cover the
/// tag, the first unlimited one wins, then the first with a quota, then the first with credits.
/// If none is usable, the most helpful reason among them is returned.
pub fn decide(
    entitlements: &[Entitlement],
    tag: &PredictorTag,
    now: i64,
    past_due_grace: i64,
    used: impl Fn(&Entitlement, i64) -> u64,
) -> Result<Charge, DenyReason> {
    let mut best: Option<(u8, Charge)> = None;
    let mut denial: Option<DenyReason> = None;
    let mut covered = false;
    for (index, entitlement) in entitlements.iter().enumerate() {
        if !entitlement.plan.predictors.matches(tag) {
            continue;
        }
        covered = true;
        let rank = entitlement.rank();
        if best.is_some_and(|(best_rank, _)| best_rank <= rank) {
            continue;
        }
        match usable(entitlement, now, past_due_grace, &used) {
            Ok((period, cap)) => best = Some((rank, Charge { index, period, cap })),
            Err(reason) => {
                if denial
                    .as_ref()
                    .is_none_or(|d| reason.helpfulness() > d.helpfulness())
                {
                    denial = Some(reason);
                }
            }
        }
    }
    match (best, denial) {
        (Some((_, charge)), _) => Ok(charge),
        (None, Some(reason)) => Err(reason),
        (None, None) if covered || !entitlements.is_empty() => Err(DenyReason::NotIncluded),
        (None, None) => Err(DenyReason::NoPlan),
    }
}

fn usable(
    entitlement: &Entitlement,
    now: i64,
    past_due_grace: i64,
    used: &impl Fn(&Entitlement, i64) -> u64,
) -> Result<(Period, Option<u64>), DenyReason> {
    entitlement.in_force(now, past_due_grace)?;
    let period = entitlement.period(now);
    let limit = entitlement.limit.get();
    let cap = match limit {
        Limit::Unlimited => None,
        Limit::Quota { per_period, .. } => Some(per_period),
        Limit::Credits { total } => Some(total),
    };
    if let Some(cap) = cap
        && used(entitlement, period.start) >= cap
    {
        let unit = entitlement.plan.unit.clone();
        return Err(match limit {
            Limit::Credits { total } => DenyReason::CreditsUsed { total, unit },
            _ => DenyReason::QuotaUsed {
                limit: cap,
                resets_on: period.end.unwrap_or(now),
                unit,
            },
        });
    }
    Ok((period, cap))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Predictors, calendar};
    use crate::gate::entitlement::{Plan, QuotaPeriod, Source, Stamp, Status, SubscriptionState};

    const NOW: i64 = 1_795_996_800 + 12 * 3_600; // 2026-11-30 12:00 UTC
    const DAY: i64 = calendar::DAY;
    const GRACE: i64 = 3 * DAY;

    fn tag(s: &str) -> PredictorTag<'_> {
        PredictorTag::parse(s).unwrap()
    }

    /// Each test entitlement's plan is named after it, which is how the cases name them.
    fn plan(id: &str, predictors: Predictors) -> Arc<Plan> {
        Arc::new(Plan {
            name: id.into(),
            predictors,
            rate_limit: None,
            meter: None,
            alert_at: Default::default(),
            alert_credits_below: None,
            unit: None,
        })
    }

    fn grant(id: &str, predictors: &str, limit: Limit, expires_at: Option<i64>) -> Entitlement {
        Entitlement {
            slot: 0,
            plan: plan(id, Predictors::parse(predictors, None).unwrap()),
            source: Source::Grant {
                expires_at: expires_at.into(),
            },
            limit: limit.into(),
        }
    }

    fn sub(id: &str, status: Status, tweak: impl FnOnce(&mut SubscriptionState)) -> Entitlement {
        let mut state = SubscriptionState {
            status,
            period_start: (NOW - 10 * DAY).into(),
            period_end: (NOW + 20 * DAY).into(),
            cancel_at_period_end: false,
            canceled_at: Stamp::default(),
            ended_at: Stamp::default(),
            past_due_since: Stamp::default(),
        };
        tweak(&mut state);
        Entitlement {
            slot: 0,
            plan: plan(id, Predictors::all()),
            source: Source::Subscription(state),
            limit: Limit::Unlimited.into(),
        }
    }

    fn purchase(id: &str, credits: Option<u64>, refunded: bool, pass: Option<i64>) -> Entitlement {
        Entitlement {
            slot: 0,
            plan: plan(id, Predictors::all()),
            source: Source::Purchase {
                pass_expires_at: pass.into(),
                refunded_at: refunded.then_some(NOW - DAY).into(),
                disputed_at: Stamp::default(),
            },
            limit: credits
                .map_or(Limit::Unlimited, |total| Limit::Credits { total })
                .into(),
        }
    }

    fn quota(n: u64) -> Limit {
        Limit::Quota {
            per_period: n,
            period: QuotaPeriod::Month,
        }
    }

    /// Why, the entitlements, what each has used, the tag, and the expected answer.
    type Case = (
        &'static str,
        Vec<Entitlement>,
        &'static [(&'static str, u64)],
        &'static str,
        Expect,
    );

    enum Expect {
        Allow(&'static str),
        Deny(DenyReason),
    }

    #[test]
    fn decisions_follow_the_plan_rules() {
        use Expect::{Allow, Deny};
        let month_end = calendar::next_month_start(NOW);
        let with_quota = |n| {
            let mut e = sub("si_q", Status::Active, |_| {});
            e.limit = Limit::Quota {
                per_period: n,
                period: QuotaPeriod::Billing,
            }
            .into();
            e
        };
        let cases: Vec<Case> = vec![
            (
                "no entitlements at all",
                vec![],
                &[],
                "@acme/a",
                Deny(DenyReason::NoPlan),
            ),
            (
                "an unlimited grant for all predictors",
                vec![grant("g1", "*", Limit::Unlimited, None)],
                &[],
                "@acme/a",
                Allow("g1"),
            ),
            (
                "a grant for other predictors",
                vec![grant("g1", "@acme/sdxl-*", Limit::Unlimited, None)],
                &[],
                "@acme/llama",
                Deny(DenyReason::NotIncluded),
            ),
            (
                "a grant that has expired",
                vec![grant("g1", "*", Limit::Unlimited, Some(NOW - DAY))],
                &[],
                "@acme/a",
                Deny(DenyReason::GrantExpired { on: NOW - DAY }),
            ),
            (
                "a grant that expires later",
                vec![grant("g1", "*", Limit::Unlimited, Some(NOW + 1))],
                &[],
                "@acme/a",
                Allow("g1"),
            ),
            (
                "a quota with room left",
                vec![grant("g1", "*", quota(10), None)],
                &[("g1", 9)],
                "@acme/a",
                Allow("g1"),
            ),
            (
                "a quota used up",
                vec![grant("g1", "*", quota(10), None)],
                &[("g1", 10)],
                "@acme/a",
                Deny(DenyReason::QuotaUsed {
                    limit: 10,
                    resets_on: month_end,
                    unit: None,
                }),
            ),
            (
                "credits used up",
                vec![grant("g1", "*", Limit::Credits { total: 5 }, None)],
                &[("g1", 5)],
                "@acme/a",
                Deny(DenyReason::CreditsUsed {
                    total: 5,
                    unit: None,
                }),
            ),
            (
                "unlimited is used before quota and credits",
                vec![
                    grant("credits", "*", Limit::Credits { total: 5 }, None),
                    grant("quota", "*", quota(5), None),
                    grant("unlimited", "*", Limit::Unlimited, None),
                ],
                &[],
                "@acme/a",
                Allow("unlimited"),
            ),
            (
                "quota is used before credits",
                vec![
                    grant("credits", "*", Limit::Credits { total: 5 }, None),
                    grant("quota", "*", quota(5), None),
                ],
                &[],
                "@acme/a",
                Allow("quota"),
            ),
            (
                "credits are used once the quota is spent",
                vec![
                    grant("credits", "*", Limit::Credits { total: 5 }, None),
                    grant("quota", "*", quota(5), None),
                ],
                &[("quota", 5)],
                "@acme/a",
                Allow("credits"),
            ),
            (
                "both spent: the quota's reset date is the most useful news",
                vec![
                    grant("credits", "*", Limit::Credits { total: 5 }, None),
                    grant("quota", "*", quota(5), None),
                ],
                &[("quota", 5), ("credits", 5)],
                "@acme/a",
                Deny(DenyReason::QuotaUsed {
                    limit: 5,
                    resets_on: month_end,
                    unit: None,
                }),
            ),
            (
                "an active subscription",
                vec![sub("si", Status::Active, |_| {})],
                &[],
                "@acme/a",
                Allow("si"),
            ),
            (
                "a trialing subscription",
                vec![sub("si", Status::Trialing, |_| {})],
                &[],
                "@acme/a",
                Allow("si"),
            ),
            (
                "past due within the grace period",
                vec![sub("si", Status::PastDue, |s| {
                    s.past_due_since = Some(NOW - 2 * DAY).into()
                })],
                &[],
                "@acme/a",
                Allow("si"),
            ),
            (
                "past due beyond the grace period",
                vec![sub("si", Status::PastDue, |s| {
                    s.past_due_since = Some(NOW - 4 * DAY).into()
                })],
                &[],
                "@acme/a",
                Deny(DenyReason::PastDue {
                    since: NOW - 4 * DAY,
                }),
            ),
            (
                "a canceled subscription",
                vec![sub("si", Status::Canceled, |s| {
                    s.ended_at = Some(NOW - DAY).into()
                })],
                &[],
                "@acme/a",
                Deny(DenyReason::Canceled { on: NOW - DAY }),
            ),
            (
                "cancel at period end, before the end",
                vec![sub("si", Status::Active, |s| s.cancel_at_period_end = true)],
                &[],
                "@acme/a",
                Allow("si"),
            ),
            (
                "cancel at period end, after the end",
                vec![sub("si", Status::Active, |s| {
                    s.cancel_at_period_end = true;
                    s.period_end = (NOW - 1).into();
                })],
                &[],
                "@acme/a",
                Deny(DenyReason::Canceled { on: NOW - 1 }),
            ),
            (
                "an unpaid subscription",
                vec![sub("si", Status::Unpaid, |_| {})],
                &[],
                "@acme/a",
                Deny(DenyReason::Unpaid),
            ),
            (
                "an incomplete subscription",
                vec![sub("si", Status::Incomplete, |_| {})],
                &[],
                "@acme/a",
                Deny(DenyReason::Incomplete),
            ),
            (
                "a paused subscription",
                vec![sub("si", Status::Paused, |_| {})],
                &[],
                "@acme/a",
                Deny(DenyReason::Paused),
            ),
            (
                "a subscription quota used up resets at the period's end",
                vec![with_quota(100)],
                &[("si_q", 100)],
                "@acme/a",
                Deny(DenyReason::QuotaUsed {
                    limit: 100,
                    resets_on: NOW + 20 * DAY,
                    unit: None,
                }),
            ),
            (
                "a canceled subscription and a live grant",
                vec![
                    sub("si", Status::Canceled, |s| {
                        s.ended_at = Some(NOW - DAY).into()
                    }),
                    grant("g1", "*", Limit::Unlimited, None),
                ],
                &[],
                "@acme/a",
                Allow("g1"),
            ),
            (
                "purchased credits left",
                vec![purchase("cs", Some(3), false, None)],
                &[("cs", 2)],
                "@acme/a",
                Allow("cs"),
            ),
            (
                "a refunded purchase",
                vec![purchase("cs", Some(3), true, None)],
                &[],
                "@acme/a",
                Deny(DenyReason::Refunded { on: NOW - DAY }),
            ),
            (
                "an expired pass",
                vec![purchase("cs", None, false, Some(NOW - 5))],
                &[],
                "@acme/a",
                Deny(DenyReason::PassExpired { on: NOW - 5 }),
            ),
            (
                "a lifetime purchase",
                vec![purchase("cs", None, false, None)],
                &[],
                "@acme/a",
                Allow("cs"),
            ),
        ];
        for (why, entitlements, used, t, expect) in cases {
            let used: HashMap<&str, u64> = used.iter().copied().collect();
            let decision = decide(&entitlements, &tag(t), NOW, GRACE, |e, _| {
                used.get(&*e.plan.name).copied().unwrap_or(0)
            });
            match (decision, expect) {
                (Ok(charge), Allow(id)) => {
                    assert_eq!(&*entitlements[charge.index].plan.name, id, "{why}")
                }
                (Err(reason), Deny(expected)) => assert_eq!(reason, expected, "{why}"),
                (got, _) => panic!("{why}: got {got:?}"),
            }
        }
    }

    #[test]
    fn quota_counters_are_per_day_per_month_or_per_billing_period() {
        let daily = grant(
            "g",
            "*",
            Limit::Quota {
                per_period: 1,
                period: QuotaPeriod::Day,
            },
            None,
        );
        assert_eq!(daily.period(NOW).start, calendar::day_start(NOW));
        assert_eq!(daily.period(NOW).end, Some(calendar::day_start(NOW) + DAY));
        let monthly = grant("g", "*", quota(1), None);
        assert_eq!(monthly.period(NOW).start, calendar::month_start(NOW));
        let credits = grant("g", "*", Limit::Credits { total: 1 }, None);
        assert_eq!(credits.period(NOW).start, 0);
        let subscription = sub("si", Status::Active, |_| {});
        assert_eq!(subscription.period(NOW).start, NOW - 10 * DAY);
        let overdue_renewal = sub("si", Status::Active, |s| {
            s.period_start = (NOW - 40 * DAY).into();
            s.period_end = (NOW - 10 * DAY).into();
        });
        assert_eq!(overdue_renewal.period(NOW).start, NOW - 10 * DAY);
    }
}
