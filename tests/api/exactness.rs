use std::sync::Arc;

use tollbooth::domain::CalendarPeriod;

use crate::helpers::{Issue, TestApp, assert_denied, spawn_app};

/// Fires `n` authorizations at once and counts the allows.
async fn concurrent_allows(app: &Arc<TestApp>, key: &str, n: usize) -> usize {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let app = Arc::clone(app);
            let key = key.to_owned();
            tokio::spawn(async move {
                let tag = format!("@acme/model-{}", i % 7);
                app.authorize(&tag, &key).await.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_credits_allow_exactly_one_hundred_of_three_hundred_concurrent_calls() {
    let app = Arc::new(spawn_app().await);
    let issued = app
        .issue(Issue {
            credits: Some(100),
            ..Issue::default()
        })
        .await;

    let allowed = concurrent_allows(&app, &issued.key, 300).await;

    assert_eq!(allowed, 100);
    let app = Arc::into_inner(app).expect("no other handle");
    let app = app.restart().await;
    assert_denied(
        &app,
        "@acme/a",
        &issued.key,
        "used all 100 of your prediction credits",
    )
    .await;
    let used = stored_usage(&app, &issued.customer_id).await;
    assert_eq!(
        used, 100,
        "the database holds the exact count after a graceful restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_of_fifty_allows_exactly_fifty_under_concurrency() {
    let app = Arc::new(spawn_app().await);
    let issued = app
        .issue(Issue {
            quota: Some((50, CalendarPeriod::Day)),
            ..Issue::default()
        })
        .await;

    let allowed = concurrent_allows(&app, &issued.key, 150).await;

    assert_eq!(allowed, 50);
}

/// The customer's use as the database holds it.
async fn stored_usage(app: &TestApp, customer_id: &str) -> i64 {
    let rows = app
        .store
        .load_ledger(tollbooth::clock::unix_now())
        .await
        .unwrap();
    rows.usage
        .iter()
        .filter(|u| u.customer_id == customer_id)
        .map(|u| u.used)
        .sum()
}
