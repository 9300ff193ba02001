//! The in-memory view of the ledger that the hot path reads: keys by hash, each pointing at
//! its customer's entitlements. Built whole from a [`LedgerRows`] read, or patched from the
//! last one with a few customers' rows; either way a new view is swapped in at once.

use std::collections::{HashMap, HashSet};

use super::FastMap;
use super::id::Id;
use std::sync::Arc;

use crate::domain::{KeyHash, PlanRules, Predictors};
use crate::store::{GrantRow, ItemRow, LedgerRows, PurchaseRow};

use super::entitlement::{Entitlement, Limit, QuotaPeriod, Source, Status, SubscriptionState};

#[derive(Default)]
pub struct View {
    pub version: i64,
    pub keys: FastMap<KeyHash, KeyEntry>,
    /// Every customer with a key, for the account page.
    pub customers: FastMap<Arc<str>, Arc<CustomerView>>,
}

#[derive(Clone)]
pub struct KeyEntry {
    pub key_id: Id,
    pub customer: Arc<CustomerView>,
}

pub struct CustomerView {
    pub id: Id,
    pub entitlements: Vec<Entitlement>,
}

impl View {
    pub fn build(rows: LedgerRows) -> Self {
        let mut shared = Interner::default();
        let mut by_customer: HashMap<String, Vec<Entitlement>> = HashMap::new();
        for grant in rows.grants {
            let customer = grant.customer_id.clone();
            if let Some(e) = from_grant(grant, &mut shared) {
                by_customer.entry(customer).or_default().push(e);
            }
        }
        for item in rows.items {
            let customer = item.customer_id.clone();
            by_customer
                .entry(customer)
                .or_default()
                .push(from_item(item, &mut shared));
        }
        for purchase in rows.purchases {
            let customer = purchase.customer_id.clone();
            by_customer
                .entry(customer)
                .or_default()
                .push(from_purchase(purchase, &mut shared));
        }
        let mut customers: FastMap<Arc<str>, Arc<CustomerView>> = FastMap::default();
        let mut keys = FastMap::with_capacity_and_hasher(rows.keys.len(), Default::default());
        for key in rows.keys {
            let Some(hash) = KeyHash::from_hex(&key.key_hash) else {
                tracing::warn!(key_id = %key.id, "Skipping a key whose stored hash is not valid");
                continue;
            };
            let customer = match customers.get(key.customer_id.as_str()) {
                Some(customer) => Arc::clone(customer),
                None => {
                    let customer = Arc::new(CustomerView {
                        id: Id::new(&key.customer_id),
                        entitlements: by_customer
                            .remove(&key.customer_id)
                            .map(|mut entitlements| {
                                // Most customers hold one or two; a pushed Vec reserves four.
                                entitlements.shrink_to_fit();
                                entitlements
                            })
                            .unwrap_or_default(),
                    });
                    customers.insert(Arc::clone(customer.id.text()), Arc::clone(&customer));
                    customer
                }
            };
            keys.insert(
                hash,
                KeyEntry {
                    key_id: Id::from(key.id),
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

    /// This view with the named customers replaced by their rows as now stored (a customer
    /// left without rows, say whose last key was revoked, drops out), at `version`.
    pub fn patched(&self, version: i64, changed: Vec<(String, LedgerRows)>) -> Self {
        let ids: HashSet<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
        let mut keys = self.keys.clone();
        keys.retain(|_, entry| !ids.contains(&*entry.customer.id));
        let mut customers = self.customers.clone();
        customers.retain(|id, _| !ids.contains(&**id));
        for (_, rows) in changed {
            let part = Self::build(rows);
            keys.extend(part.keys);
            customers.extend(part.customers);
        }
        Self {
            version,
            keys,
            customers,
        }
    }
}

/// One copy of what many entitlements hold alike (a plan's predictors, a product's name):
/// less memory, and the hot path reads the copy most requests have just read.
#[derive(Default)]
struct Interner {
    predictors: HashSet<Arc<Predictors>>,
    names: HashSet<Arc<str>>,
}

impl Interner {
    fn predictors(&mut self, predictors: Predictors) -> Arc<Predictors> {
        shared_copy(&mut self.predictors, &predictors, || {
            Arc::new(predictors.clone())
        })
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        shared_copy(&mut self.names, name, || Arc::from(name))
    }
}

/// The copy of `value` in `set`, put there (made by `make`) if it is not yet.
fn shared_copy<T: std::hash::Hash + Eq + ?Sized>(
    set: &mut HashSet<Arc<T>>,
    value: &T,
    make: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    if let Some(shared) = set.get(value) {
        return Arc::clone(shared);
    }
    let shared = make();
    set.insert(Arc::clone(&shared));
    shared
}

fn from_grant(grant: GrantRow, shared: &mut Interner) -> Option<Entitlement> {
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
        name: shared.name(grant.note.as_deref().unwrap_or("Access given by the owner")),
        id: Id::from(grant.id),
        predictors: shared.predictors(predictors),
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

fn from_item(item: ItemRow, shared: &mut Interner) -> Entitlement {
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
        name: shared.name(item.product_name.as_deref().unwrap_or("Subscription")),
        id: Id::from(item.id),
        predictors: shared.predictors(rules.predictors),
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
            .map(|name| shared.name(&name)),
    }
}

fn from_purchase(purchase: PurchaseRow, shared: &mut Interner) -> Entitlement {
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
        name: shared.name(purchase.product_name.as_deref().unwrap_or("Purchase")),
        id: Id::from(purchase.id),
        predictors: shared.predictors(rules.predictors),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyRow;

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    /// Customer `c` with keys `keys` and one grant named after the customer and `note`.
    fn rows(c: &str, keys: &[u8], note: &str) -> LedgerRows {
        LedgerRows {
            keys: keys
                .iter()
                .map(|&n| KeyRow {
                    id: format!("key_{n}"),
                    customer_id: c.into(),
                    key_hash: hash(n),
                })
                .collect(),
            grants: vec![GrantRow {
                id: format!("g_{c}"),
                customer_id: c.into(),
                note: Some(note.into()),
                predictors: "*".into(),
                quota: None,
                quota_period: None,
                credits: None,
                expires_at: None,
            }],
            ..LedgerRows::default()
        }
    }

    fn merged(parts: Vec<LedgerRows>, version: i64) -> LedgerRows {
        let mut all = LedgerRows {
            version,
            ..LedgerRows::default()
        };
        for part in parts {
            all.keys.extend(part.keys);
            all.grants.extend(part.grants);
        }
        all
    }

    /// Keys with their customer and that customer's first entitlement's name.
    fn summary(view: &View) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = view
            .keys
            .iter()
            .map(|(hash, entry)| {
                (
                    hash.to_hex(),
                    entry.customer.id.to_string(),
                    entry.customer.entitlements[0].name.to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_patched_view_equals_one_built_whole_from_the_same_rows() {
        let before = View::build(merged(
            vec![rows("a", &[1], "old"), rows("b", &[2, 3], "old")],
            5,
        ));
        // a is gone (deleted, or its last key revoked), b lost key 2 and changed its grant,
        // c is new; d was untouched.
        let before = before.patched(6, vec![("d".into(), rows("d", &[9], "same"))]);
        let patched = before.patched(
            9,
            vec![
                ("a".into(), LedgerRows::default()),
                ("b".into(), rows("b", &[3, 4], "new")),
                ("c".into(), rows("c", &[5], "new")),
            ],
        );
        let whole = View::build(merged(
            vec![
                rows("b", &[3, 4], "new"),
                rows("c", &[5], "new"),
                rows("d", &[9], "same"),
            ],
            9,
        ));
        assert_eq!(patched.version, 9);
        assert_eq!(summary(&patched), summary(&whole));
        let mut ids: Vec<_> = patched.customers.keys().map(|id| id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["b", "c", "d"]);
        assert_eq!(
            before.keys.len(),
            4,
            "the view patched from is left as it was"
        );
    }
}
