//! Webhooks against a wiremock Stripe: signatures, the inbox, and the sync they trigger.

use std::time::Duration;

use serde_json::json;
use tollbooth::clock::unix_now;
use tollbooth::store::{Audit, Customer, MeterOutbox, Mirror};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{Issue, TestApp};
use crate::stripe_fake::{
    CUSTOMER, FakeStripe, PRODUCT, WEBHOOK_SECRET, event, fixture, list, price, product, sign,
    spawn_app_with_stripe, subscription,
};

pub async fn key_for_customer(app: &TestApp) -> String {
    app.store
        .upsert_customer(&Customer {
            id: CUSTOMER.into(),
            email: Some("payer@example.com".into()),
            name: None,
            created_at: unix_now(),
        })
        .await
        .unwrap();
    app.issue(Issue {
        customer: Some(CUSTOMER.into()),
        no_grant: true,
        ..Issue::default()
    })
    .await
    .key
}

/// A fake Stripe that knows the customer and the product, the app, and a key of the customer.
async fn customer_with_a_key() -> (FakeStripe, TestApp, String) {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let app = spawn_app_with_stripe(&stripe).await;
    let key = key_for_customer(&app).await;
    (stripe, app, key)
}

#[tokio::test]
async fn a_bad_missing_stale_or_malformed_signature_is_refused_and_nothing_is_stored() {
    let stripe = FakeStripe::start().await;
    let app = spawn_app_with_stripe(&stripe).await;
    let body = event(
        "evt_refused",
        "customer.subscription.updated",
        subscription("active", 1),
    )
    .to_string();
    let now = unix_now();
    let cases = [
        ("no header", None),
        ("not a signature", Some("nonsense".to_owned())),
        ("wrong secret", Some(sign(&body, "whsec_someone_else", now))),
        (
            "outside the tolerance",
            Some(sign(&body, WEBHOOK_SECRET, now - 301)),
        ),
        (
            "signature of another body",
            Some(sign("{}", WEBHOOK_SECRET, now)),
        ),
    ];
    for (why, header) in cases {
        let response = app.post_webhook(&body, header).await;
        assert_eq!(response.status().as_u16(), 400, "{why}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("signature"),
            "{why}: {json}"
        );
    }

    assert!(
        app.store
            .stripe_event("evt_refused")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn webhook_secrets_can_be_rolled_with_two_at_once() {
    let stripe = FakeStripe::start().await;
    let app = crate::helpers::spawn_app_with(&[
        ("STRIPE_SECRET_KEY", "sk_test_tollbooth"),
        (
            "STRIPE_WEBHOOK_SECRET",
            "whsec_old_secret_value, whsec_new_secret_value",
        ),
        ("STRIPE_API_BASE", &stripe.server.uri()),
    ])
    .await;
    let now = unix_now();

    for (i, secret) in ["whsec_old_secret_value", "whsec_new_secret_value"]
        .iter()
        .enumerate()
    {
        let body = event(&format!("evt_roll_{i}"), "unknown.kind", json!({})).to_string();
        let response = app
            .post_webhook(&body, Some(sign(&body, secret, now)))
            .await;
        assert_eq!(response.status().as_u16(), 200, "{secret}");
    }
    let body = event("evt_roll_x", "unknown.kind", json!({})).to_string();
    let response = app
        .post_webhook(&body, Some(sign(&body, "whsec_retired", now)))
        .await;
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn an_unknown_event_type_is_stored_and_acknowledged() {
    let stripe = FakeStripe::start().await;
    let app = spawn_app_with_stripe(&stripe).await;

    app.deliver(&event(
        "evt_unknown",
        "radar.early_fraud_warning.created",
        json!({"id": "x"}),
    ))
    .await;

    let stored = app
        .store
        .stripe_event("evt_unknown")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.event_type, "radar.early_fraud_warning.created");
}

#[tokio::test]
async fn a_subscription_event_opens_access_within_a_second_and_deletion_closes_it() {
    let (stripe, app, key) = customer_with_a_key().await;
    let active = stripe.subscriptions(vec![subscription("active", 1)]).await;

    app.deliver(&event(
        "evt_1",
        "customer.subscription.created",
        subscription("active", 1),
    ))
    .await;
    let opened = app.wait_for_status(&key, 200, Duration::from_secs(2)).await;

    drop(active);
    let _canceled = stripe
        .subscriptions(vec![subscription("canceled", 1)])
        .await;
    app.deliver(&event(
        "evt_2",
        "customer.subscription.deleted",
        subscription("canceled", 1),
    ))
    .await;
    let closed = app.wait_for_status(&key, 400, Duration::from_secs(2)).await;

    assert!(opened < Duration::from_secs(1), "opened after {opened:?}");
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    let (_, body) = app.authorize_json("@acme/sdxl", &key).await;
    assert!(
        body["error"].as_str().unwrap().contains("canceled on"),
        "{body}"
    );
}

#[tokio::test]
async fn a_plan_change_in_the_catalog_reaches_every_subscriber_within_a_second() {
    let (stripe, app, key) = customer_with_a_key().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    app.deliver(&event(
        "evt_sub",
        "customer.subscription.created",
        subscription("active", 1),
    ))
    .await;
    app.wait_for_status(&key, 200, Duration::from_secs(2)).await;

    // The owner narrows the plan to one predictor in the Stripe dashboard.
    let narrowed = product(json!({"predictors": "@acme/whisper"}));
    Mock::given(method("GET"))
        .and(path(format!("/v1/products/{PRODUCT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(&narrowed))
        .with_priority(1)
        .mount(&stripe.server)
        .await;
    app.deliver(&event("evt_product", "product.updated", narrowed))
        .await;
    let narrowed_after = app.wait_for_status(&key, 400, Duration::from_secs(2)).await;

    assert!(
        narrowed_after < Duration::from_secs(1),
        "applied after {narrowed_after:?}"
    );
    let (status, _) = app.authorize_json("@acme/whisper", &key).await;
    assert_eq!(status, 200, "the predictor still in the plan");
}

#[tokio::test]
async fn a_webhook_event_is_audited_as_the_event_once_however_often_it_is_re_read() {
    let (stripe, app, _key) = customer_with_a_key().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;

    // The same state delivered twice (Stripe retries, or two events name the subscription):
    // one change.
    for id in ["evt_audited_1", "evt_audited_2"] {
        app.deliver(&event(
            id,
            "customer.subscription.created",
            subscription("active", 1),
        ))
        .await;
        wait_processed(&app, id).await;
    }

    let rows = app.store.audit_log(Some(CUSTOMER), 20).await.unwrap();
    let subscription_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.action.starts_with("subscription."))
        .collect();
    assert_eq!(subscription_rows.len(), 1, "{rows:#?}");
    assert_eq!(subscription_rows[0].action, "subscription.created");
    assert_eq!(subscription_rows[0].actor, "stripe:evt_audited_1");
    let detail: serde_json::Value =
        serde_json::from_str(subscription_rows[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["before"], serde_json::Value::Null);
    assert_eq!(detail["after"]["status"], "active");
}

#[tokio::test]
async fn an_old_update_arriving_after_the_deletion_never_reopens_access() {
    let (stripe, app, key) = customer_with_a_key().await;
    let _canceled = stripe
        .subscriptions(vec![subscription("canceled", 1)])
        .await;

    app.deliver(&event(
        "evt_del",
        "customer.subscription.deleted",
        subscription("canceled", 1),
    ))
    .await;
    app.wait_for_status(&key, 400, Duration::from_secs(2)).await;
    let mut stale = event(
        "evt_old",
        "customer.subscription.updated",
        subscription("active", 1),
    );
    stale["created"] = json!(unix_now() - 3_600);
    app.deliver(&stale).await;
    wait_processed(&app, "evt_old").await;

    let (status, body) = app.authorize_json("@acme/sdxl", &key).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_duplicate_delivery_is_processed_once() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let app = spawn_app_with_stripe(&stripe).await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    let delivery = event(
        "evt_dup",
        "customer.subscription.created",
        subscription("active", 1),
    );

    app.deliver(&delivery).await;
    wait_processed(&app, "evt_dup").await;
    app.deliver(&delivery).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let customer_fetches = stripe
        .requests_to(&format!("/v1/customers/{CUSTOMER}"))
        .await;
    assert_eq!(customer_fetches, 1);
    assert_eq!(
        app.store
            .stripe_event("evt_dup")
            .await
            .unwrap()
            .unwrap()
            .attempts,
        1
    );
}

#[tokio::test]
async fn events_of_the_same_second_all_end_at_stripes_current_state() {
    let (stripe, app, key) = customer_with_a_key().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    let second = unix_now();

    for (id, kind, status) in [
        ("evt_s1", "customer.subscription.created", "incomplete"),
        ("evt_s2", "customer.subscription.updated", "active"),
        ("evt_s3", "invoice.paid", "active"),
    ] {
        let mut e = event(id, kind, subscription(status, 1));
        e["created"] = json!(second);
        app.deliver(&e).await;
    }
    for id in ["evt_s1", "evt_s2", "evt_s3"] {
        wait_processed(&app, id).await;
    }

    app.wait_for_status(&key, 200, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn past_due_is_allowed_within_the_grace_period_and_refused_beyond_it() {
    let (stripe, app, key) = customer_with_a_key().await;

    let recent = stripe
        .subscriptions(vec![subscription("past_due", 1)])
        .await;
    app.deliver(&event(
        "evt_pd1",
        "invoice.payment_failed",
        subscription("past_due", 1),
    ))
    .await;
    app.wait_for_status(&key, 200, Duration::from_secs(2)).await;
    drop(recent);

    let _old = stripe
        .subscriptions(vec![subscription("past_due", 5)])
        .await;
    app.deliver(&event(
        "evt_pd2",
        "invoice.payment_failed",
        subscription("past_due", 5),
    ))
    .await;
    app.wait_for_status(&key, 400, Duration::from_secs(2)).await;

    let (_, body) = app.authorize_json("@acme/sdxl", &key).await;
    assert!(
        body["error"].as_str().unwrap().contains("past due since"),
        "{body}"
    );
}

#[tokio::test]
async fn a_refund_takes_back_the_unspent_credits_of_a_purchase() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    let _none = stripe.subscriptions(vec![]).await;
    let app = spawn_app_with_stripe(&stripe).await;
    let key = key_for_customer(&app).await;
    let mut session = fixture("checkout.session");
    session["id"] = json!("cs_Test0001");
    session["customer"] = json!(CUSTOMER);
    session["mode"] = json!("payment");
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!("pi_Test0001");
    session["created"] = json!(unix_now() - 60);
    let mut line = fixture("line_item");
    line["price"] = price(true, json!({"credits": "10"}));
    line["quantity"] = json!(1);
    session["line_items"] = list(vec![line]);
    stripe
        .get("/v1/checkout/sessions", list(vec![session.clone()]))
        .await;
    let mut charge = fixture("charge");
    charge["id"] = json!("ch_Test0001");
    charge["customer"] = json!(CUSTOMER);
    charge["amount_refunded"] = json!(0);
    charge["disputed"] = json!(false);
    let paid = Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![charge.clone()])))
        .mount_as_scoped(&stripe.server)
        .await;

    app.deliver(&event(
        "evt_paid",
        "checkout.session.completed",
        session.clone(),
    ))
    .await;
    app.wait_for_status(&key, 200, Duration::from_secs(2)).await;
    drop(paid);
    charge["amount_refunded"] = charge["amount"].clone();
    charge["refunded"] = json!(true);
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![charge.clone()])))
        .mount(&stripe.server)
        .await;
    app.deliver(&event("evt_refund", "charge.refunded", charge))
        .await;

    app.wait_for_status(&key, 400, Duration::from_secs(2)).await;
    let (_, body) = app.authorize_json("@acme/sdxl", &key).await;
    assert!(
        body["error"].as_str().unwrap().contains("was refunded"),
        "{body}"
    );
}

#[tokio::test]
async fn stripe_answering_500_then_200_is_retried_until_the_view_converges() {
    assert_converges_after_a_failure(500).await;
}

#[tokio::test]
async fn stripe_answering_429_is_retried_until_the_view_converges() {
    assert_converges_after_a_failure(429).await;
}

async fn assert_converges_after_a_failure(status: u16) {
    let stripe = FakeStripe::start().await;
    stripe.customer_fails_once(status).await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    let app = spawn_app_with_stripe(&stripe).await;
    let key = key_for_customer(&app).await;

    app.deliver(&event(
        "evt_retry",
        "customer.subscription.created",
        subscription("active", 1),
    ))
    .await;

    app.wait_for_status(&key, 200, Duration::from_secs(10))
        .await;
    let fetches = stripe
        .requests_to(&format!("/v1/customers/{CUSTOMER}"))
        .await;
    assert_eq!(fetches, 2, "one failed attempt, then one that succeeded");
}

async fn wait_processed(app: &TestApp, id: &str) {
    let start = std::time::Instant::now();
    loop {
        let event = app.store.stripe_event(id).await.unwrap();
        if event.as_ref().is_some_and(|e| e.processed_at.is_some()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{id} not processed: {event:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[tokio::test]
async fn metered_use_is_reported_to_the_billing_meter_exactly_once_despite_a_retry() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let mut metered = subscription("active", 1);
    let item = &mut metered["items"]["data"][0];
    item["price"]["recurring"]["usage_type"] = json!("metered");
    item["price"]["recurring"]["meter"] = json!("mtr_Test0001");
    item["price"]["metadata"] = json!({"quota": "1"});
    let _subs = stripe.subscriptions(vec![metered.clone()]).await;
    let mut meter = fixture("billing.meter");
    meter["id"] = json!("mtr_Test0001");
    meter["event_name"] = json!("predictions");
    // A meter reading Stripe's default payload keys (the example meter names others; that
    // case is tests/api/conformance.rs's).
    meter["customer_mapping"]["event_payload_key"] = json!("stripe_customer_id");
    stripe.get("/v1/billing/meters/mtr_Test0001", meter).await;
    let error = json!({"error": {"type": "api_error", "message": "try again"}});
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("billing.meter_event")))
        .mount(&stripe.server)
        .await;
    let app = spawn_app_with_stripe(&stripe).await;
    let key = key_for_customer(&app).await;

    app.deliver(&event(
        "evt_metered",
        "customer.subscription.created",
        metered,
    ))
    .await;
    app.wait_for_status(&key, 200, Duration::from_secs(2)).await;
    for _ in 0..3 {
        let (status, body) = app.authorize_json("@acme/sdxl", &key).await;
        assert_eq!(
            status, 200,
            "a metered price is billed per use, not capped: {body}"
        );
    }

    let start = std::time::Instant::now();
    let reported = loop {
        let requests = stripe.server.received_requests().await.unwrap();
        let posts: Vec<_> = requests
            .iter()
            .filter(|r| r.url.path() == "/v1/billing/meter_events")
            .map(|r| form_fields(&r.body))
            .collect();
        let mut by_identifier = std::collections::HashMap::new();
        for fields in &posts {
            assert_eq!(fields["event_name"], "predictions");
            assert_eq!(fields["payload[stripe_customer_id]"], CUSTOMER);
            by_identifier.insert(
                fields["identifier"].clone(),
                fields["payload[value]"].clone(),
            );
        }
        let total: i64 = by_identifier
            .values()
            .map(|v| v.parse::<i64>().unwrap())
            .sum();
        let drained = app.store.unsent_meter_reports(10).await.unwrap().is_empty();
        if (total >= 4 && drained) || start.elapsed() > Duration::from_secs(15) {
            break (total, posts.len(), by_identifier.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let (total, posts, identifiers) = reported;
    assert_eq!(total, 4, "every allowed prediction is reported once");
    assert!(
        posts > identifiers,
        "the failed attempt was retried with the same identifier"
    );
}

/// Stripe stops answering while events queue up: each attempt is cut short and several run at
/// once, so every waiting event gets its attempt (and its backoff) within about one attempt's
/// time, instead of one slow failure after another.
#[tokio::test]
async fn while_stripe_does_not_answer_every_queued_event_gets_an_attempt() {
    let stripe = FakeStripe::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/customers/{CUSTOMER}")))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&stripe.server)
        .await;
    let app = spawn_app_with_stripe(&stripe).await;
    let ids: Vec<String> = (0..8).map(|n| format!("evt_outage_{n}")).collect();
    for id in &ids {
        app.deliver(&event(id, "customer.updated", json!({"id": CUSTOMER})))
            .await;
    }

    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut attempted = Vec::new();
    for id in &ids {
        let stored = app.store.stripe_event(id).await.unwrap().expect("stored");
        attempted.push((stored.attempts, stored.last_error.unwrap_or_default()));
    }

    for (attempts, error) in &attempted {
        assert_eq!(*attempts, 1, "{attempted:?}");
        assert!(
            error.contains("no answer from Stripe within 10 s"),
            "{error}"
        );
    }
}

/// How many times the service listed Stripe's products (the first step of a reconcile) within
/// `within` of its start, on a database where the last reconcile ended `last_ago` seconds ago
/// (`None`: never).
async fn reconciles_at_start(last_ago: Option<i64>, within: Duration) -> usize {
    let stripe = FakeStripe::start().await;
    let db = crate::helpers::TestDatabase::fresh().await;
    if let Some(ago) = last_ago {
        let store = tollbooth::store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        store
            .put_setting("last_reconcile", &(unix_now() - ago).to_string())
            .await
            .unwrap();
        store.close().await;
    }
    let base = stripe.server.uri();
    let _app = crate::helpers::start_on_with(
        db,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_tollbooth"),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("STRIPE_API_BASE", &base),
            ("RECONCILE_EVERY", "1h"),
        ],
    )
    .await;
    tokio::time::sleep(within).await;
    stripe.requests_to("/v1/products").await
}

#[tokio::test]
async fn a_start_reconciles_at_once_when_the_last_reconcile_is_a_period_old_or_never_ran() {
    assert!(reconciles_at_start(None, Duration::from_secs(2)).await >= 1);
    assert!(reconciles_at_start(Some(3_601), Duration::from_secs(2)).await >= 1);
}

#[tokio::test]
async fn a_start_waits_out_the_period_after_a_recent_reconcile() {
    assert_eq!(
        reconciles_at_start(Some(60), Duration::from_secs(2)).await,
        0
    );
}
