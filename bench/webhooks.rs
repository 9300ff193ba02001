//! Webhook receipt to updated view, at a fixed event rate, on a seeded ledger.
//!
//! cargo run --release --example webhooks -- <ledger sqlite file> [events] [per second]
//!
//! Copies the ledger, starts the service with a local fake Stripe (wiremock) that answers every
//! re-fetch with a new active subscription for the customer, delivers signed
//! `customer.subscription.created` events for grant-only customers at the given rate, and
//! measures, for each, the time from the acknowledged delivery until the gate's in-memory view
//! holds the new subscription item (watched by a loop of its own, every millisecond, while
//! another task delivers), and how long each delivery took to be acknowledged. The service's
//! warnings go to stderr. Prints one JSON line.
//!
//! With `BENCH_KEYS` set (a file of the ledger's keys, one a line, as `bench/prepare.sh`
//! writes), authorizations run beside the deliveries for as long as they last: `wrk` with
//! `bench/authorize.lua`, 64 connections, each waiting `BENCH_DELAY_MS` between requests
//! (2.01 by default), so the usage flush and its once-a-minute writes take their turns with
//! the webhooks as they do in service. Deliveries that last over a minute then meet one of
//! those writes; wrk's figures are added to the line, and the lags over 150 ms with when their
//! delivery was acknowledged.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tollbooth::app::Application;
use tollbooth::clock::unix_now;
use tollbooth::config::Settings;
use tollbooth::gate::Source;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec_bench_webhooks";

fn list(data: Vec<Value>) -> Value {
    json!({"object": "list", "data": data, "has_more": false})
}

fn customer_of(request: &Request) -> String {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == "customer")
        .map(|(_, v)| v.into_owned())
        .or_else(|| request.url.path().rsplit('/').next().map(str::to_owned))
        .unwrap_or_default()
}

fn subscription(customer: &str) -> Value {
    let now = unix_now();
    json!({
        "id": format!("sub_new_{customer}"), "object": "subscription", "customer": customer,
        "status": "active", "created": now, "cancel_at_period_end": false,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": format!("si_new_{customer}"), "object": "subscription_item", "quantity": 1,
            "current_period_start": now, "current_period_end": now + 30 * 86_400,
            "price": {"id": "price_pro", "object": "price", "product": "prod_pro", "active": true,
                      "currency": "usd", "unit_amount": 2000, "type": "recurring",
                      "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                      "metadata": {}}
        }]}
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ledger = args
        .next()
        .unwrap_or_else(|| "target/bench/bench.db".into());
    let events: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let rate: f64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200.0);

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("webhooks.db");
    std::fs::copy(&ledger, &db)?;
    // Written out now, so the service's first checkpoint does not pay for the copy.
    std::fs::File::open(&db)?.sync_all()?;
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/customers/"))
        .respond_with(|r: &Request| {
            let id = customer_of(r);
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": id, "object": "customer", "created": 0}))
        })
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/subscriptions$"))
        .respond_with(|r: &Request| {
            ResponseTemplate::new(200).set_body_json(list(vec![subscription(&customer_of(r))]))
        })
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/checkout/sessions$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/products/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "prod_pro", "object": "product", "name": "prod_pro", "active": true, "metadata": {}}),
        ))
        .mount(&stripe)
        .await;

    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        (
            "AUTHORIZE_TOKEN",
            "benchmark-authorize-token-0123456789".into(),
        ),
        ("STRIPE_SECRET_KEY", "sk_test_bench".into()),
        ("STRIPE_WEBHOOK_SECRET", SECRET.into()),
        ("STRIPE_API_BASE", stripe.uri()),
        ("RECONCILE_EVERY", "1d".into()),
        ("FXN_OWNER", "acme".into()),
    ]);
    tollbooth::telemetry::init_subscriber("warn", true, false, std::io::stderr);
    let settings = Settings::from_lookup(|k| vars.get(k).cloned())?;
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let url = format!("{base}/stripe/webhook");
    let gate = app.gate();
    tokio::spawn(app.run_until_stopped());
    while !gate.is_loaded() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = match std::env::var("BENCH_KEYS") {
        Ok(keys) => Some(
            std::process::Command::new("wrk")
                .args(["-t1", "-c64", "-s", "bench/authorize.lua"])
                .arg(format!("-d{}s", (events as f64 / rate).ceil() as u64 + 2))
                .arg(&base)
                .env("BENCH_KEYS", keys)
                .env(
                    "BENCH_PATH",
                    "/authorize/benchmark-authorize-token-0123456789",
                )
                .env(
                    "BENCH_DELAY_MS",
                    std::env::var("BENCH_DELAY_MS").unwrap_or_else(|_| "2.01".into()),
                )
                .stdout(Stdio::piped())
                .spawn()?,
        ),
        Err(_) => None,
    };

    // The sender delivers at the rate, as Stripe would, while the checker below watches the
    // view: a check never waits for a delivery, so a lag is the view's, not this loop's.
    let (acknowledged_tx, mut acknowledged_rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut receipts = Vec::with_capacity(events);
        for sent in 0..events {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            // Grant-only customers of the seeded ledger (every fifth, from the fourth).
            let customer = format!("cus_bench{:07}", sent * 5 + 3);
            let event = json!({
                "id": format!("evt_bench_{sent}"), "object": "event", "created": unix_now(),
                "type": "customer.subscription.created",
                "data": {"object": subscription(&customer)},
            })
            .to_string();
            let t = unix_now();
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
            mac.update(format!("{t}.{event}").as_bytes());
            let signature: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let posted = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .header("Stripe-Signature", format!("t={t},v1={signature}"))
                .body(event)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "delivery refused: {}",
                response.status()
            );
            receipts.push(posted.elapsed());
            let _ = acknowledged_tx.send((customer, Instant::now()));
        }
        anyhow::Ok(receipts)
    });

    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut lags = Vec::with_capacity(events);
    // The slow ones, with when they were acknowledged (seconds since the first delivery), to
    // tell which of the service's own periodic work they met.
    let mut slow = Vec::new();
    while lags.len() < events {
        while let Ok(delivered) = acknowledged_rx.try_recv() {
            pending.push(delivered);
        }
        // These customers had a grant only: a subscription in their view is the new one.
        pending.retain(|(customer, acknowledged)| {
            let seen = gate
                .customer(customer, 0)
                .iter()
                .any(|(e, _)| matches!(e.source, Source::Subscription(_)));
            if seen {
                let lag = acknowledged.elapsed();
                if lag > Duration::from_millis(150) {
                    slow.push((acknowledged.duration_since(start), lag));
                }
                lags.push(lag);
            }
            !seen
        });
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "gave up: {} seen",
            lags.len()
        );
        if sender.is_finished() && pending.is_empty() && acknowledged_rx.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut receipts = sender.await??;
    let authorize: Value = match load {
        Some(wrk) => {
            let out = tokio::task::spawn_blocking(move || wrk.wait_with_output()).await??;
            let out = String::from_utf8(out.stdout)?;
            let result = out
                .split_once("RESULT ")
                .and_then(|(_, rest)| rest.lines().next())
                .ok_or_else(|| anyhow::anyhow!("wrk printed no RESULT: {out}"))?;
            serde_json::from_str(result)?
        }
        None => Value::Null,
    };
    receipts.sort();
    lags.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({
            "events": events, "rate_per_s": rate, "keys": gate.key_count(),
            "lag_p50_ms": ms(lags[lags.len() / 2]), "lag_p99_ms": ms(lags[lags.len() * 99 / 100]),
            "lag_max_ms": ms(*lags.last().unwrap()),
            "receipt_p50_ms": ms(receipts[receipts.len() / 2]),
            "receipt_p99_ms": ms(receipts[receipts.len() * 99 / 100]),
            "all_visible_after_s": (start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            "over_150_ms": slow.iter().take(20).map(|&(at, lag)| {
                json!({"at_s": (at.as_secs_f64() * 100.0).round() / 100.0, "lag_ms": ms(lag)})
            }).collect::<Vec<_>>(),
            "authorize": authorize,
        })
    );
    Ok(())
}
