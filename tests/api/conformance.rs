//! What Stripe's published API says, against the fake Stripe: a refund's time comes from the
//! refund (expanded on the charge list), a legacy plan's meter is read from the plan itself, a
//! plan without a product is skipped without a retry storm, every dispute event reaches its
//! customer through the charge, and a meter report Stripe refuses for good is set aside while
//! later ones go out with the meter's own payload keys. On SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.

use std::time::{Duration, Instant};

use serde_json::json;
use tollbooth::clock::unix_now;
use tollbooth::domain::calendar;
use tollbooth::store::sql::sql;
use tollbooth::store::{InboxEvent, MeterOutbox};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::TestApp;
use crate::stripe_fake::{
    CUSTOMER, FakeStripe, PRODUCT, event, fixture, list, price, spawn_app_with_stripe, subscription,
};
use crate::webhooks::key_for_customer;

/// The event once the worker is done with it (processed, or failed at least once).
async fn settled(app: &TestApp, id: &str) -> InboxEvent {
    let started = Instant::now();
    loop {
        if let Some(e) = app.store.stripe_event(id).await.unwrap()
            && (e.processed_at.is_some() || e.attempts > 0)
        {
            return e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{id} was not handled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_refund_is_dated_by_the_refund_expanded_on_the_charge_list() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    let _none = stripe.subscriptions(vec![]).await;
    let app = spawn_app_with_stripe(&stripe).await;
    let key = key_for_customer(&app).await;
    let mut session = fixture("checkout.session");
    session["id"] = json!("cs_Test0002");
    session["customer"] = json!(CUSTOMER);
    session["mode"] = json!("payment");
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!("pi_Test0002");
    session["created"] = json!(unix_now() - 10 * 86_400);
    let mut line = fixture("line_item");
    line["price"] = price(true, json!({"credits": "10"}));
    line["quantity"] = json!(1);
    session["line_items"] = list(vec![line]);
    stripe
        .get("/v1/checkout/sessions", list(vec![session]))
        .await;

    // Refunded three days ago. A list entry carries its refunds only when expanded, as
    // Stripe's API does since 2022-11-15.
    let refunded = unix_now() - 3 * 86_400;
    let mut charge = fixture("charge");
    charge["id"] = json!("ch_Test0002");
    charge["customer"] = json!(CUSTOMER);
    charge["amount_refunded"] = charge["amount"].clone();
    charge["refunded"] = json!(true);
    charge["disputed"] = json!(false);
    let mut refund = fixture("refund");
    refund["created"] = json!(refunded);
    let mut expanded = charge.clone();
    expanded["refunds"] = list(vec![refund]);
    charge.as_object_mut().unwrap().remove("refunds");
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .and(|request: &wiremock::Request| {
            request
                .url
                .query_pairs()
                .any(|(k, v)| k.starts_with("expand") && v == "data.refunds")
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![expanded])))
        .with_priority(1)
        .mount(&stripe.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![charge.clone()])))
        .with_priority(2)
        .mount(&stripe.server)
        .await;

    app.deliver(&event("evt_refunded", "charge.refunded", charge))
        .await;
    let expected = format!("was refunded on {}", calendar::date(refunded));
    let started = Instant::now();
    let body = loop {
        let (_, body) = app.authorize_json("@acme/sdxl", &key).await;
        if body["error"]
            .as_str()
            .is_some_and(|e| e.contains("refunded"))
            || started.elapsed() > Duration::from_secs(5)
        {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        body["error"].as_str().unwrap().contains(&expected),
        "{body} should say {expected:?}"
    );
    assert_requests_follow_the_spec(&stripe.server).await;
}

#[tokio::test]
async fn a_legacy_plan_keeps_the_meter_it_carries_at_its_top_level() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    let app = spawn_app_with_stripe(&stripe).await;
    // Stripe's example plan, metered by a Billing Meter named at its top level.
    let mut plan = fixture("plan");
    plan["id"] = json!("plan_Metered01");
    plan["product"] = json!(PRODUCT);
    plan["usage_type"] = json!("metered");
    plan["meter"] = json!("mtr_Test0001");
    stripe.get("/v1/plans/plan_Metered01", plan.clone()).await;
    let mut meter = fixture("billing.meter");
    meter["id"] = json!("mtr_Test0001");
    meter["event_name"] = json!("predictions");
    stripe.get("/v1/billing/meters/mtr_Test0001", meter).await;

    app.deliver(&event("evt_plan", "plan.updated", plan)).await;
    let handled = settled(&app, "evt_plan").await;
    assert!(handled.processed_at.is_some(), "{:?}", handled.last_error);
    let (meter, name): (Option<String>, Option<String>) = app
        .store
        .fetch_one(
            sql("SELECT meter_id, meter_event_name FROM prices WHERE id = $1")
                .bind("plan_Metered01"),
        )
        .await
        .unwrap();
    assert_eq!(meter.as_deref(), Some("mtr_Test0001"));
    assert_eq!(name.as_deref(), Some("predictions"));
    assert_requests_follow_the_spec(&stripe.server).await;
}

#[tokio::test]
async fn a_plan_without_a_product_is_skipped_once_and_not_retried() {
    let stripe = FakeStripe::start().await;
    let app = spawn_app_with_stripe(&stripe).await;
    let mut plan = fixture("plan");
    plan["id"] = json!("plan_Orphan01");
    plan["product"] = json!(null);
    stripe.get("/v1/plans/plan_Orphan01", plan.clone()).await;

    app.deliver(&event("evt_orphan", "plan.created", plan))
        .await;
    let handled = settled(&app, "evt_orphan").await;
    assert!(handled.processed_at.is_some(), "{:?}", handled.last_error);
    assert_eq!(handled.last_error, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stripe.requests_to("/v1/plans/plan_Orphan01").await, 1);
}

#[tokio::test]
async fn every_dispute_event_reaches_the_customer_through_its_charge() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let _none = stripe.subscriptions(vec![]).await;
    let app = spawn_app_with_stripe(&stripe).await;
    let mut charge = fixture("charge");
    charge["id"] = json!("ch_Disputed1");
    charge["customer"] = json!(CUSTOMER);
    stripe.get("/v1/charges/ch_Disputed1", charge).await;
    let mut dispute = fixture("dispute");
    dispute["id"] = json!("dp_Test0001");
    dispute["charge"] = json!("ch_Disputed1");

    app.deliver(&event(
        "evt_withdrawn",
        "charge.dispute.funds_withdrawn",
        dispute,
    ))
    .await;
    let handled = settled(&app, "evt_withdrawn").await;
    assert!(handled.processed_at.is_some(), "{:?}", handled.last_error);
    assert_eq!(stripe.requests_to("/v1/charges/ch_Disputed1").await, 1);
    assert!(
        stripe
            .requests_to(&format!("/v1/customers/{CUSTOMER}"))
            .await
            >= 1
    );
}

#[tokio::test]
async fn a_meter_report_refused_for_good_is_set_aside_and_later_ones_use_the_meters_keys() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let mut metered = subscription("active", 1);
    let item = &mut metered["items"]["data"][0];
    item["price"]["recurring"]["usage_type"] = json!("metered");
    item["price"]["recurring"]["meter"] = json!("mtr_Test0001");
    let _subs = stripe.subscriptions(vec![metered.clone()]).await;
    // Stripe's example meter: it reads the customer from `customer`, the value from `value`.
    let mut meter = fixture("billing.meter");
    meter["id"] = json!("mtr_Test0001");
    meter["event_name"] = json!("predictions");
    stripe.get("/v1/billing/meters/mtr_Test0001", meter).await;
    let refused = json!({"error": {"type": "invalid_request_error",
        "message": "The timestamp is too far in the past."}});
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refused))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("billing.meter_event")))
        .with_priority(2)
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
    app.wait_for_status(&key, 200, Duration::from_secs(5)).await;

    // The first report is refused for good; the one after it still goes out.
    let posts = |requests: Vec<wiremock::Request>| -> Vec<_> {
        requests
            .iter()
            .filter(|r| r.url.path() == "/v1/billing/meter_events")
            .map(|r| crate::webhooks::form_fields(&r.body))
            .collect()
    };
    let started = Instant::now();
    while app
        .store
        .meter_reports_set_aside(10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing set aside"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app.authorize_json("@acme/sdxl", &key).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let sent = loop {
        let sent = posts(stripe.server.received_requests().await.unwrap());
        let drained = app.store.unsent_meter_reports(10).await.unwrap().is_empty();
        if (sent.len() >= 2 && drained) || started.elapsed() > Duration::from_secs(10) {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sent.len(), 2, "{sent:?}");
    for fields in &sent {
        assert_eq!(fields["payload[customer]"], CUSTOMER, "{fields:?}");
        assert_eq!(fields["payload[value]"], "1");
        assert!(!fields.contains_key("payload[stripe_customer_id]"));
    }
    assert_ne!(sent[0]["identifier"], sent[1]["identifier"]);
    let aside = app.store.meter_reports_set_aside(10).await.unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].id, sent[0]["identifier"]);
    assert!(
        aside[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("too far in the past")
    );

    // The owner sees it with the failing events.
    let listed = crate::freshness::cli(&app.db.url, &["events"]).await;
    assert!(
        listed.contains("refused for good") && listed.contains(&aside[0].id),
        "{listed}"
    );
}

/// The parameters Stripe's spec allows per endpoint (tests/fixtures/stripe-request-params.json,
/// with its source and version).
fn spec_params() -> Vec<(String, String, Vec<String>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stripe-request-params.json"
    );
    let extract: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    extract["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(endpoint, params)| {
            let (method, route) = endpoint.split_once(' ').unwrap();
            let params = params
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            (method.to_owned(), route.to_owned(), params)
        })
        .collect()
}

/// Whether `path` is `route`, where `{}` stands for one id.
fn matches_route(route: &str, path: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(r, p)| *r == "{}" || r == p)
}

/// Every request the fake Stripe received goes to an endpoint of the extract, with only the
/// parameters the spec allows there (by top-level name: `payload[value]` is `payload`).
pub fn assert_follows_the_spec(method: &str, path: &str, names: &[String]) {
    let spec = spec_params();
    let route = path.strip_prefix("/v1").unwrap_or(path);
    let Some((_, _, allowed)) = spec
        .iter()
        .find(|(m, r, _)| m == method && matches_route(r, route))
    else {
        panic!("{method} {route} is not an endpoint of the spec's extract");
    };
    for name in names {
        let top = name.split('[').next().unwrap();
        assert!(
            allowed.iter().any(|a| a == top),
            "{method} {route} sent {name:?}, which Stripe's spec does not allow there"
        );
    }
}

async fn assert_requests_follow_the_spec(server: &wiremock::MockServer) -> usize {
    let requests = server.received_requests().await.unwrap();
    for request in &requests {
        let names: Vec<String> = match request.method.as_str() {
            "GET" => request
                .url
                .query_pairs()
                .map(|(k, _)| k.into_owned())
                .collect(),
            _ => crate::webhooks::form_fields(&request.body)
                .into_keys()
                .collect(),
        };
        assert_follows_the_spec(request.method.as_str(), request.url.path(), &names);
    }
    requests.len()
}

#[tokio::test]
async fn every_request_to_stripe_is_one_the_spec_allows() {
    // The flows above, then a whole reconcile, with every request checked.
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let _subs = stripe.subscriptions(vec![subscription("active", 3)]).await;
    stripe
        .get(
            "/v1/products",
            list(vec![crate::stripe_fake::product(json!({}))]),
        )
        .await;
    stripe
        .get("/v1/prices", list(vec![price(false, json!({}))]))
        .await;
    let mut customer = fixture("customer");
    customer["id"] = json!(CUSTOMER);
    stripe.get("/v1/customers", list(vec![customer])).await;
    let app = spawn_app_with_stripe(&stripe).await;
    let uri = stripe.server.uri();
    let out = crate::freshness::cli_with(
        &app.db.url,
        &["sync"],
        &[
            ("STRIPE_SECRET_KEY", "sk_test_tollbooth"),
            ("STRIPE_API_BASE", uri.as_str()),
        ],
    )
    .await;
    assert!(out.contains("customers"), "{out}");
    let checked = assert_requests_follow_the_spec(&stripe.server).await;
    assert!(
        checked >= 5,
        "a reconcile asks for products, prices, customers and theirs"
    );
    // A request the spec does not allow is caught.
    let caught = std::panic::catch_unwind(|| {
        assert_follows_the_spec("GET", "/v1/charges", &["customer_email".to_owned()])
    });
    assert!(caught.is_err());
}

#[tokio::test]
async fn a_checkout_session_is_created_with_only_the_parameters_the_spec_allows() {
    let shop = crate::pages::shop("Pro").await;
    shop.buy().await;
    let form = shop.fake.last_created();
    assert!(form.contains_key("mode") && form.contains_key("line_items[0][price]"));
    let names: Vec<String> = form.into_keys().collect();
    assert_follows_the_spec("POST", "/v1/checkout/sessions", &names);
}
