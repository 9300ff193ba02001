//! The hot path alone, without HTTP: what one authorization costs the gate over a ledger of
//! 100,000 customers in memory, keys drawn at random (so the lookups miss the cache the way
//! they do under real traffic), and the two steps before any lookup.
//!
//!     cargo bench --bench gate
//!
//! The ledger is the same mix `bench/seed.rs` writes for `bench/run.sh`: 40% unlimited
//! subscriptions, 20% subscriptions with a quota, 20% manual grants, 20% credit purchases, and
//! 5% of customers also with a canceled subscription.

use std::sync::{Arc, Mutex};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::Rng as _;
use tollbooth::domain::{AccessKey, KeyPrefix, Owner};
use tollbooth::gate::{Gate, GateRules};
use tollbooth::store::{
    BoxFuture, GrantRow, ItemRow, KeyRow, LedgerChange, LedgerRows, LedgerSink, PriceRow,
    PurchaseRow, Snapshot,
};

const CUSTOMERS: usize = 100_000;
const TAGS: [&str; 4] = [
    "@acme/sdxl",
    "@acme/llama-3",
    "@acme/whisper",
    "@acme/upscale",
];
const NOW: i64 = 1_795_996_800;
const DAY: i64 = 86_400;

fn item(id: String, customer: &str, status: &str, quota: bool) -> ItemRow {
    ItemRow {
        id,
        customer_id: customer.to_owned(),
        status: status.to_owned(),
        cancel_at_period_end: false,
        canceled_at: (status == "canceled").then_some(NOW - 40 * DAY),
        ended_at: (status == "canceled").then_some(NOW - 40 * DAY),
        past_due_since: None,
        current_period_start: NOW - DAY,
        current_period_end: NOW + 29 * DAY,
        price_id: if quota { "price_quota" } else { "price_pro" }.into(),
        created: NOW - 40 * DAY,
    }
}

/// A price of the catalog (a recurring one bills as licensed), with its product's name and
/// metadata.
fn price(
    id: &str,
    recurring: bool,
    product: &str,
    product_metadata: &str,
    price_metadata: &str,
) -> PriceRow {
    PriceRow {
        id: id.into(),
        usage_type: recurring.then(|| "licensed".into()),
        meter_event_name: None,
        product_name: Some(product.into()),
        product_metadata: Some(product_metadata.into()),
        price_metadata: Some(price_metadata.into()),
    }
}

/// The seeded ledger and its keys.
fn ledger() -> (LedgerRows, Vec<String>) {
    let prefix = KeyPrefix::parse("tb").expect("a valid prefix");
    let mut rows = LedgerRows {
        version: 1,
        prices: vec![
            price("price_pro", true, "Pro", "{}", "{}"),
            price(
                "price_quota",
                true,
                "Quota",
                r#"{"quota":"1000000000"}"#,
                "{}",
            ),
            price(
                "price_credits",
                false,
                "Credits",
                "{}",
                r#"{"credits":"1000000000"}"#,
            ),
        ],
        ..LedgerRows::default()
    };
    let mut keys = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        let customer = format!("cus_bench{i:07}");
        let key = AccessKey::generate(&prefix);
        rows.keys.push(KeyRow {
            id: format!("key_bench{i:07}"),
            customer_id: customer.clone(),
            key_hash: key.hash().to_hex(),
            ..KeyRow::default()
        });
        keys.push(key.as_ref().to_owned());
        match i % 5 {
            0 | 1 => rows.items.push(item(
                format!("si_bench{i:07}_0"),
                &customer,
                "active",
                false,
            )),
            2 => rows
                .items
                .push(item(format!("si_bench{i:07}_0"), &customer, "active", true)),
            3 => rows.grants.push(GrantRow {
                id: format!("gr_bench{i:07}"),
                customer_id: customer.clone(),
                note: None,
                predictors: "@acme/*".into(),
                quota: None,
                quota_period: None,
                credits: None,
                expires_at: None,
                created_at: 0,
            }),
            _ => rows.purchases.push(PurchaseRow {
                id: format!("cs_bench{i:07}"),
                customer_id: customer.clone(),
                quantity: 1,
                paid_at: NOW - 3_600,
                refunded_at: None,
                disputed_at: None,
                price_id: "price_credits".into(),
            }),
        }
        if i % 20 == 0 {
            rows.items.push(item(
                format!("si_bench{i:07}_1"),
                &customer,
                "canceled",
                false,
            ));
        }
    }
    (rows, keys)
}

/// The seeded ledger in memory, read by the gate through the same trait as the database.
struct Seeded(Mutex<Option<LedgerRows>>);

impl Snapshot for Seeded {
    fn ledger_version(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async { Ok(1) })
    }

    fn load_ledger_into<'a>(
        &'a self,
        _now: i64,
        sink: &'a mut dyn LedgerSink,
    ) -> BoxFuture<'a, anyhow::Result<i64>> {
        Box::pin(async move {
            let rows = self.0.lock().unwrap().take().unwrap_or_default();
            rows.keys.into_iter().for_each(|row| sink.key(row));
            rows.prices.into_iter().for_each(|row| sink.price(row));
            rows.grants.into_iter().for_each(|row| sink.grant(row));
            rows.items.into_iter().for_each(|row| sink.item(row));
            rows.purchases
                .into_iter()
                .for_each(|row| sink.purchase(row));
            rows.usage.into_iter().for_each(|row| sink.usage(row));
            Ok(rows.version)
        })
    }

    fn load_customer<'a>(
        &'a self,
        _customer_id: &'a str,
        _now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>> {
        Box::pin(async { Ok(LedgerRows::default()) })
    }

    fn load_customer_of_key<'a>(
        &'a self,
        _key_hash: &'a str,
        _now: i64,
    ) -> BoxFuture<'a, anyhow::Result<LedgerRows>> {
        Box::pin(async { Ok(LedgerRows::default()) })
    }

    fn ledger_changes(
        &self,
        _after: i64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<LedgerChange>>>> {
        Box::pin(async { Ok(Some(Vec::new())) })
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

fn hot_path(c: &mut Criterion) {
    let (rows, keys) = ledger();
    let gate = Gate::new(GateRules {
        owner: Some(Owner::parse("acme").expect("a valid owner")),
        past_due_grace: 3 * DAY,
    });
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(gate.reload(&Seeded(Mutex::new(Some(rows))), NOW))
        .expect("the seeded ledger loads");
    let mut rng = rand::rng();
    let mut pick = move || {
        (
            TAGS[rng.random_range(0..TAGS.len())],
            keys[rng.random_range(0..keys.len())].clone(),
        )
    };

    c.bench_function("authorize, 100,000 keys, random key and tag", |b| {
        b.iter_batched(
            &mut pick,
            |(tag, key)| {
                gate.authorize(tag, &key, NOW)
                    .expect("every seeded key is allowed")
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("refuse an unknown key, 100,000 keys", |b| {
        let unknown = AccessKey::generate(&KeyPrefix::parse("tb").expect("a valid prefix"));
        b.iter(|| gate.authorize(TAGS[0], unknown.as_ref(), NOW).unwrap_err())
    });
    c.bench_function("parse and hash a key (before any lookup)", |b| {
        let (_, key) = pick();
        b.iter(|| AccessKey::parse(&key).expect("a seeded key").hash())
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
