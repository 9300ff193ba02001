//! Just after a start, before the whole ledger is in memory, keys are answered from the
//! database, with the same decisions and the same counters.

use tollbooth::clock::unix_now;
use tollbooth::gate::{DenyReason, Gate, GateRules};

use crate::helpers::{Issue, TestDatabase, issue_with};
use tollbooth::store::Keys;

#[tokio::test]
async fn a_gate_that_has_not_loaded_yet_answers_from_the_database_and_counts_exactly() {
    let db = TestDatabase::fresh().await;
    let store = tollbooth::store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let issued = issue_with(
        &store,
        Issue {
            credits: Some(3),
            ..Issue::default()
        },
    )
    .await;
    let other = issue_with(
        &store,
        Issue {
            email: Some("x@example.com"),
            grant: Some("@acme/sdxl"),
            ..Issue::default()
        },
    )
    .await;
    let gate = Gate::new(GateRules {
        owner: None,
        past_due_grace: 0,
    });
    let now = unix_now();
    assert!(!gate.is_loaded());

    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(
            gate.authorize_cold(store.as_ref(), "@acme/a", &issued.key, now)
                .await
                .unwrap()
                .is_ok(),
        );
    }
    let not_covered = gate
        .authorize_cold(store.as_ref(), "@acme/llama", &other.key, now)
        .await
        .unwrap();
    let unknown = gate
        .authorize_cold(
            store.as_ref(),
            "@acme/a",
            &issued.key.replace("tb_", "tc_"),
            now,
        )
        .await
        .unwrap();
    let revoked = issue_with(
        &store,
        Issue {
            email: Some("y@example.com"),
            ..Issue::default()
        },
    )
    .await;
    store.revoke_key(&revoked.key_id, now).await.unwrap();
    let after_revoke = gate
        .authorize_cold(store.as_ref(), "@acme/a", &revoked.key, now)
        .await
        .unwrap();
    gate.reload(store.as_ref(), now).await.unwrap();
    let third = gate.authorize("@acme/a", &issued.key, now);
    let fourth = gate.authorize("@acme/a", &issued.key, now);

    assert_eq!(answers, [true, true]);
    assert_eq!(not_covered.unwrap_err(), DenyReason::NotIncluded);
    assert!(matches!(
        unknown.unwrap_err(),
        DenyReason::Key(_) | DenyReason::UnknownKey
    ));
    assert_eq!(after_revoke.unwrap_err(), DenyReason::UnknownKey);
    assert!(
        third.is_ok(),
        "the third credit is still there after the full load"
    );
    assert_eq!(
        fourth.unwrap_err(),
        DenyReason::CreditsUsed {
            total: 3,
            unit: None
        }
    );
}
