//! An instance alone on the database appends its counts to the usage log and adds them to the
//! counters later; every logged row is added exactly once, whoever folds it.

use std::time::Duration;

use tollbooth::clock::unix_now;
use tollbooth::store::sql::sql;
use tollbooth::store::{CounterDelta, Usage, UsageBatch};

use crate::helpers::{Issue, TestDatabase, TestStore, spawn_app};

/// Rows in the usage log.
async fn logged_rows(store: &TestStore) -> i64 {
    let (n,): (i64,) = store
        .fetch_one(sql("SELECT COUNT(*) FROM usage_log"))
        .await
        .unwrap();
    n
}

/// An instance's fold: its logged rows summed into slices of `slice` counters, each added on
/// its own; the number of slices it added (a slice another process took first is not).
async fn fold(
    store: &TestStore,
    instance: &str,
    logged: usize,
    counts: &[CounterDelta],
    slice: usize,
) -> usize {
    let now = unix_now();
    let slices = store
        .compact_log(instance, logged, counts, slice, now)
        .await
        .unwrap();
    let mut added = 0;
    for seq in slices {
        added += usize::from(store.fold_logged_row(seq, now).await.unwrap());
    }
    added
}

/// The customer's use as the counters hold it.
async fn stored_usage(store: &TestStore, customer_id: &str) -> i64 {
    store
        .load_ledger(unix_now())
        .await
        .unwrap()
        .usage
        .iter()
        .filter(|u| u.customer_id == customer_id)
        .map(|u| u.used)
        .sum()
}

#[tokio::test]
async fn alone_an_instance_logs_its_counts_and_a_stop_adds_them_to_the_counters() {
    let app = spawn_app().await;
    let issued = app
        .issue(Issue {
            credits: Some(100),
            ..Issue::default()
        })
        .await;
    for _ in 0..5 {
        assert_eq!(
            app.authorize("@acme/x", &issued.key)
                .await
                .status()
                .as_u16(),
            200
        );
    }
    // Several flush intervals (100 ms): logged, not yet added to the counters.
    let start = std::time::Instant::now();
    while logged_rows(&app.store).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "nothing logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_usage(&app.store, &issued.customer_id).await, 0);

    let db = app.stop().await;

    let store = TestStore(tollbooth::store::connect(&db.url).await.unwrap());
    assert_eq!(logged_rows(&store).await, 0, "the stop folded the log");
    assert_eq!(stored_usage(&store, &issued.customer_id).await, 5);
}

fn batch(used: i64) -> UsageBatch {
    UsageBatch {
        at: unix_now(),
        counters: vec![CounterDelta {
            entitlement: "g_logged".into(),
            period_start: 0,
            customer_id: "cus_logged".into(),
            used,
        }],
        ..UsageBatch::default()
    }
}

#[tokio::test]
async fn a_logged_row_counts_once_whether_its_instance_or_a_start_folds_it() {
    let db = TestDatabase::fresh().await;
    let store = TestStore(tollbooth::store::connect(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    let now = unix_now();

    // Folded by the instance that logged them, from the sums it kept.
    assert!(store.log_usage(&batch(2), "inst_a").await.unwrap());
    assert!(store.log_usage(&batch(3), "inst_a").await.unwrap());
    fold(&store, "inst_a", 2, &batch(5).counters, 100).await;
    assert_eq!(stored_usage(&store, "cus_logged").await, 5);
    assert_eq!(logged_rows(&store).await, 0);

    // One row taken by a starting process before the instance folds: the instance adds only
    // the row left, not the sum it kept of both.
    assert!(store.log_usage(&batch(7), "inst_a").await.unwrap());
    let totals = store
        .fold_left_behind("inst_b", i64::MAX, now)
        .await
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(
        totals[0].used, 12,
        "the start answers with the counter's total"
    );
    assert!(store.log_usage(&batch(11), "inst_a").await.unwrap());
    fold(&store, "inst_a", 2, &batch(18).counters, 100).await;
    assert_eq!(stored_usage(&store, "cus_logged").await, 23);
    assert_eq!(logged_rows(&store).await, 0);

    // Another instance's rows are left to it while it is alive, and taken once it is gone.
    store.heartbeat("inst_a", now).await.unwrap();
    assert!(store.log_usage(&batch(1), "inst_a").await.unwrap());
    let totals = store
        .fold_left_behind("inst_b", now - 10, now)
        .await
        .unwrap();
    assert!(totals.is_empty(), "inst_a is alive: {totals:?}");
    let totals = store
        .fold_left_behind("inst_b", now + 60, now)
        .await
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(stored_usage(&store, "cus_logged").await, 24);
}

/// Counts of several customers, `used` each.
fn counts(customers: usize, used: i64) -> Vec<CounterDelta> {
    (0..customers)
        .map(|i| CounterDelta {
            entitlement: format!("g_{i}").into(),
            period_start: 0,
            customer_id: format!("cus_{i}").into(),
            used,
        })
        .collect()
}

#[tokio::test]
async fn a_fold_adds_its_slices_each_once_whoever_folds_them() {
    let db = TestDatabase::fresh().await;
    let store = TestStore(tollbooth::store::connect(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    let now = unix_now();
    let logged = |used| UsageBatch {
        at: now,
        counters: counts(5, used),
        ..UsageBatch::default()
    };
    assert!(store.log_usage(&logged(1), "inst_a").await.unwrap());
    assert!(store.log_usage(&logged(2), "inst_a").await.unwrap());

    // Five counters in slices of two: three new rows replace the two logged.
    let slices = store
        .compact_log("inst_a", 2, &counts(5, 3), 2, now)
        .await
        .unwrap();
    assert_eq!(slices.len(), 3);
    assert_eq!(logged_rows(&store).await, 3);
    assert!(store.fold_logged_row(slices[0], now).await.unwrap());
    assert_eq!(logged_rows(&store).await, 2);

    // A start takes the two slices left; the instance then finds them gone.
    let totals = store.fold_every_logged_row(now).await.unwrap();
    assert_eq!(totals.len(), 3);
    assert!(!store.fold_logged_row(slices[1], now).await.unwrap());
    assert!(!store.fold_logged_row(slices[2], now).await.unwrap());
    for i in 0..5 {
        assert_eq!(
            stored_usage(&store, &format!("cus_{i}")).await,
            3,
            "cus_{i}"
        );
    }
    assert_eq!(logged_rows(&store).await, 0);
}
