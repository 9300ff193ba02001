//! The authorize path allocates nothing once it is warm: its own test binary, so the counting
//! allocator sees this test alone.

use std::sync::Arc;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tollbooth::clock::unix_now;
use tollbooth::domain::{CalendarPeriod, Grace, KeyCap, KeyPrefix, Owner, Predictors};
use tollbooth::gate::{Gate, GateRules};
use tollbooth::ledger::{CustomerRef, GrantSpec, IssueRequest, KeyRef, Ledger};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const TAGS: [&str; 3] = ["@acme/sdxl", "@acme/llama-3", "@acme/whisper"];

#[tokio::test]
async fn an_authorization_allocates_nothing_once_its_counters_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = tollbooth::store::connect(&format!("sqlite://{}", dir.path().join("a.db").display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let ledger = Ledger::new(
        Arc::clone(&db),
        None,
        KeyPrefix::parse("tb").unwrap(),
        None,
        "http://localhost".into(),
    );
    let mut keys = Vec::new();
    for (n, (quota, credits)) in [
        (None, None),
        (Some(1_000_000), None),
        (None, Some(1_000_000)),
    ]
    .into_iter()
    .enumerate()
    {
        let issued = ledger
            .issue_key(IssueRequest {
                customer: CustomerRef::Email(format!("c{n}@example.com")),
                name: None,
                grant: Some(GrantSpec {
                    predictors: Predictors::parse("@acme/*", None).unwrap(),
                    quota: quota.map(|q| (q, CalendarPeriod::Day)),
                    credits,
                    last_day: None,
                    note: None,
                }),
                cap: None,
            })
            .await
            .unwrap();
        keys.push(issued.key.as_ref().to_owned());
    }
    // A key with its own cap, and one rolled and still in its grace period: the few keys
    // that carry terms of their own.
    let capped = ledger
        .issue_key(IssueRequest {
            customer: CustomerRef::Email("capped@example.com".into()),
            name: None,
            grant: Some(GrantSpec {
                predictors: Predictors::parse("@acme/*", None).unwrap(),
                quota: None,
                credits: None,
                last_day: None,
                note: None,
            }),
            cap: Some(KeyCap::parse("1000000/day").unwrap()),
        })
        .await
        .unwrap();
    let rolled = ledger
        .roll_key(KeyRef::Any(&keys[0]), Grace::Day, None)
        .await
        .unwrap();
    let with_terms = [
        capped.key.as_ref().to_owned(),
        rolled.key.as_ref().to_owned(),
    ];
    let gate = Gate::new(GateRules {
        owner: Some(Owner::parse("acme").unwrap()),
        past_due_grace: 0,
    });
    let now = unix_now();
    gate.reload(db.as_ref(), now).await.unwrap();
    // The counting allocator counts every thread's allocations: the database's threads (its
    // connections, the pool's upkeep) end here, so what is counted below is the gate's alone.
    db.close().await;
    drop((ledger, db));
    // Warm: each key's counter and each key, hour and tag's activity entry exist.
    for key in keys.iter().chain(&with_terms) {
        for tag in TAGS {
            gate.authorize(tag, key, now).expect("allowed");
        }
    }

    let region = Region::new(GLOBAL);
    let mut allowed = 0;
    for round in 0..1_000 {
        for key in &keys {
            allowed += gate.authorize(TAGS[round % TAGS.len()], key, now).is_ok() as usize;
        }
    }
    let unknown = gate.authorize(TAGS[0], "tb_0000000000000000000000000000000000000", now);
    let change = region.change();

    assert_eq!(allowed, 3_000);
    assert!(unknown.is_err());
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "the authorize path allocated: {change:?}"
    );

    let region = Region::new(GLOBAL);
    let allowed: usize = (0..1_000)
        .flat_map(|round| with_terms.iter().map(move |key| (round, key)))
        .filter(|(round, key)| gate.authorize(TAGS[round % TAGS.len()], key, now).is_ok())
        .count();
    let change = region.change();
    assert_eq!(allowed, 2_000, "a capped key and a rolled key's successor");
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "the authorize path allocated for keys with terms of their own: {change:?}"
    );
}
