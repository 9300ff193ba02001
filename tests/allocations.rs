//! The authorize path allocates nothing once it is warm: its own test binary, so the counting
//! allocator sees this test alone.

use std::sync::Arc;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tollbooth::clock::unix_now;
use tollbooth::domain::{CalendarPeriod, KeyPrefix, Owner, Predictors};
use tollbooth::gate::{Gate, GateRules};
use tollbooth::ledger::{CustomerRef, GrantSpec, IssueRequest, Ledger};

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
            })
            .await
            .unwrap();
        keys.push(issued.key.as_ref().to_owned());
    }
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
    for key in &keys {
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
}
