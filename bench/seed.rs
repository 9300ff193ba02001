//! Seeds a benchmark ledger: N customers with one key each and a realistic mix of what gives
//! access (subscriptions unlimited and with a quota, manual grants, credit purchases, some
//! canceled history) with what each quota and credit balance has counted so far, written in `tollbooth export` format for `tollbooth import`, plus the keys.
//!
//! cargo run --release --example seed -- <customers> <out dir>

use std::io::{BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tollbooth::domain::{AccessKey, KeyPrefix};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&out)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut ledger = BufWriter::new(std::fs::File::create(out.join("ledger.jsonl"))?);
    let mut keys = BufWriter::new(std::fs::File::create(out.join("keys.txt"))?);
    let mut row = |table: &str, values: Value| -> std::io::Result<()> {
        serde_json::to_writer(&mut ledger, &json!({"table": table, "row": values}))?;
        ledger.write_all(b"\n")
    };

    for (product, metadata) in [
        ("prod_pro", json!({})),
        ("prod_quota", json!({"quota": "1000000000"})),
        ("prod_credits", json!({})),
    ] {
        row(
            "products",
            json!([product, product, null, true, metadata.to_string(), now]),
        )?;
    }
    for (price, product, kind, metadata) in [
        ("price_pro", "prod_pro", "recurring", json!({})),
        ("price_quota", "prod_quota", "recurring", json!({})),
        (
            "price_credits",
            "prod_credits",
            "one_time",
            json!({"credits": "1000000000"}),
        ),
    ] {
        let recurring = kind == "recurring";
        row(
            "prices",
            json!([
                price,
                product,
                true,
                "usd",
                2000,
                kind,
                if recurring {
                    json!("month")
                } else {
                    Value::Null
                },
                if recurring { json!(1) } else { Value::Null },
                if recurring {
                    json!("licensed")
                } else {
                    Value::Null
                },
                null,
                metadata.to_string(),
                now,
                null,
                null
            ]),
        )?;
    }
    let prefix = KeyPrefix::parse("tb").unwrap();
    for i in 0..customers {
        let customer = format!("cus_bench{i:07}");
        row(
            "customers",
            json!([
                customer,
                format!("c{i}@example.com"),
                null,
                now - 86_400,
                null
            ]),
        )?;
        let key = AccessKey::generate(&prefix);
        writeln!(keys, "{}", key.as_ref())?;
        row(
            "access_keys",
            json!([
                format!("key_bench{i:07}"),
                customer,
                key.hash().to_hex(),
                key.display_prefix(),
                null,
                now - 86_400,
                null
            ]),
        )?;
        let subscribe = |row: &mut dyn FnMut(&str, Value) -> std::io::Result<()>,
                         n: usize,
                         price: &str,
                         status: &str| {
            let sub = format!("sub_bench{i:07}_{n}");
            let ended = if status == "canceled" {
                json!(now - 40 * 86_400)
            } else {
                Value::Null
            };
            row(
                "subscriptions",
                json!([
                    sub,
                    customer,
                    status,
                    false,
                    null,
                    ended,
                    ended,
                    null,
                    now - 90 * 86_400,
                    now * 1000
                ]),
            )?;
            row(
                "subscription_items",
                json!([
                    format!("si_bench{i:07}_{n}"),
                    sub,
                    price,
                    1,
                    now - 86_400,
                    now + 29 * 86_400
                ]),
            )
        };
        match i % 5 {
            0 | 1 => subscribe(&mut row, 0, "price_pro", "active")?,
            2 => {
                subscribe(&mut row, 0, "price_quota", "active")?;
                // What the quota has counted this period.
                row(
                    "usage_counters",
                    json!([format!("si_bench{i:07}_0"), now - 86_400, customer, 7, now]),
                )?;
            }
            3 => row(
                "grants",
                json!([
                    format!("gr_bench{i:07}"),
                    customer,
                    "@acme/*",
                    null,
                    null,
                    null,
                    null,
                    null,
                    now,
                    null
                ]),
            )?,
            _ => row(
                "purchases",
                json!([
                    format!("cs_bench{i:07}"),
                    customer,
                    "price_credits",
                    1,
                    null,
                    now - 3_600,
                    null,
                    null
                ]),
            )
            .and_then(|()| {
                // Credits spent so far (period 0: the purchase's whole life).
                row(
                    "usage_counters",
                    json!([format!("cs_bench{i:07}"), 0, customer, 3, now]),
                )
            })?,
        }
        if i % 20 == 0 {
            subscribe(&mut row, 1, "price_pro", "canceled")?;
        }
    }
    ledger.flush()?;
    keys.flush()?;
    println!(
        "Seeded {customers} customers and keys into {}",
        out.display()
    );
    Ok(())
}
