//! What the ledger's rows mean for the hot path: how a grant, a subscription item and a
//! purchase, with their plan's metadata, become an [`Entitlement`] with its limit, its dates
//! and its plan's terms. The new plan metadata key, or a new kind of limit, starts here.

use std::collections::HashSet;
use std::sync::Arc;

use super::entitlement::{
    Entitlement, Limit, Plan, QuotaPeriod, Source, Status, SubscriptionState,
};
use super::names::Ids;
use crate::domain::{CalendarPeriod, PlanRules, Predictors, Thresholds, UsageType};
use crate::store::{GrantRow, ItemRow, PurchaseRow};

/// Makes entitlements from rows: ids become slots, and each plan's terms are shared.
pub(super) struct Terms<'a> {
    ids: &'a mut Ids,
    plans: &'a mut HashSet<Arc<Plan>, foldhash::fast::FixedState>,
}

impl<'a> Terms<'a> {
    pub(super) fn new(
        ids: &'a mut Ids,
        plans: &'a mut HashSet<Arc<Plan>, foldhash::fast::FixedState>,
    ) -> Self {
        Self { ids, plans }
    }

    /// The shared copy of these terms.
    fn plan(&mut self, plan: Plan) -> Arc<Plan> {
        if let Some(shared) = self.plans.get(&plan) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(plan);
        self.plans.insert(Arc::clone(&shared));
        shared
    }

    pub(super) fn grant(&mut self, grant: GrantRow, customer: u32) -> Option<Entitlement> {
        let predictors = match Predictors::parse(&grant.predictors, None) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(grant = %grant.id, error = %e, "Skipping a grant with unreadable predictors");
                return None;
            }
        };
        let limit = match (grant.quota, grant.credits) {
            (Some(quota), _) => Limit::Quota {
                per_period: quota.max(0) as u64,
                period: match CalendarPeriod::parse(grant.quota_period.as_deref()) {
                    CalendarPeriod::Day => QuotaPeriod::Day,
                    CalendarPeriod::Month => QuotaPeriod::Month,
                },
            },
            (None, Some(credits)) => Limit::Credits {
                total: credits.max(0) as u64,
            },
            (None, None) => Limit::Unlimited,
        };
        Some(Entitlement {
            slot: self.ids.entitlement(&grant.id, customer),
            plan: self.plan(Plan {
                name: grant
                    .note
                    .as_deref()
                    .unwrap_or("Access given by the owner")
                    .into(),
                predictors,
                rate_limit: None,
                meter: None,
                alert_at: Thresholds::default(),
                alert_credits_below: None,
                unit: None,
            }),
            source: Source::Grant {
                expires_at: grant.expires_at.into(),
            },
            limit,
        })
    }

    pub(super) fn item(&mut self, item: ItemRow, customer: u32) -> Entitlement {
        let rules = rules(
            &item.id,
            item.product_metadata.as_deref(),
            item.price_metadata.as_deref(),
        );
        // Metered prices bill per prediction, so a quota would only stop what the owner is paid for.
        let metered = UsageType::parse(item.usage_type.as_deref()) == UsageType::Metered;
        let limit = match rules.quota {
            Some(quota) if !metered => Limit::Quota {
                per_period: quota,
                period: QuotaPeriod::Billing,
            },
            _ => Limit::Unlimited,
        };
        let meter = item
            .meter_event_name
            .filter(|_| metered)
            .map(|name| self.ids.meters.intern(&name));
        Entitlement {
            slot: self.ids.entitlement(&item.id, customer),
            plan: self.plan(Plan {
                name: item
                    .product_name
                    .as_deref()
                    .unwrap_or("Subscription")
                    .into(),
                predictors: rules.predictors,
                rate_limit: rules.rate_limit,
                meter,
                alert_at: rules.alert_at,
                alert_credits_below: rules.alert_credits_below,
                unit: rules.unit.as_deref().map(Into::into),
            }),
            source: Source::Subscription(SubscriptionState {
                status: Status::parse(&item.status),
                period_start: item.current_period_start.into(),
                period_end: item.current_period_end.into(),
                cancel_at_period_end: item.cancel_at_period_end,
                canceled_at: item.canceled_at.into(),
                ended_at: item.ended_at.into(),
                past_due_since: item.past_due_since.into(),
            }),
            limit,
        }
    }

    pub(super) fn purchase(&mut self, purchase: PurchaseRow, customer: u32) -> Entitlement {
        let rules = rules(
            &purchase.id,
            purchase.product_metadata.as_deref(),
            purchase.price_metadata.as_deref(),
        );
        let quantity = purchase.quantity.max(1) as u64;
        let limit = match rules.credits {
            Some(credits) => Limit::Credits {
                total: credits.saturating_mul(quantity),
            },
            None => Limit::Unlimited,
        };
        Entitlement {
            slot: self.ids.entitlement(&purchase.id, customer),
            plan: self.plan(Plan {
                name: purchase
                    .product_name
                    .as_deref()
                    .unwrap_or("Purchase")
                    .into(),
                predictors: rules.predictors,
                rate_limit: rules.rate_limit,
                meter: None,
                alert_at: rules.alert_at,
                alert_credits_below: rules.alert_credits_below,
                unit: rules.unit.as_deref().map(Into::into),
            }),
            source: Source::Purchase {
                pass_expires_at: rules
                    .duration_days
                    .map(|days| purchase.paid_at + i64::from(days) * 86_400)
                    .into(),
                refunded_at: purchase.refunded_at.into(),
                disputed_at: purchase.disputed_at.into(),
            },
            limit,
        }
    }
}

fn rules(id: &str, product: Option<&str>, price: Option<&str>) -> PlanRules {
    let (rules, problems) = PlanRules::from_metadata(product, price);
    for problem in problems {
        tracing::warn!(entitlement = %id, %problem, "Plan metadata ignored");
    }
    rules
}
