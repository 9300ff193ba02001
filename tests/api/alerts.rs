//! Alerts to the owner's webhook: fired once per threshold as use is written, signed the
//! Standard Webhooks way (checked here as a receiver would), not sent again after a restart,
//! retried when the receiver answers 500, and resolved when they no longer hold. On SQLite,
//! and on PostgreSQL when TEST_DATABASE_URL is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;
use tollbooth::clock::unix_now;
use tollbooth::domain::{CalendarPeriod, Grace, KeyPrefix, Thresholds};
use tollbooth::ledger::{KeyRef, Ledger};
use tollbooth::notify::webhook::OwnerWebhook;
use tollbooth::store::sql::sql;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Issue, TestApp, assert_allowed, spawn_app_with, start_on_with};
use crate::subscriptions::{catalog, customer_key, subscription};
use tollbooth::store::Mirror;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TAG: &str = "@acme/sdxl";

/// A message the receiver got, its signature checked as a Standard Webhooks library would.
fn verified(request: &wiremock::Request) -> Value {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let body = std::str::from_utf8(&request.body).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        header("webhook-signature")
            .split(' ')
            .any(|s| s == expected),
        "the signature does not verify"
    );
    let age = unix_now() - timestamp.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "a fresh timestamp");
    assert!(id.starts_with("msg_"));
    serde_json::from_str(body).unwrap()
}

/// The messages received so far, in order.
async fn received(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().map(verified).collect()
}

/// Waits until `n` messages were received.
async fn wait_for(server: &MockServer, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = received(server).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {} of {n} messages arrived: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let percent = &m["data"]["threshold_percent"];
            match percent.as_u64() {
                Some(p) => format!("{} {p}", m["type"].as_str().unwrap()),
                None => m["type"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

fn settings(server: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        (
            "OWNER_WEBHOOK_URL",
            format!("{}/hooks/tollbooth", server.uri()),
        ),
        ("OWNER_WEBHOOK_SECRET", SECRET.to_owned()),
    ]
}

/// The owner's webhook receiver, answering every message 200.
async fn accepting_receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The service sending its alerts to `server`.
async fn app_posting_to(server: &MockServer) -> TestApp {
    app_posting_to_with(server, &[]).await
}

/// The service sending its alerts to `server`, with more settings.
async fn app_posting_to_with(server: &MockServer, more: &[(&str, &str)]) -> TestApp {
    let extra = settings(server);
    let mut extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.extend_from_slice(more);
    spawn_app_with(&extra).await
}

/// A customer with a key, allowed on an active monthly subscription; returns the time it
/// started from.
async fn subscribed_customer(app: &TestApp) -> i64 {
    catalog(app, "{}", "recurring", "{}").await;
    let now = unix_now();
    app.store
        .put_subscription(&subscription("active", now - 300))
        .await
        .unwrap();
    let key = customer_key(app).await;
    assert_allowed(app, TAG, &key).await;
    now
}

/// A ledger on the app's database and gate, posting to the same receiver: to run a round of
/// the alerts with the clock advanced.
fn ledger_of(app: &TestApp, server: &MockServer) -> Ledger {
    let webhook = OwnerWebhook::new(
        &format!("{}/hooks/tollbooth", server.uri()),
        &secrecy::SecretString::from(SECRET.to_owned()),
    )
    .unwrap();
    Ledger::new(
        Arc::clone(&app.store),
        Some(Arc::clone(&app.gate)),
        KeyPrefix::parse("tb").unwrap(),
        None,
        "http://localhost".into(),
    )
    .with_owner_webhook(webhook)
}

#[tokio::test]
async fn a_threshold_fires_once_signed_survives_a_restart_and_is_resolved_in_a_new_period() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let app = app_posting_to(&server).await;
    let issued = app
        .issue(Issue {
            quota: Some((4, CalendarPeriod::Day)),
            ..Issue::default()
        })
        .await;
    let ledger = ledger_of(&app, &server);
    ledger
        .set_alert_thresholds(&issued.customer_id, Thresholds::parse("50,100").unwrap())
        .await
        .unwrap();

    assert_allowed(&app, TAG, &issued.key).await;
    assert_allowed(&app, TAG, &issued.key).await;
    let first = wait_for(&server, 1).await;
    assert_eq!(types(&first), ["quota.threshold_reached 50"]);
    let data = &first[0]["data"];
    assert_eq!(data["customer_id"], issued.customer_id.as_str());
    assert_eq!(
        (data["used"].as_u64(), data["limit"].as_u64()),
        (Some(2), Some(4))
    );
    assert!(first[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    for _ in 0..2 {
        assert_allowed(&app, TAG, &issued.key).await;
    }
    let (status, _) = app.authorize_json(TAG, &issued.key).await;
    assert_eq!(status, 400, "the quota is used up");
    let both = wait_for(&server, 2).await;
    assert_eq!(
        types(&both),
        ["quota.threshold_reached 50", "quota.threshold_reached 100"]
    );

    // Sent once: neither more use past the thresholds nor a restart sends them again.
    let app = app.restart().await;
    let _ = app.authorize_json(TAG, &issued.key).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(received(&server).await.len(), 2);

    // Two days on, the quota's period is another: both alerts are resolved, once.
    let ledger = ledger_of(&app, &server);
    let later = unix_now() + 2 * 86_400;
    assert_eq!(ledger.resolve_alerts(later).await.unwrap(), 2);
    assert_eq!(ledger.resolve_alerts(later).await.unwrap(), 0);
    assert_eq!(ledger.deliver_alerts(later).await.unwrap(), 2);
    let all = wait_for(&server, 4).await;
    let mut resolved = types(&all[2..]);
    resolved.sort();
    assert_eq!(
        resolved,
        [
            "quota.threshold_resolved 100",
            "quota.threshold_resolved 50"
        ]
    );
    let ids: std::collections::HashSet<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4, "each message has its own webhook-id");
}

#[tokio::test]
async fn a_delivery_the_receiver_refuses_is_retried_with_the_same_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let extra = settings(&server);
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&extra).await;
    let issued = app.issue(Issue::default()).await;
    let ledger = ledger_of(&app, &server);

    // A key rolled is an event: the owner hears of it.
    ledger
        .roll_key(KeyRef::Any(&issued.key_id), Grace::Hour, None)
        .await
        .unwrap();
    let first = wait_for(&server, 1).await;
    assert_eq!(types(&first), ["key.rolled"]);
    assert_eq!(first[0]["data"]["key_id"], issued.key_id.as_str());
    // The receiver answered 500 (recorded as the attempt's outcome): nothing is due again
    // until the backoff has passed...
    let started = Instant::now();
    loop {
        let rows: Vec<(i64,)> = app
            .store
            .fetch_all(sql("SELECT attempts FROM alert_deliveries"))
            .await
            .unwrap();
        if rows.first().is_some_and(|(n,)| *n >= 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ledger.deliver_alerts(unix_now()).await.unwrap(), 0);
    // ... and then the same message goes again, with the same webhook-id.
    assert_eq!(ledger.deliver_alerts(unix_now() + 11).await.unwrap(), 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["webhook-id"],
        requests[1].headers["webhook-id"]
    );
    assert_eq!(verified(&requests[1])["type"], "key.rolled");
    // Delivered: nothing more is sent, by this process or a restarted one.
    assert_eq!(ledger.deliver_alerts(unix_now() + 3_600).await.unwrap(), 0);
    let db = app.stop().await;
    let app = start_on_with(db, &extra).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    drop(app);
}

#[tokio::test]
async fn a_failed_payment_says_when_access_ends_is_resolved_when_paid_and_an_end_is_told() {
    let server = accepting_receiver().await;
    let app = app_posting_to(&server).await;
    let now = subscribed_customer(&app).await;

    // Stripe says the renewal payment failed a day ago: the owner hears when access ends.
    let mut past_due = subscription("past_due", now - 200);
    past_due.past_due_since = Some(now - 86_400);
    app.store.put_subscription(&past_due).await.unwrap();
    app.refresh().await;
    let got = wait_for(&server, 1).await;
    assert_eq!(types(&got), ["payment.failed"]);
    let ends = tollbooth::domain::calendar::rfc3339(now - 86_400 + 3 * 86_400);
    assert_eq!(got[0]["data"]["access_ends_at"], ends.as_str());
    assert_eq!(got[0]["data"]["subscription_item"], "si_1");

    // Paid: resolved, once.
    app.store
        .put_subscription(&subscription("active", now - 100))
        .await
        .unwrap();
    app.refresh().await;
    let ledger = ledger_of(&app, &server);
    assert_eq!(ledger.resolve_alerts(unix_now()).await.unwrap(), 1);
    assert_eq!(ledger.resolve_alerts(unix_now()).await.unwrap(), 0);
    ledger.deliver_alerts(unix_now()).await.unwrap();
    assert_eq!(types(&wait_for(&server, 2).await)[1], "payment.resolved");

    // Canceled and ended: told once.
    let mut ended = subscription("canceled", now - 50);
    ended.ended_at = Some(now - 60);
    ended.canceled_at = Some(now - 60);
    app.store.put_subscription(&ended).await.unwrap();
    app.refresh().await;
    let got = wait_for(&server, 3).await;
    assert_eq!(types(&got)[2], "subscription.ended");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(received(&server).await.len(), 3);
}

/// The alerts read which customers changed from the ledger and their state from the view: a
/// change read before the view shows it is looked at again once it does, so a failed payment
/// is told even when an alerts round falls between the ledger's write and the view's refresh.
#[tokio::test]
async fn a_failed_payment_read_before_the_view_shows_it_is_told_once_it_does() {
    let server = accepting_receiver().await;
    // On SQLite the view is refreshed by this test alone (PostgreSQL's change signal refreshes
    // it at once, and the race is not forced there).
    let app = app_posting_to_with(&server, &[("LEDGER_POLL_INTERVAL", "3600s")]).await;
    let now = subscribed_customer(&app).await;

    let mut past_due = subscription("past_due", now - 200);
    past_due.past_due_since = Some(now - 86_400);
    app.store.put_subscription(&past_due).await.unwrap();
    // Two of the alerts' rounds (one a second) read the change while the view says active.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    app.refresh().await;
    assert_eq!(types(&wait_for(&server, 1).await), ["payment.failed"]);
}

#[tokio::test]
async fn credits_running_low_are_told_once_under_the_plans_mark() {
    let server = accepting_receiver().await;
    let app = app_posting_to(&server).await;
    catalog(
        &app,
        "{}",
        "one_time",
        r#"{"credits":"5","alert_credits_below":"3"}"#,
    )
    .await;
    app.store
        .put_purchase(&tollbooth::store::Purchase {
            id: "cs_1".into(),
            customer_id: "cus_1".into(),
            price_id: "price_1".into(),
            quantity: 1,
            payment_intent: Some("pi_1".into()),
            paid_at: unix_now() - 100,
            refunded_at: None,
            disputed_at: None,
        })
        .await
        .unwrap();
    let key = customer_key(&app).await;
    // 5 credits: after the third, 2 are left, under 3.
    for _ in 0..2 {
        assert_allowed(&app, TAG, &key).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(received(&server).await.is_empty(), "3 left is not under 3");
    assert_allowed(&app, TAG, &key).await;
    let got = wait_for(&server, 1).await;
    assert_eq!(got[0]["type"], "credits.low");
    assert_eq!(got[0]["data"]["credits_left"], 2);
    assert_allowed(&app, TAG, &key).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        types(&received(&server).await),
        ["credits.low"],
        "told once"
    );
}
