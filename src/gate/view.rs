//! The in-memory view of the ledger that the hot path reads: keys by hash, each pointing at
//! its customer's entitlements. Built whole from a [`LedgerRows`] read and swapped in at once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::{KeyHash, PlanRules, Predictors};
use crate::store::{GrantRow, ItemRow, LedgerRows, PurchaseRow};

use super::entitlement::{Entitlement, Limit, QuotaPeriod, Source, Status, SubscriptionState};

#[derive(Default)]
pub struct View {
    pub version: i64,
    pub keys: HashMap<KeyHash, KeyEntry>,
    /// Every customer with a key, for the account page.
    pub customers: HashMap<String, Arc<CustomerView>>,
}

pub struct KeyEntry {
    pub key_id: Arc<str>,
    pub customer: Arc<CustomerView>,
}

pub struct CustomerView {
    pub id: Arc<str>,
    pub entitlements: Vec<Entitlement>,
}

impl View {
    pub fn build(rows: LedgerRows) -> Self {
        let mut by_customer: HashMap<String, Vec<Entitlement>> = HashMap::new();
        for grant in rows.grants {
            let customer = grant.customer_id.clone();
            if let Some(e) = from_grant(grant) {
                by_customer.entry(customer).or_default().push(e);
            }
        }
        for item in rows.items {
            let customer = item.customer_id.clone();
            by_customer
                .entry(customer)
                .or_default()
                .push(from_item(item));
        }
        for purchase in rows.purchases {
            let customer = purchase.customer_id.clone();
            by_customer
                .entry(customer)
                .or_default()
                .push(from_purchase(purchase));
        }
        let mut customers: HashMap<String, Arc<CustomerView>> = HashMap::new();
        let mut keys = HashMap::with_capacity(rows.keys.len());
        for key in rows.keys {
            let Some(hash) = KeyHash::from_hex(&key.key_hash) else {
                tracing::warn!(key_id = %key.id, "Skipping a key whose stored hash is not valid");
                continue;
            };
            let customer = customers
                .entry(key.customer_id.clone())
                .or_insert_with(|| {
                    Arc::new(CustomerView {
                        id: Arc::from(key.customer_id.as_str()),
                        entitlements: by_customer.remove(&key.customer_id).unwrap_or_default(),
                    })
                })
                .clone();
            keys.insert(
                hash,
                KeyEntry {
                    key_id: Arc::from(key.id),
                    customer,
                },
            );
        }
        Self {
            version: rows.version,
            keys,
            customers,
        }
    }
}

fn from_grant(grant: GrantRow) -> Option<Entitlement> {
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
            period: if grant.quota_period.as_deref() == Some("day") {
                QuotaPeriod::Day
            } else {
                QuotaPeriod::Month
            },
        },
        (None, Some(credits)) => Limit::Credits {
            total: credits.max(0) as u64,
        },
        (None, None) => Limit::Unlimited,
    };
    Some(Entitlement {
        name: Arc::from(grant.note.as_deref().unwrap_or("Access given by the owner")),
        id: Arc::from(grant.id),
        predictors,
        source: Source::Grant {
            expires_at: grant.expires_at,
        },
        limit,
        rate_limit: None,
        meter: None,
    })
}

fn rules(id: &str, product: Option<&str>, price: Option<&str>) -> PlanRules {
    let (rules, problems) = PlanRules::from_metadata(product, price);
    for problem in problems {
        tracing::warn!(entitlement = %id, %problem, "Plan metadata ignored");
    }
    rules
}

fn from_item(item: ItemRow) -> Entitlement {
    let rules = rules(
        &item.id,
        item.product_metadata.as_deref(),
        item.price_metadata.as_deref(),
    );
    // Metered prices bill per prediction, so a quota would only stop what the owner is paid for.
    let metered = item.usage_type.as_deref() == Some("metered");
    let limit = match rules.quota {
        Some(quota) if !metered => Limit::Quota {
            per_period: quota,
            period: QuotaPeriod::Billing,
        },
        _ => Limit::Unlimited,
    };
    Entitlement {
        name: Arc::from(item.product_name.as_deref().unwrap_or("Subscription")),
        id: Arc::from(item.id),
        predictors: rules.predictors,
        source: Source::Subscription(SubscriptionState {
            status: Status::parse(&item.status),
            period_start: item.current_period_start,
            period_end: item.current_period_end,
            cancel_at_period_end: item.cancel_at_period_end,
            canceled_at: item.canceled_at,
            ended_at: item.ended_at,
            past_due_since: item.past_due_since,
        }),
        limit,
        rate_limit: rules.rate_limit,
        meter: item
            .meter_event_name
            .filter(|_| metered)
            .map(|name| Arc::from(name.as_str())),
    }
}

fn from_purchase(purchase: PurchaseRow) -> Entitlement {
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
        name: Arc::from(purchase.product_name.as_deref().unwrap_or("Purchase")),
        id: Arc::from(purchase.id),
        predictors: rules.predictors,
        source: Source::Purchase {
            pass_expires_at: rules
                .duration_days
                .map(|days| purchase.paid_at + i64::from(days) * 86_400),
            refunded_at: purchase.refunded_at,
            disputed_at: purchase.disputed_at,
        },
        limit,
        rate_limit: rules.rate_limit,
        meter: None,
    }
}
