//! The metrics listener (`METRICS_ADDR`): what an owner's Prometheus (or Fly's) scrapes.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tollbooth::domain::{AccessKey, KeyPrefix};

use crate::helpers::{Issue, TOKEN, TestApp, spawn_app, spawn_app_with};
use crate::stripe_fake::{FakeStripe, event, spawn_app_with_stripe_and, subscription};

/// Samples of one scrape, by their name and labels as written (`name{a="b"}`).
async fn scrape(app: &TestApp) -> (String, HashMap<String, f64>) {
    let address = app.metrics_address.as_ref().expect("METRICS_ADDR is set");
    let response = app
        .client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect();
    (text, samples)
}

fn refused(reason: &str) -> String {
    format!("tollbooth_authorizations_total{{result=\"refused\",reason=\"{reason}\"}}")
}

#[tokio::test]
async fn authorizations_are_counted_by_outcome_and_reason_with_no_key_in_any_label() {
    let app = spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let issued = app.issue(Issue::default()).await;
    let unknown = AccessKey::generate(&KeyPrefix::parse("tb").unwrap());
    let mut typo = issued.key.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });

    for _ in 0..3 {
        assert_eq!(app.authorize("@acme/sdxl", &issued.key).await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(
            app.authorize("@acme/sdxl", unknown.as_ref()).await.status(),
            400
        );
    }
    assert_eq!(app.authorize("@acme/sdxl", &typo).await.status(), 400);
    let not_json = app
        .post_raw(
            &app.authorize_url(),
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(not_json.status().as_u16(), 400);
    // A wrong token is not an authorization: not counted.
    let wrong = app
        .post_raw(
            &format!("{}/authorize/wrong-token-0123456789", app.address),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(wrong.status().as_u16(), 404);

    let (text, samples) = scrape(&app).await;
    assert_eq!(
        samples["tollbooth_authorizations_total{result=\"allowed\"}"],
        3.0
    );
    assert_eq!(samples[&refused("unknown_key")], 2.0);
    assert_eq!(samples[&refused("key_typo")], 1.0);
    assert_eq!(samples[&refused("bad_request")], 1.0);
    assert_eq!(
        samples[&refused("quota_used")],
        0.0,
        "every reason is listed"
    );
    assert_eq!(
        samples["tollbooth_authorization_duration_seconds_count"],
        7.0
    );
    assert_eq!(
        samples["tollbooth_authorization_duration_seconds_bucket{le=\"+Inf\"}"],
        7.0
    );
    assert_eq!(samples["tollbooth_keys_loaded"], 1.0);
    assert_eq!(samples["tollbooth_customers_loaded"], 1.0);
    assert_eq!(samples["tollbooth_view_loaded"], 1.0);
    assert_eq!(samples["tollbooth_database_up"], 1.0);
    assert_eq!(
        samples["tollbooth_webhook_inbox_backlog{state=\"waiting\"}"],
        0.0
    );
    assert!(samples["process_resident_memory_bytes"] > 1e6);
    for secret in [
        issued.key.as_str(),
        unknown.as_ref(),
        TOKEN,
        &issued.customer_id,
    ] {
        assert!(!text.contains(secret), "the scrape shows {secret}");
    }
}

#[tokio::test]
async fn without_metrics_addr_there_is_no_metrics_listener_and_no_metrics_route() {
    let app = spawn_app().await;
    assert!(app.metrics_address.is_none());
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn webhook_events_and_stripe_calls_are_counted_by_result_and_status() {
    let stripe = FakeStripe::start().await;
    stripe.customer_fails_once(500).await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    let app = spawn_app_with_stripe_and(&stripe, &[("METRICS_ADDR", "127.0.0.1:0")]).await;

    app.deliver(&event(
        "evt_counted",
        "customer.subscription.created",
        subscription("active", 1),
    ))
    .await;
    // Counted once the worker is done with the event, just after it is recorded.
    let started = std::time::Instant::now();
    let samples = loop {
        let (_, samples) = scrape(&app).await;
        let key = "tollbooth_webhook_events_total{type=\"customer.subscription.created\",result=\"processed\"}";
        if samples.get(key) == Some(&1.0) {
            break samples;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{samples:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let event = app
        .store
        .stripe_event("evt_counted")
        .await
        .unwrap()
        .unwrap();
    let events = |result: &str| {
        samples
            .get(&format!(
                "tollbooth_webhook_events_total{{type=\"customer.subscription.created\",result=\"{result}\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert!(event.processed_at.is_some());
    // The inbox counts every attempt, the one that succeeded too.
    assert_eq!(
        events("failed"),
        (event.attempts - 1) as f64,
        "each failed attempt is counted"
    );
    let calls = |status: &str| {
        samples
            .get(&format!(
                "tollbooth_stripe_requests_total{{status=\"{status}\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert!(calls("200") >= 1.0, "{samples:?}");
    assert_eq!(
        calls("500"),
        events("failed"),
        "a request whose last answer was 500 (after the client's own retries) failed an attempt"
    );
}

/// `promtool check metrics` (Debian's `prometheus` package, installed by `.ci/run`) on a
/// scrape taken after load: every outcome, a webhook, the flush.
#[tokio::test]
#[ignore = "needs promtool; .ci/run installs it and runs this"]
async fn promtool_finds_nothing_wrong_with_a_scrape_taken_after_load() {
    let app = spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let issued = app.issue(Issue::default()).await;
    let unknown = AccessKey::generate(&KeyPrefix::parse("tb").unwrap());
    let load: Vec<_> = (0..500)
        .map(|n| {
            let key = if n % 5 == 0 {
                unknown.as_ref().to_owned()
            } else {
                issued.key.clone()
            };
            let client = app.client.clone();
            let url = app.authorize_url();
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"tag": "@acme/sdxl", "accessKey": key}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for request in load {
        assert!(matches!(request.await.unwrap(), Ok(200 | 400)));
    }
    // A round of the flush (every 100 ms in the tests) after the load.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (text, samples) = scrape(&app).await;
    assert_eq!(
        samples["tollbooth_authorization_duration_seconds_count"],
        500.0
    );
    assert!(samples["tollbooth_usage_flush_duration_seconds_count"] >= 1.0);

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (apt-get install prometheus)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(checked.status.success(), "promtool: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool has remarks on:\n{text}");
}
