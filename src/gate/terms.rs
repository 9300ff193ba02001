//! What the ledger's rows mean for the hot path: how a grant, a subscription item and a
//! purchase, with their plan's metadata, become an [`Entitlement`] with its limit, its dates
//! and its plan's terms. The new plan metadata key, or a new kind of limit, starts here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::entitlement::{
    Entitlement, Limit, Plan, QuotaPeriod, Source, Status, SubscriptionState,
};
use super::names::Ids;
use crate::domain::{CalendarPeriod, PlanRules, Predictors, Thresholds, UsageType};
use crate::store::{GrantRow, ItemRow, PriceRow, PurchaseRow};

/// Makes entitlements from rows: ids become slots, and each plan's terms are shared.
pub(super) struct Terms<'a> {
    ids: &'a mut Ids,
    plans: &'a mut HashSet<Arc<Plan>, foldhash::fast::FixedState>,
    prices: &'a mut Prices,
}

impl<'a> Terms<'a> {
    pub(super) fn new(
        ids: &'a mut Ids,
        plans: &'a mut HashSet<Arc<Plan>, foldhash::fast::FixedState>,
        prices: &'a mut Prices,
    ) -> Self {
        Self { ids, plans, prices }
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
            limit: limit.into(),
        })
    }

    pub(super) fn item(&mut self, item: ItemRow, customer: u32) -> Entitlement {
        let ItemPlan { plan, quota } = self.item_plan(&item.price_id);
        Entitlement {
            slot: self.ids.entitlement(&item.id, customer),
            plan,
            source: Source::Subscription(SubscriptionState {
                status: Status::parse(&item.status),
                period_start: item.current_period_start.into(),
                period_end: item.current_period_end.into(),
                cancel_at_period_end: item.cancel_at_period_end,
                canceled_at: item.canceled_at.into(),
                ended_at: item.ended_at.into(),
                past_due_since: item.past_due_since.into(),
            }),
            limit: match quota {
                Some(quota) => Limit::Quota {
                    per_period: quota,
                    period: QuotaPeriod::Billing,
                },
                None => Limit::Unlimited,
            }
            .into(),
        }
    }

    pub(super) fn purchase(&mut self, purchase: PurchaseRow, customer: u32) -> Entitlement {
        let PurchasePlan {
            plan,
            credits,
            duration_days,
        } = self.purchase_plan(&purchase.price_id);
        let quantity = purchase.quantity.max(1) as u64;
        Entitlement {
            slot: self.ids.entitlement(&purchase.id, customer),
            plan,
            source: Source::Purchase {
                pass_expires_at: duration_days
                    .map(|days| purchase.paid_at + i64::from(days) * 86_400)
                    .into(),
                refunded_at: purchase.refunded_at.into(),
                disputed_at: purchase.disputed_at.into(),
            },
            limit: match credits {
                Some(credits) => Limit::Credits {
                    total: credits.saturating_mul(quantity),
                },
                None => Limit::Unlimited,
            }
            .into(),
        }
    }

    /// The terms of the price `id`: read with the rows, or none (the catalog no longer has
    /// it), made once.
    fn price_terms(&mut self, id: &str) -> &mut PriceTerms {
        if !self.prices.contains_key(id) {
            self.prices.insert(id.to_owned(), PriceTerms::of(None));
        }
        self.prices.get_mut(id).expect("inserted above")
    }

    fn item_plan(&mut self, price_id: &str) -> ItemPlan {
        let terms = self.price_terms(price_id);
        if let Some(made) = &terms.item {
            return made.clone();
        }
        // Metered prices bill per prediction, so a quota would only stop what the owner is paid for.
        let quota = terms.rules.quota.filter(|_| !terms.metered);
        let meter = terms.meter_event_name.clone().filter(|_| terms.metered);
        let meter = meter.map(|name| self.ids.meters.intern(&name));
        let plan = self.price_terms(price_id).plan("Subscription", meter);
        let made = ItemPlan {
            plan: self.plan(plan),
            quota,
        };
        self.price_terms(price_id).item = Some(made.clone());
        made
    }

    fn purchase_plan(&mut self, price_id: &str) -> PurchasePlan {
        let terms = self.price_terms(price_id);
        if let Some(made) = &terms.purchase {
            return made.clone();
        }
        let (credits, duration_days) = (terms.rules.credits, terms.rules.duration_days);
        let plan = terms.plan("Purchase", None);
        let made = PurchasePlan {
            plan: self.plan(plan),
            credits,
            duration_days,
        };
        self.price_terms(price_id).purchase = Some(made.clone());
        made
    }
}

/// The prices read so far, by id, each with the plans made of it.
pub(super) type Prices = HashMap<String, PriceTerms, foldhash::fast::FixedState>;

/// Reads a price's plan rules, once for all the items and purchases that name it.
pub(super) fn add_price(prices: &mut Prices, price: PriceRow) {
    prices.insert(price.id.clone(), PriceTerms::of(Some(price)));
}

/// A price's plan rules, read from its and its product's metadata once, and the plans made
/// of them for items and for purchases (which differ in their default name and meter).
pub(super) struct PriceTerms {
    rules: PlanRules,
    product_name: Option<String>,
    metered: bool,
    meter_event_name: Option<String>,
    item: Option<ItemPlan>,
    purchase: Option<PurchasePlan>,
}

impl PriceTerms {
    /// The terms of `price`, or of none: no metadata, no name, billed as licensed.
    fn of(price: Option<PriceRow>) -> Self {
        let price = price.unwrap_or_default();
        let (rules, problems) = PlanRules::from_metadata(
            price.product_metadata.as_deref(),
            price.price_metadata.as_deref(),
        );
        for problem in problems {
            tracing::warn!(price = %price.id, %problem, "Plan metadata ignored");
        }
        Self {
            rules,
            product_name: price.product_name,
            metered: UsageType::parse(price.usage_type.as_deref()) == UsageType::Metered,
            meter_event_name: price.meter_event_name,
            item: None,
            purchase: None,
        }
    }

    /// The plan these terms make, named `default_name` if the price's product has no name.
    fn plan(&self, default_name: &str, meter: Option<u32>) -> Plan {
        let rules = &self.rules;
        Plan {
            name: self.product_name.as_deref().unwrap_or(default_name).into(),
            predictors: rules.predictors.clone(),
            rate_limit: rules.rate_limit,
            meter,
            alert_at: rules.alert_at,
            alert_credits_below: rules.alert_credits_below,
            unit: rules.unit.as_deref().map(Into::into),
        }
    }
}

/// A subscription item's plan and the quota it gives per billing period.
#[derive(Clone)]
struct ItemPlan {
    plan: Arc<Plan>,
    quota: Option<u64>,
}

/// A purchase's plan, the credits one unit buys, and how many days a pass lasts.
#[derive(Clone)]
struct PurchasePlan {
    plan: Arc<Plan>,
    credits: Option<u64>,
    duration_days: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, price_id: &str) -> ItemRow {
        ItemRow {
            id: id.into(),
            customer_id: "cus_1".into(),
            status: "active".into(),
            cancel_at_period_end: false,
            canceled_at: None,
            ended_at: None,
            past_due_since: None,
            current_period_start: 0,
            current_period_end: 86_400,
            price_id: price_id.into(),
            created: 0,
        }
    }

    fn purchase(id: &str, price_id: &str, quantity: i64) -> PurchaseRow {
        PurchaseRow {
            id: id.into(),
            customer_id: "cus_1".into(),
            quantity,
            paid_at: 0,
            refunded_at: None,
            disputed_at: None,
            price_id: price_id.into(),
        }
    }

    #[test]
    fn items_and_purchases_take_their_plan_from_the_price_they_name() {
        let (mut ids, mut plans, mut prices) =
            (Ids::default(), HashSet::default(), Prices::default());
        let customer = ids.customers.intern("cus_1");
        add_price(
            &mut prices,
            PriceRow {
                id: "price_metered".into(),
                usage_type: Some("metered".into()),
                meter_event_name: Some("predictions".into()),
                product_name: Some("Pay as you go".into()),
                product_metadata: Some(r#"{"quota":"100"}"#.into()),
                price_metadata: Some(r#"{"rate_limit":"60"}"#.into()),
            },
        );
        add_price(
            &mut prices,
            PriceRow {
                id: "price_pack".into(),
                product_name: Some("Pack".into()),
                price_metadata: Some(r#"{"credits":"500","quota":"7"}"#.into()),
                ..PriceRow::default()
            },
        );
        let mut terms = Terms::new(&mut ids, &mut plans, &mut prices);

        let first = terms.item(item("si_1", "price_metered"), customer);
        let second = terms.item(item("si_2", "price_metered"), customer);
        assert!(Arc::ptr_eq(&first.plan, &second.plan), "one plan per price");
        assert_eq!(&*first.plan.name, "Pay as you go");
        assert_eq!(first.plan.rate_limit, Some(60));
        assert!(
            first.plan.meter.is_some(),
            "a metered price reports to its meter"
        );
        assert_eq!(
            first.limit,
            Limit::Unlimited,
            "a metered price has no quota"
        );

        let pack = terms.purchase(purchase("cs_1", "price_pack", 3), customer);
        assert_eq!(&*pack.plan.name, "Pack");
        assert_eq!(pack.limit, Limit::Credits { total: 1_500 });
        let as_item = terms.item(item("si_3", "price_pack"), customer);
        assert_eq!(
            as_item.limit,
            Limit::Quota {
                per_period: 7,
                period: QuotaPeriod::Billing
            }
        );
        assert!(
            Arc::ptr_eq(&pack.plan, &as_item.plan),
            "the same terms are one plan"
        );

        // A price the catalog no longer has: no metadata, the kind's own name.
        let gone = terms.item(item("si_4", "price_gone"), customer);
        assert_eq!(&*gone.plan.name, "Subscription");
        assert_eq!(gone.limit, Limit::Unlimited);
        let gone = terms.purchase(purchase("cs_2", "price_gone", 1), customer);
        assert_eq!(&*gone.plan.name, "Purchase");
        assert_eq!(gone.limit, Limit::Unlimited);
    }
}
