//! Several instances on one database: changes, quotas and the webhook inbox hold across them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tollbooth::clock::unix_now;

use crate::helpers::{Issue, spawn_app_with};
use crate::stripe_fake::{CUSTOMER, FakeStripe, event, spawn_app_with_stripe, subscription};
use tollbooth::store::Keys;

/// The flush interval the instances run with; the overshoot bound is written in it.
const FLUSH: Duration = Duration::from_millis(100);
/// What a usage write and read-back take on a loaded test machine, generously.
const DATABASE_LATENCY: Duration = Duration::from_millis(50);

#[tokio::test]
async fn a_key_revoked_through_one_instance_is_refused_by_the_other_within_a_second() {
    let a = spawn_app_with(&[]).await;
    let b = a.another_instance().await;
    let issued = a.issue(Issue::default()).await;
    b.refresh().await;
    assert_eq!(
        b.authorize("@acme/x", &issued.key).await.status().as_u16(),
        200
    );

    a.store
        .revoke_key(&issued.key_id, unix_now())
        .await
        .unwrap();
    a.refresh().await;
    let start = Instant::now();
    while b.authorize("@acme/x", &issued.key).await.status().as_u16() != 400 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still allowed after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "refused after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_spent_through_two_instances_overshoot_at_most_the_documented_bound() {
    let a = Arc::new(spawn_app_with(&[]).await);
    let b = Arc::new(a.another_instance().await);
    let issued = a
        .issue(Issue {
            credits: Some(1_000),
            ..Issue::default()
        })
        .await;
    b.refresh().await;

    let start = Instant::now();
    let mut calls = Vec::new();
    for worker in 0..32 {
        let app = if worker % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let key = issued.key.clone();
        calls.push(tokio::spawn(async move {
            let mut allowed = 0u64;
            let mut last_allow = Duration::ZERO;
            for _ in 0..100 {
                if app.authorize("@acme/x", &key).await.status().as_u16() == 200 {
                    allowed += 1;
                    last_allow = start.elapsed();
                }
            }
            (worker % 2, allowed, last_allow)
        }));
    }
    let mut per_instance = [0u64; 2];
    let mut allow_phase = Duration::ZERO;
    for call in calls {
        let (instance, allowed, last_allow) = call.await.unwrap();
        per_instance[instance] += allowed;
        allow_phase = allow_phase.max(last_allow);
    }
    let seconds = allow_phase.as_secs_f64();

    let allowed = per_instance[0] + per_instance[1];
    // Overshoot <= sum over instances of rate x (2 x flush interval + d): another instance's
    // use is written within one interval and read back within the next; d covers the time
    // the write and the read take (DATABASE_LATENCY).
    let window = 2.0 * FLUSH.as_secs_f64() + DATABASE_LATENCY.as_secs_f64();
    let bound: f64 = per_instance
        .iter()
        .map(|n| *n as f64 / seconds * window)
        .sum();
    assert!(allowed >= 1_000, "never fewer than the credits: {allowed}");
    assert!(
        (allowed - 1_000) as f64 <= bound.ceil(),
        "{allowed} allowed, bound 1000 + {bound:.1} ({per_instance:?} in {seconds:.2} s)"
    );
    println!(
        "two instances: {allowed} allowed of 1000 credits ({per_instance:?} in {seconds:.2} s); \
         bound 1000 + {bound:.1}"
    );
    Arc::into_inner(b).unwrap().stop().await;
    let db = Arc::into_inner(a).unwrap().stop().await;
    let reopened = crate::helpers::TestStore(tollbooth::store::connect(&db.url).await.unwrap());
    let used: i64 = reopened
        .load_ledger(unix_now())
        .await
        .unwrap()
        .usage
        .iter()
        .filter(|u| u.customer_id == issued.customer_id)
        .map(|u| u.used)
        .sum();
    assert_eq!(
        used as u64, allowed,
        "the database counts every allowed prediction exactly"
    );
}

#[tokio::test]
async fn a_webhook_delivered_to_two_instances_is_processed_once() {
    let stripe = FakeStripe::start().await;
    stripe.customer_basics(json!({})).await;
    stripe.no_sessions().await;
    let _active = stripe.subscriptions(vec![subscription("active", 1)]).await;
    let a = spawn_app_with_stripe(&stripe).await;
    let b = a.another_instance().await;
    let delivery = event(
        "evt_both",
        "customer.subscription.created",
        subscription("active", 1),
    );

    tokio::join!(a.deliver(&delivery), b.deliver(&delivery));
    let start = Instant::now();
    while a
        .store
        .stripe_event("evt_both")
        .await
        .unwrap()
        .and_then(|e| e.processed_at)
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(5), "not processed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fetches = stripe
        .requests_to(&format!("/v1/customers/{CUSTOMER}"))
        .await;
    assert_eq!(fetches, 1, "one instance processed it, once");
    assert_eq!(
        a.store
            .stripe_event("evt_both")
            .await
            .unwrap()
            .unwrap()
            .attempts,
        1
    );
    b.stop().await;
}

#[tokio::test]
async fn instances_starting_together_on_a_new_database_both_come_up() {
    let db = crate::helpers::TestDatabase::fresh().await;
    let settings = crate::helpers::test_settings(&db.url, &[]);

    let (a, b) = tokio::join!(
        tollbooth::app::Application::build(settings.clone()),
        tollbooth::app::Application::build(settings)
    );

    assert!(a.is_ok(), "{:?}", a.err());
    assert!(b.is_ok(), "{:?}", b.err());
}
