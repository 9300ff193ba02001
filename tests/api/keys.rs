//! A key's own terms: rolled with a grace period (the old key works through it and is refused
//! after, with the clock advanced rather than slept), and capped on its own while the customer's
//! other keys go on. Through the ledger, the CLI, the account page and the admin API, on SQLite
//! and on PostgreSQL when TEST_DATABASE_URL is set.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tollbooth::clock::unix_now;
use tollbooth::domain::{Grace, KeyCap, KeyPrefix};
use tollbooth::gate::DenyReason;
use tollbooth::ledger::{KeyError, KeyRef, Ledger};
use tollbooth::store::{Audit, Customer, Keys, Mirror};

use crate::freshness::{cli, cli_refused};
use crate::helpers::{Issue, TestApp, assert_allowed, assert_denied, spawn_app, spawn_app_with};
use crate::pages::{csrf, revealed_key, shop};

const TAG: &str = "@acme/sdxl";

/// The ledger as the app's own edges use it: its writes reach the app's gate at once.
fn ledger_of(app: &TestApp) -> Ledger {
    Ledger::new(
        Arc::clone(&app.store),
        Some(Arc::clone(&app.gate)),
        KeyPrefix::parse("tb").unwrap(),
        None,
        "http://localhost".into(),
    )
}

#[tokio::test]
async fn a_rolled_key_works_through_its_grace_period_and_is_refused_after_it() {
    let app = spawn_app().await;
    let issued = app
        .issue(Issue {
            name: Some("laptop"),
            cap: Some("500/day"),
            ..Issue::default()
        })
        .await;
    let ledger = ledger_of(&app);

    let rolled = ledger
        .roll_key(KeyRef::Any(&issued.key_id), Grace::Hour, None)
        .await
        .expect("rolled");
    let now = unix_now();
    assert!((rolled.old_stops_at - now - 3_600).abs() <= 2);
    assert_eq!(rolled.customer_id, issued.customer_id);

    // Over HTTP now, inside the grace: both keys work.
    assert_allowed(&app, TAG, &issued.key).await;
    assert_allowed(&app, TAG, rolled.key.as_ref()).await;
    // The clock advanced to the grace period's last second, then to its end.
    let stops = rolled.old_stops_at;
    assert!(app.gate.authorize(TAG, &issued.key, stops - 1).is_ok());
    assert_eq!(
        app.gate.authorize(TAG, &issued.key, stops).unwrap_err(),
        DenyReason::KeyRolled { on: stops }
    );
    assert!(app.gate.authorize(TAG, rolled.key.as_ref(), stops).is_ok());
    // The same from a view read whole from the database (another instance, a restart).
    app.gate.reload(app.store.as_ref(), now).await.unwrap();
    assert!(app.gate.authorize(TAG, &issued.key, stops - 1).is_ok());
    assert!(matches!(
        app.gate.authorize(TAG, &issued.key, stops + 86_400),
        Err(DenyReason::KeyRolled { .. })
    ));

    // The new key has the old one's name and cap; the old one says what replaced it.
    let keys = app
        .store
        .list_keys(Some(&issued.customer_id))
        .await
        .unwrap();
    let old = keys.iter().find(|k| k.id == issued.key_id).unwrap();
    let new = keys.iter().find(|k| k.id == rolled.key_id).unwrap();
    assert_eq!(old.replaced_by.as_deref(), Some(rolled.key_id.as_str()));
    assert_eq!(old.expires_at, Some(stops));
    assert!(old.active(stops - 1) && !old.active(stops));
    assert_eq!(new.name.as_deref(), Some("laptop"));
    assert_eq!(new.cap(), KeyCap::parse("500/day").ok());

    // A rolled key is not rolled twice; the audit log holds the roll and the new key.
    let again = ledger
        .roll_key(KeyRef::Any(&issued.key_id), Grace::None, None)
        .await;
    assert!(
        matches!(again, Err(KeyError::AlreadyRolled(_))),
        "{again:?}"
    );
    let actions: Vec<String> = app
        .store
        .audit_log(Some(&issued.customer_id), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["key.issued", "key.rolled"]);

    // Rolled with no grace, a key is refused at once, with a message saying why.
    let now_rolled = ledger
        .roll_key(KeyRef::Any(&rolled.key_id), Grace::None, None)
        .await
        .unwrap();
    assert_denied(&app, TAG, rolled.key.as_ref(), "replaced by a new one").await;
    assert_allowed(&app, TAG, now_rolled.key.as_ref()).await;
}

#[tokio::test]
async fn a_key_cap_refuses_exactly_at_the_cap_while_another_key_of_the_customer_works() {
    let app = spawn_app().await;
    let capped = app
        .issue(Issue {
            credits: Some(100),
            cap: Some("3/day"),
            ..Issue::default()
        })
        .await;
    let other = app
        .issue(Issue {
            customer: Some(capped.customer_id.clone()),
            no_grant: true,
            ..Issue::default()
        })
        .await;

    for _ in 0..3 {
        assert_allowed(&app, TAG, &capped.key).await;
    }
    assert_denied(
        &app,
        TAG,
        &capped.key,
        "reached its own limit of 3 predictions a day, set on the key",
    )
    .await;
    assert_denied(&app, TAG, &capped.key, "Your account still has access").await;
    assert_allowed(&app, TAG, &other.key).await;
    // Refusals spent nothing: 4 of the 100 credits are used.
    let account = ledger_of(&app).account(&capped.customer_id).await.unwrap();
    assert_eq!(
        format!("{:?}", account.plans[0].usage),
        "Credits { used: 4, total: 100 }"
    );
    let (_, used) = account
        .keys
        .iter()
        .find(|(k, _)| k.id == capped.key_id)
        .unwrap();
    assert_eq!(*used, Some(3));

    // Raised, the key gets exactly the difference; removed, only the plan limits it.
    let ledger = ledger_of(&app);
    ledger
        .cap_key(
            KeyRef::Any(&capped.key_id),
            Some(KeyCap::parse("5/day").unwrap()),
        )
        .await
        .unwrap();
    assert_allowed(&app, TAG, &capped.key).await;
    assert_allowed(&app, TAG, &capped.key).await;
    assert_denied(&app, TAG, &capped.key, "own limit of 5").await;

    // The count survives a restart: it is written like a quota's.
    let app = app.restart().await;
    assert_denied(&app, TAG, &capped.key, "own limit of 5").await;
    ledger_of(&app)
        .cap_key(KeyRef::Any(&capped.key_id), None)
        .await
        .unwrap();
    assert_allowed(&app, TAG, &capped.key).await;
}

#[tokio::test]
async fn keys_are_rolled_and_capped_at_the_command_line_and_meaningless_values_refused() {
    let app = spawn_app().await;
    let url = app.db.url.clone();
    let out = cli(
        &url,
        &[
            "keys",
            "issue",
            "--email",
            "cli@example.com",
            "--cap",
            "2/day",
            "--credits",
            "10",
        ],
    )
    .await;
    assert!(out.contains("Key cap   2 predictions a day"), "{out}");
    let key = out.lines().last().unwrap().trim().to_owned();
    let key_id = out
        .lines()
        .find_map(|l| l.strip_prefix("Key id    "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    app.refresh().await;
    assert_allowed(&app, TAG, &key).await;
    assert_allowed(&app, TAG, &key).await;
    assert_denied(&app, TAG, &key, "own limit of 2").await;

    let out = cli(&url, &["keys", "cap", &key_id, "10/month"]).await;
    assert!(out.contains("10 predictions a month"), "{out}");
    let out = cli(&url, &["keys", "roll", &key_id, "--grace", "24h"]).await;
    assert!(out.contains("keeps working until"), "{out}");
    let new_key = out.lines().last().unwrap().trim().to_owned();
    app.refresh().await;
    assert_allowed(&app, TAG, &key).await;
    assert_allowed(&app, TAG, &new_key).await;
    let listing = cli(&url, &["keys", "list"]).await;
    assert!(listing.contains("replaced by key_"), "{listing}");
    assert!(listing.contains("cap 10 predictions a month"), "{listing}");

    for (args, expected) in [
        (vec!["keys", "cap", &key_id, "0/day"], "at least 1"),
        (vec!["keys", "cap", &key_id, "10/week"], "per day or month"),
        (
            vec!["keys", "roll", &key_id, "--grace", "2h"],
            "none, 1h or 24h",
        ),
        (vec!["keys", "roll", &key_id], "rolled already"),
        (vec!["keys", "roll", "key_nothing"], "no active key"),
        (
            vec!["keys", "issue", "--email", "x@example.com", "--cap", "0"],
            "at least 1",
        ),
    ] {
        let (code, stderr) = cli_refused(&url, &args).await;
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_account_page_rolls_a_key_shown_once_and_sets_its_own_limit() {
    let shop = shop("Pro").await;
    let issued = shop
        .app
        .issue(Issue {
            name: Some("laptop"),
            ..Issue::default()
        })
        .await;
    let cookie = shop.sign_in(&issued.key).await;
    let account_url = format!("{}/account", shop.app.address);
    let (_, page) = shop.get(&account_url, Some(&cookie)).await;
    let token = csrf(&page);
    let key_path = format!("/account/keys/{}", issued.key_id);

    let set = shop
        .post_form(
            &format!("{key_path}/cap"),
            Some(&cookie),
            &[("csrf", &token), ("cap", "1/day")],
        )
        .await;
    assert_eq!(set.status().as_u16(), 303);
    assert_allowed(&shop.app, TAG, &issued.key).await;
    assert_denied(
        &shop.app,
        TAG,
        &issued.key,
        "own limit of 1 prediction a day",
    )
    .await;
    let (_, page) = shop.get(&account_url, Some(&cookie)).await;
    assert!(
        page.contains("1 of 1 today"),
        "the key's use against its cap"
    );
    let bad = shop
        .post_form(
            &format!("{key_path}/cap"),
            Some(&cookie),
            &[("csrf", &token), ("cap", "lots")],
        )
        .await;
    assert_eq!(bad.status().as_u16(), 400);

    let rolled = shop
        .post_form(
            &format!("{key_path}/roll"),
            Some(&cookie),
            &[("csrf", &token), ("grace", "1h")],
        )
        .await;
    assert_eq!(rolled.status().as_u16(), 200);
    let page = rolled.text().await.unwrap();
    let new_key = revealed_key(&page).expect("the new key is shown");
    assert!(page.contains("the old key keeps working until"), "{page}");
    assert!(page.contains("Replaced; works until"));
    // Shown once: the account page does not show it again; the session moved to the new key.
    let (status, again) = shop.get(&account_url, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(revealed_key(&again).is_none());
    assert!(!again.contains(&new_key));
    // The new key kept the old one's limit (used by the old key today: its own count).
    assert_allowed(&shop.app, TAG, &new_key).await;
    assert_denied(&shop.app, TAG, &new_key, "own limit of 1").await;

    // Another customer's key is not this customer's to roll.
    let stranger = shop
        .app
        .issue(Issue {
            email: Some("stranger@example.com"),
            ..Issue::default()
        })
        .await;
    let refused = shop
        .post_form(
            &format!("/account/keys/{}/roll", stranger.key_id),
            Some(&cookie),
            &[("csrf", &token), ("grace", "none")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 400);
    assert_allowed(&shop.app, TAG, &stranger.key).await;
}

#[tokio::test]
async fn the_admin_api_rolls_and_caps_keys_idempotently() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let app = spawn_app_with(&[("ADMIN_TOKEN", &format!("ops:{SECRET}"))]).await;
    let issued = app.issue(Issue::default()).await;
    let call = |method: Method, path: &str, body: serde_json::Value, idem: &str| {
        app.client
            .request(method, format!("{}/admin/api/v1{path}", app.address))
            .bearer_auth(SECRET)
            .header("Idempotency-Key", idem)
            .json(&body)
            .send()
    };

    let capped = call(
        Method::PUT,
        &format!("/keys/{}/cap", issued.key_id),
        json!({"cap": "2/month"}),
        "cap-1",
    )
    .await
    .unwrap();
    assert_eq!(capped.status(), 200);
    let body: serde_json::Value = capped.json().await.unwrap();
    assert_eq!(body["cap"], "2/month");
    let bad = call(
        Method::PUT,
        &format!("/keys/{}/cap", issued.key_id),
        json!({"cap": "0"}),
        "cap-2",
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["code"], "invalid_cap");

    let path = format!("/keys/{}/roll", issued.key_id);
    let first = call(Method::POST, &path, json!({"grace": "24h"}), "roll-1")
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let retried = call(Method::POST, &path, json!({"grace": "24h"}), "roll-1")
        .await
        .unwrap();
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let retried: serde_json::Value = retried.json().await.unwrap();
    assert_eq!(
        first["key"], retried["key"],
        "a retry gets the same new key"
    );
    let new_key = first["key"].as_str().unwrap();
    assert_allowed(&app, TAG, new_key).await;
    assert_allowed(&app, TAG, new_key).await;
    assert_allowed(&app, TAG, &issued.key).await;
    assert_denied(&app, TAG, new_key, "own limit of 2").await;

    let twice = call(Method::POST, &path, json!({"grace": "none"}), "roll-2")
        .await
        .unwrap();
    assert_eq!(twice.status(), 409);
    let listed: serde_json::Value = app
        .client
        .get(format!(
            "{}/admin/api/v1/keys?customer={}",
            app.address, issued.customer_id
        ))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = listed["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    let by_id = |id: &serde_json::Value| keys.iter().find(|k| k["id"] == *id).unwrap();
    let old = by_id(&json!(issued.key_id));
    assert_eq!(old["replaced_by"], first["key_id"]);
    assert_eq!(old["stops_at"], first["old_stops_at"]);
    assert_eq!(old["active"], true, "in its grace period");
    assert_eq!(by_id(&first["key_id"])["cap"], "2/month");
    let actors: Vec<String> = app
        .store
        .audit_log(Some(&issued.customer_id), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.actor, r.action))
        .collect();
    assert_eq!(
        actors,
        [
            "admin:ops key.issued",
            "admin:ops key.rolled",
            "admin:ops key.capped"
        ]
    );
}

#[tokio::test]
async fn the_account_page_says_a_key_was_used_as_soon_as_its_use_counts() {
    let shop = shop("Pro").await;
    let issued = shop
        .app
        .issue(Issue {
            name: Some("laptop"),
            quota: Some((1_000, tollbooth::domain::CalendarPeriod::Month)),
            ..Issue::default()
        })
        .await;
    let cookie = shop.sign_in(&issued.key).await;
    let account_url = format!("{}/account", shop.app.address);
    let (_, before) = shop.get(&account_url, Some(&cookie)).await;
    assert!(before.contains("0 of 1,000"), "{before}");
    assert!(before.contains("<td>Never</td>"));

    assert_allowed(&shop.app, TAG, &issued.key).await;
    // At once, long before the per-hour activity is written (about once a minute).
    let (_, after) = shop.get(&account_url, Some(&cookie)).await;
    assert!(after.contains("1 of 1,000"), "{after}");
    assert!(
        !after.contains("<td>Never</td>"),
        "a key counted in the plan's use is not 'never' used"
    );
}

#[tokio::test]
async fn a_deleted_customers_keys_are_refused_from_a_whole_read_until_it_comes_back() {
    let app = spawn_app().await;
    let kept = app
        .issue(Issue {
            email: Some("kept@example.com"),
            ..Issue::default()
        })
        .await;
    let gone = app
        .issue(Issue {
            email: Some("gone@example.com"),
            ..Issue::default()
        })
        .await;
    let now = unix_now();
    app.store
        .delete_customer(&gone.customer_id, now)
        .await
        .unwrap();

    // A view read whole from the database (another instance, a restart).
    app.gate.reload(app.store.as_ref(), now).await.unwrap();
    assert!(app.gate.authorize(TAG, &kept.key, now).is_ok());
    assert_eq!(
        app.gate.authorize(TAG, &gone.key, now).unwrap_err(),
        DenyReason::UnknownKey
    );

    // Stripe brings the customer back: its key works again from the next whole read.
    app.store
        .upsert_customer(&Customer {
            id: gone.customer_id.clone(),
            email: Some("gone@example.com".into()),
            name: None,
            created_at: now,
        })
        .await
        .unwrap();
    app.gate.reload(app.store.as_ref(), now).await.unwrap();
    assert!(app.gate.authorize(TAG, &gone.key, now).is_ok());
    assert!(app.gate.authorize(TAG, &kept.key, now).is_ok());
}
