//! The whole ledger read at start: every row once, the usage counters too, however the engine
//! hands them over (SQLite packs them a chunk at a time), and each customer's plans tried in the same order whatever
//! order the rows come in: grants, then subscriptions, then purchases, each oldest first and
//! then by id.

use std::collections::HashSet;

use serde_json::{Value, json};
use tollbooth::clock::unix_now;
use tollbooth::gate::{Gate, GateRules};
use tollbooth::store::sql::PACKED_ROWS;
use tollbooth::store::transfer::{TABLES, TableRows};
use tollbooth::store::{Snapshot as _, Transfer as _};

use crate::helpers::{TestDatabase, load_ledger};

/// More customers than one packed chunk holds, so every table spans chunks.
const CUSTOMERS: usize = PACKED_ROWS + PACKED_ROWS / 2;

/// A row of `table` with the named columns set and every other one empty.
fn row(table: &str, values: &[(&str, Value)]) -> Vec<Value> {
    let (_, columns) = TABLES.iter().find(|(name, _)| *name == table).unwrap();
    columns
        .iter()
        .map(|(column, _)| {
            let value = values.iter().find(|(name, _)| name == column);
            value.map_or(Value::Null, |(_, v)| v.clone())
        })
        .collect()
}

/// Each customer has a key, two grants made in the same second, an older subscription and a
/// newer one with two items, and two purchases: all written newest and highest id first.
fn ledger(now: i64) -> Vec<TableRows> {
    let mut tables: Vec<TableRows> = TABLES.iter().map(|(name, _)| (*name, vec![])).collect();
    let mut add = |table: &str, values: &[(&str, Value)]| {
        let at = tables.iter().position(|(name, _)| *name == table).unwrap();
        tables[at].1.push(row(table, values));
    };
    add(
        "products",
        &[
            ("id", json!("prod_q")),
            ("name", json!("Quota")),
            ("active", json!(true)),
            ("metadata", json!(r#"{"quota":"100"}"#)),
            ("updated_at", json!(now)),
        ],
    );
    add(
        "products",
        &[
            ("id", json!("prod_c")),
            ("name", json!("Credits")),
            ("active", json!(true)),
            ("metadata", json!("{}")),
            ("updated_at", json!(now)),
        ],
    );
    for (price, product, kind, metadata) in [
        ("price_q", "prod_q", "recurring", "{}"),
        ("price_c", "prod_c", "one_time", r#"{"credits":"10"}"#),
    ] {
        let recurring = kind == "recurring";
        add(
            "prices",
            &[
                ("id", json!(price)),
                ("product_id", json!(product)),
                ("active", json!(true)),
                ("currency", json!("usd")),
                ("unit_amount", json!(500)),
                ("price_type", json!(kind)),
                ("recurring_interval", json!(recurring.then_some("month"))),
                ("recurring_interval_count", json!(recurring.then_some(1))),
                ("usage_type", json!(recurring.then_some("licensed"))),
                ("metadata", json!(metadata)),
                ("updated_at", json!(now)),
            ],
        );
    }
    for i in 0..CUSTOMERS {
        let c = format!("cus_{i:05}");
        add(
            "customers",
            &[("id", json!(c)), ("created_at", json!(now - 86_400))],
        );
        add(
            "access_keys",
            &[
                ("id", json!(format!("key_{i:05}"))),
                ("customer_id", json!(c)),
                ("key_hash", json!(format!("{i:064x}"))),
                ("display_prefix", json!("tb_x")),
                ("created_at", json!(now - 86_400)),
            ],
        );
        for g in ["b", "a"] {
            add(
                "grants",
                &[
                    ("id", json!(format!("g_{i:05}_{g}"))),
                    ("customer_id", json!(c)),
                    ("predictors", json!("*")),
                    ("credits", json!(5)),
                    ("created_at", json!(now - 3_600)),
                ],
            );
        }
        for (sub, created) in [("new", now - 86_400), ("old", now - 2 * 86_400)] {
            add(
                "subscriptions",
                &[
                    ("id", json!(format!("sub_{i:05}_{sub}"))),
                    ("customer_id", json!(c)),
                    ("status", json!("active")),
                    ("cancel_at_period_end", json!(false)),
                    ("created", json!(created)),
                    ("stripe_updated", json!(now)),
                ],
            );
        }
        for (item, sub) in [("2", "new"), ("1", "new"), ("9", "old")] {
            add(
                "subscription_items",
                &[
                    ("id", json!(format!("si_{i:05}_{item}"))),
                    ("subscription_id", json!(format!("sub_{i:05}_{sub}"))),
                    ("price_id", json!("price_q")),
                    ("quantity", json!(1)),
                    ("current_period_start", json!(now - 86_400)),
                    ("current_period_end", json!(now + 29 * 86_400)),
                ],
            );
        }
        // Counts of several periods of one quota (a chunk may end between them) and of credits.
        for (entitlement, period_start, used) in [
            (format!("si_{i:05}_1"), now - 86_400, 4),
            (format!("si_{i:05}_1"), now - 40 * 86_400, 9),
            (format!("g_{i:05}_a"), 0, 2),
        ] {
            add(
                "usage_counters",
                &[
                    ("entitlement", json!(entitlement)),
                    ("period_start", json!(period_start)),
                    ("customer_id", json!(c)),
                    ("used", json!(used)),
                    ("updated_at", json!(now)),
                ],
            );
        }
        for (purchase, paid) in [("y", now - 60), ("z", now - 600)] {
            add(
                "purchases",
                &[
                    ("id", json!(format!("cs_{i:05}_{purchase}"))),
                    ("customer_id", json!(c)),
                    ("price_id", json!("price_c")),
                    ("quantity", json!(1)),
                    ("paid_at", json!(paid)),
                ],
            );
        }
    }
    tables
}

#[tokio::test]
async fn the_whole_ledger_is_read_once_across_chunks_and_each_customer_s_plans_keep_their_order() {
    let db = TestDatabase::fresh().await;
    let store = tollbooth::store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = unix_now();
    store.import(&ledger(now)).await.unwrap();

    let rows = load_ledger(store.as_ref(), now).await.unwrap();
    let once = |ids: Vec<&str>, expected: usize| {
        assert_eq!(ids.len(), expected);
        assert_eq!(ids.into_iter().collect::<HashSet<_>>().len(), expected);
    };
    once(rows.keys.iter().map(|r| r.id.as_str()).collect(), CUSTOMERS);
    once(
        rows.grants.iter().map(|r| r.id.as_str()).collect(),
        2 * CUSTOMERS,
    );
    once(
        rows.items.iter().map(|r| r.id.as_str()).collect(),
        3 * CUSTOMERS,
    );
    once(
        rows.purchases.iter().map(|r| r.id.as_str()).collect(),
        2 * CUSTOMERS,
    );
    let counters: Vec<(String, i64)> = rows
        .usage
        .iter()
        .map(|r| (r.entitlement.clone(), r.period_start))
        .collect();
    assert_eq!(counters.len(), 3 * CUSTOMERS);
    assert_eq!(counters.iter().collect::<HashSet<_>>().len(), 3 * CUSTOMERS);
    assert!(rows.items.iter().all(|r| !r.cancel_at_period_end));
    assert_eq!(rows.version, store.ledger_version().await.unwrap());

    let gate = Gate::new(GateRules {
        owner: None,
        past_due_grace: 0,
    });
    gate.reload(store.as_ref(), now).await.unwrap();
    for i in [0, PACKED_ROWS - 1, PACKED_ROWS, CUSTOMERS - 1] {
        let limits = gate.limits(&format!("cus_{i:05}"), now);
        let order: Vec<&str> = limits.iter().map(|l| l.entitlement_id.as_str()).collect();
        let used: Vec<u64> = limits.iter().map(|l| l.used).collect();
        assert_eq!(used, [2, 0, 0, 4, 0, 0, 0], "customer {i}");
        let expected: Vec<String> = ["g_a", "g_b", "si_9", "si_1", "si_2", "cs_z", "cs_y"]
            .iter()
            .map(|id| {
                let (kind, n) = id.split_once('_').unwrap();
                format!("{kind}_{i:05}_{n}")
            })
            .collect();
        assert_eq!(order, expected, "customer {i}");
    }
}
