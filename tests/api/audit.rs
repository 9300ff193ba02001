//! The audit log: every change of the ledger leaves a row saying who made it, through each
//! edge that can change it; rows cannot be changed or removed; they move with the ledger.
//! And the owner's other reading at the command line: use per day (`tollbooth usage`).

use tollbooth::clock::unix_now;
use tollbooth::domain::{AccessKey, KeyPrefix, calendar};
use tollbooth::store::Audit;
use tollbooth::store::sql::sql;

use crate::freshness::cli;
use crate::helpers::{Issue, spawn_app};
use crate::pages::{csrf, revealed_key, shop};

#[tokio::test]
async fn keys_issued_and_revoked_at_the_command_line_are_recorded_as_the_command_line() {
    let app = spawn_app().await;
    let issued = cli(
        &app.db.url,
        &[
            "keys",
            "issue",
            "--email",
            "cli@example.com",
            "--name",
            "laptop",
        ],
    )
    .await;
    let key = issued.lines().last().unwrap().trim();
    cli(&app.db.url, &["keys", "revoke", key]).await;

    let rows = app.store.audit_log(None, 10).await.unwrap();
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(seen, [("cli", "key.revoked"), ("cli", "key.issued")]);
    assert_eq!(rows[0].subject, rows[1].subject, "the same key");
    let detail: serde_json::Value =
        serde_json::from_str(rows[1].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["name"], "laptop");
    assert_eq!(detail["new_customer"], true);

    let customer = rows[1].customer_id.clone().unwrap();
    let theirs = cli(&app.db.url, &["audit", "--customer", &customer]).await;
    assert_eq!(theirs.matches("key.").count(), 2, "{theirs}");
    let nobody = cli(&app.db.url, &["audit", "--customer", "cus_nobody"]).await;
    assert!(nobody.starts_with("Nothing in the audit log"), "{nobody}");

    let listed = cli(&app.db.url, &["audit", "--limit", "1"]).await;
    assert!(listed.contains("key.revoked"), "{listed}");
    assert!(
        !listed.contains("key.issued"),
        "--limit 1 shows one row: {listed}"
    );
    assert!(!listed.contains(key), "the key itself is never shown");
}

#[tokio::test]
async fn keys_made_and_revoked_on_the_account_page_are_recorded_as_the_customer() {
    let shop = shop("Pro").await;
    let issued = shop.app.issue(Issue::default()).await;
    let cookie = shop.sign_in(&issued.key).await;
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;
    let token = csrf(&account);
    let made = shop
        .post_form(
            "/account/keys",
            Some(&cookie),
            &[("name", "ci"), ("csrf", &token)],
        )
        .await;
    assert!(revealed_key(&made.text().await.unwrap()).is_some());
    let revoked = shop
        .post_form(
            &format!("/account/keys/{}/revoke", issued.key_id),
            Some(&cookie),
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
    assert!(revoked.status().is_success() || revoked.status().is_redirection());

    let rows = shop
        .app
        .store
        .audit_log(Some(&issued.customer_id), 10)
        .await
        .unwrap();
    let customer = format!("customer:{}", issued.customer_id);
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        &seen[..2],
        [
            (customer.as_str(), "key.revoked"),
            (customer.as_str(), "key.issued")
        ]
    );
    assert_eq!(rows[0].subject.as_deref(), Some(issued.key_id.as_str()));
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let app = spawn_app().await;
    app.issue(Issue::default()).await;
    assert_eq!(app.store.audit_log(None, 10).await.unwrap().len(), 1);

    let updated = app
        .store
        .execute(sql("UPDATE audit_log SET actor = 'someone else'"))
        .await;
    let deleted = app.store.execute(sql("DELETE FROM audit_log")).await;

    for refused in [updated, deleted] {
        let error = format!("{:#}", refused.unwrap_err());
        assert!(error.contains("append-only"), "{error}");
    }
    let rows = app.store.audit_log(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].actor, "someone else");
}

#[tokio::test]
async fn a_key_issued_for_a_paid_checkout_is_recorded_as_that_checkout() {
    let shop = shop("Pro").await;
    let welcome = shop.buy().await;
    let (_, page) = shop.get(&welcome, None).await;
    assert!(revealed_key(&page).is_some());
    let session = welcome.split("session_id=").nth(1).unwrap().to_owned();

    let rows = shop.app.store.audit_log(None, 20).await.unwrap();
    let issued: Vec<_> = rows.iter().filter(|r| r.action == "key.issued").collect();
    assert_eq!(issued.len(), 1, "{rows:#?}");
    assert_eq!(issued[0].actor, format!("checkout:{session}"));
    let detail: serde_json::Value =
        serde_json::from_str(issued[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["checkout_session"], session);
}

#[tokio::test]
async fn tollbooth_usage_prints_use_per_day_and_predictor_and_refusals_by_reason() {
    let app = spawn_app().await;
    let issued = app.issue(Issue::default()).await;
    for tag in ["@acme/sdxl", "@acme/sdxl", "@acme/llama"] {
        assert_eq!(app.authorize(tag, &issued.key).await.status(), 200);
    }
    let unknown = AccessKey::generate(&KeyPrefix::parse("tb").unwrap());
    for _ in 0..2 {
        assert_eq!(
            app.authorize("@acme/sdxl", unknown.as_ref()).await.status(),
            400
        );
    }
    assert_eq!(
        app.authorize("@other/sdxl", &issued.key).await.status(),
        400
    );
    app.gate
        .flush(app.store.as_ref(), unix_now(), true)
        .await
        .unwrap();

    let today = calendar::date(unix_now());
    let printed = cli(&app.db.url, &["usage", "--customer", &issued.customer_id]).await;
    let row = |tag: &str| {
        printed
            .lines()
            .find(|l| l.contains(tag) && l.starts_with(&today))
            .unwrap_or_else(|| panic!("no row for {tag}: {printed}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    assert_eq!(row("@acme/sdxl"), "2");
    assert_eq!(row("@acme/llama"), "1");
    assert!(printed.contains(&issued.key_id), "{printed}");
    assert!(printed.contains(": 3 authorizations allowed"), "{printed}");
    assert!(
        !printed.contains("refused"),
        "refusals are not per customer: {printed}"
    );
    let other = cli(&app.db.url, &["usage", "--customer", "cus_nobody"]).await;
    assert!(other.starts_with("No authorizations allowed"), "{other}");

    // Refusals are written by the running flush (every 100 ms here).
    let started = std::time::Instant::now();
    let everyone = loop {
        let everyone = cli(&app.db.url, &["usage"]).await;
        if everyone.contains("Refused from") {
            break everyone;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{everyone}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        everyone.contains("other_owner 1, unknown_key 2."),
        "{everyone}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let later = cli(&app.db.url, &["usage"]).await;
    assert!(
        later.contains("other_owner 1, unknown_key 2."),
        "later rounds write only what is new: {later}"
    );

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .args(["usage", "--since", "yesterday"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--since \"yesterday\" is not a date"),
        "{said}"
    );
}
