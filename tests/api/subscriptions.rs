//! The decision reads the Stripe tables: rows written there change the answer.

use tollbooth::clock::unix_now;
use tollbooth::store::{Customer, Price, Product, Purchase, Subscription, SubscriptionItem};

use crate::helpers::{Issue, TestApp, assert_allowed, assert_denied, spawn_app};
use tollbooth::store::{Mirror, Snapshot};

const DAY: i64 = 86_400;

pub async fn catalog(
    app: &TestApp,
    product_metadata: &str,
    price_type: &str,
    price_metadata: &str,
) {
    let now = unix_now();
    app.store
        .upsert_product(&Product {
            id: "prod_1".into(),
            name: "Pro".into(),
            description: None,
            active: true,
            metadata: product_metadata.into(),
            updated_at: now,
        })
        .await
        .unwrap();
    app.store
        .upsert_price(&Price {
            id: "price_1".into(),
            product_id: "prod_1".into(),
            active: true,
            currency: "usd".into(),
            unit_amount: Some(2_000),
            price_type: price_type.into(),
            recurring_interval: (price_type == "recurring").then(|| "month".into()),
            recurring_interval_count: (price_type == "recurring").then_some(1),
            usage_type: (price_type == "recurring").then(|| "licensed".into()),
            meter_id: None,
            meter_event_name: None,
            nickname: None,
            metadata: price_metadata.into(),
            updated_at: now,
        })
        .await
        .unwrap();
    app.store
        .upsert_customer(&Customer {
            id: "cus_1".into(),
            email: Some("paying@example.com".into()),
            name: None,
            created_at: now,
        })
        .await
        .unwrap();
}

pub fn subscription(status: &str, stamp: i64) -> Subscription {
    let now = unix_now();
    Subscription {
        id: "sub_1".into(),
        customer_id: "cus_1".into(),
        status: status.into(),
        cancel_at_period_end: false,
        cancel_at: None,
        canceled_at: None,
        ended_at: None,
        past_due_since: None,
        created: now - 10 * DAY,
        stripe_updated: stamp,
        items: vec![SubscriptionItem {
            id: "si_1".into(),
            price_id: "price_1".into(),
            quantity: 1,
            current_period_start: now - 10 * DAY,
            current_period_end: now + 20 * DAY,
        }],
    }
}

pub async fn customer_key(app: &TestApp) -> String {
    app.issue(Issue {
        customer: Some("cus_1".into()),
        no_grant: true,
        ..Issue::default()
    })
    .await
    .key
}

#[tokio::test]
async fn an_active_subscription_allows_and_its_cancellation_denies() {
    let app = spawn_app().await;
    catalog(&app, "{}", "recurring", "{}").await;
    let now = unix_now();
    app.store
        .put_subscription(&subscription("active", now - 100))
        .await
        .unwrap();
    let key = customer_key(&app).await;
    assert_allowed(&app, "@acme/anything", &key).await;

    let mut canceled = subscription("canceled", now - 50);
    canceled.ended_at = Some(now - 60);
    canceled.canceled_at = Some(now - 60);
    app.store.put_subscription(&canceled).await.unwrap();
    app.refresh().await;

    let date = tollbooth::domain::calendar::date(now - 60);
    assert_denied(&app, "@acme/anything", &key, &format!("canceled on {date}")).await;
}

#[tokio::test]
async fn an_older_subscription_state_never_overwrites_a_newer_one() {
    let app = spawn_app().await;
    catalog(&app, "{}", "recurring", "{}").await;
    let now = unix_now();
    let mut canceled = subscription("canceled", now - 50);
    canceled.ended_at = Some(now - 60);
    assert!(app.store.put_subscription(&canceled).await.unwrap());

    let written = app
        .store
        .put_subscription(&subscription("active", now - 100))
        .await
        .unwrap();
    let key = customer_key(&app).await;

    assert!(!written, "the stale write is refused");
    assert_denied(&app, "@acme/a", &key, "canceled on").await;
}

#[tokio::test]
async fn plan_metadata_limits_predictors_and_quota() {
    let app = spawn_app().await;
    catalog(
        &app,
        r#"{"predictors":"@acme/sdxl-*","quota":"5"}"#,
        "recurring",
        r#"{"quota":"2"}"#,
    )
    .await;
    app.store
        .put_subscription(&subscription("active", unix_now()))
        .await
        .unwrap();
    let key = customer_key(&app).await;

    assert_denied(&app, "@acme/llama", &key, "does not include @acme/llama").await;
    assert_allowed(&app, "@acme/sdxl-turbo", &key).await;
    assert_allowed(&app, "@acme/sdxl-base", &key).await;
    assert_denied(
        &app,
        "@acme/sdxl-turbo",
        &key,
        "used all 2 predictions of this period",
    )
    .await;
}

#[tokio::test]
async fn past_due_allows_within_the_grace_period_only() {
    let app = spawn_app().await;
    catalog(&app, "{}", "recurring", "{}").await;
    let now = unix_now();
    let mut past_due = subscription("past_due", now - 100);
    past_due.past_due_since = Some(now - 2 * DAY);
    app.store.put_subscription(&past_due).await.unwrap();
    let key = customer_key(&app).await;
    assert_allowed(&app, "@acme/a", &key).await;

    past_due.past_due_since = Some(now - 4 * DAY);
    past_due.stripe_updated = now - 50;
    app.store.put_subscription(&past_due).await.unwrap();
    app.refresh().await;

    assert_denied(&app, "@acme/a", &key, "past due since").await;
}

#[tokio::test]
async fn purchased_credits_multiply_by_quantity_and_a_refund_takes_them_back() {
    let app = spawn_app().await;
    catalog(&app, "{}", "one_time", r#"{"credits":"2"}"#).await;
    let mut purchase = Purchase {
        id: "cs_1".into(),
        customer_id: "cus_1".into(),
        price_id: "price_1".into(),
        quantity: 2,
        payment_intent: Some("pi_1".into()),
        paid_at: unix_now() - 100,
        refunded_at: None,
        disputed_at: None,
    };
    app.store.put_purchase(&purchase).await.unwrap();
    let key = customer_key(&app).await;

    assert_allowed(&app, "@acme/a", &key).await;
    assert_allowed(&app, "@acme/a", &key).await;
    assert_allowed(&app, "@acme/a", &key).await;
    purchase.refunded_at = Some(unix_now());
    app.store.put_purchase(&purchase).await.unwrap();
    app.refresh().await;

    assert_denied(&app, "@acme/a", &key, "was refunded").await;
}

#[tokio::test]
async fn a_catalog_refetch_moves_the_ledger_version_only_when_what_the_gate_reads_changed() {
    let app = spawn_app().await;
    catalog(&app, "{}", "recurring", "{}").await;
    let start = app.store.ledger_version().await.unwrap();

    catalog(&app, "{}", "recurring", "{}").await;
    let unchanged = app.store.ledger_version().await.unwrap();
    catalog(&app, r#"{"quota":"5"}"#, "recurring", "{}").await;
    let product_changed = app.store.ledger_version().await.unwrap();
    catalog(&app, r#"{"quota":"5"}"#, "recurring", r#"{"quota":"7"}"#).await;
    let price_changed = app.store.ledger_version().await.unwrap();

    // The customer upsert in `catalog` moves it by one each time.
    assert_eq!(unchanged, start + 1, "an unchanged product and price");
    assert_eq!(
        product_changed,
        unchanged + 2,
        "the product's metadata changed"
    );
    assert_eq!(
        price_changed,
        product_changed + 2,
        "the price's metadata changed"
    );
}

#[tokio::test]
async fn a_plan_that_names_its_unit_is_refused_in_that_unit() {
    let app = spawn_app().await;
    catalog(
        &app,
        r#"{"quota":"2","unit":"sessions"}"#,
        "recurring",
        "{}",
    )
    .await;
    let now = unix_now();
    app.store
        .put_subscription(&subscription("active", now - 100))
        .await
        .unwrap();
    let key = customer_key(&app).await;
    assert_allowed(&app, "@acme/a", &key).await;
    assert_allowed(&app, "@acme/a", &key).await;
    assert_denied(
        &app,
        "@acme/a",
        &key,
        "You have used all 2 sessions of this period",
    )
    .await;
}
