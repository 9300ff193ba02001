use tollbooth::clock::unix_now;
use tollbooth::domain::CalendarPeriod;
use tollbooth::domain::calendar;
use tollbooth::domain::{AccessKey, KeyPrefix};

use crate::helpers::{Issue, assert_allowed, assert_denied, spawn_app};
use tollbooth::store::Keys;

fn never_issued_key() -> String {
    AccessKey::generate(&KeyPrefix::parse("tb").unwrap())
        .as_ref()
        .to_owned()
}

#[tokio::test]
async fn authorize_returns_200_without_error_key_for_a_covering_grant() {
    let app = spawn_app().await;
    let issued = app.issue(Issue::default()).await;

    assert_allowed(&app, "@acme/sdxl", &issued.key).await;
    assert_allowed(&app, "@ACME/sdxl", &issued.key).await;
}

#[tokio::test]
async fn authorize_ignores_unknown_fields() {
    let app = spawn_app().await;
    let issued = app.issue(Issue::default()).await;

    let response = app
        .client
        .post(app.authorize_url())
        .json(&serde_json::json!({
            "tag": "@acme/sdxl",
            "accessKey": issued.key,
            "prediction": {"id": "pred_1", "inputs": [1, 2, 3]},
            "future": null,
        }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn authorize_returns_400_for_each_deny_reason_with_a_message_a_person_can_act_on() {
    let app = spawn_app().await;
    let plain = app.issue(Issue::default()).await;
    let mut typo = plain.key.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let revoked = app
        .issue(Issue {
            email: Some("revoked@example.com"),
            ..Issue::default()
        })
        .await;
    app.store
        .revoke_key(&revoked.key_id, unix_now())
        .await
        .unwrap();
    app.refresh().await;
    let expired = app
        .issue(Issue {
            email: Some("expired@example.com"),
            expires: Some("2020-01-31"),
            ..Issue::default()
        })
        .await;
    let narrow = app
        .issue(Issue {
            email: Some("narrow@example.com"),
            grant: Some("@acme/sdxl-*"),
            ..Issue::default()
        })
        .await;
    let no_plan = app
        .issue(Issue {
            email: Some("nobody@example.com"),
            no_grant: true,
            ..Issue::default()
        })
        .await;

    let cases = [
        (
            "unknown key",
            "@acme/sdxl",
            never_issued_key(),
            "not valid: it may have been revoked",
        ),
        ("bad checksum", "@acme/sdxl", typo, "has a typo"),
        (
            "revoked key",
            "@acme/sdxl",
            revoked.key.clone(),
            "not valid: it may have been revoked",
        ),
        (
            "expired grant",
            "@acme/sdxl",
            expired.key.clone(),
            "ended on 2020-01-31",
        ),
        (
            "tag of another owner",
            "@other/sdxl",
            plain.key.clone(),
            "@other/sdxl is not sold here",
        ),
        (
            "tag not covered",
            "@acme/llama",
            narrow.key.clone(),
            "does not include @acme/llama",
        ),
        (
            "no plan at all",
            "@acme/sdxl",
            no_plan.key.clone(),
            "no active plan",
        ),
        (
            "a Function key, not ours",
            "@acme/sdxl",
            "fxn_abc123".into(),
            "the key sent is not one",
        ),
    ];
    for (why, tag, key, expected) in cases {
        let (status, body) = app.authorize_json(tag, &key).await;
        assert_eq!(status, 400, "{why}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{why}: {message:?} lacks {expected:?}"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_gets_the_same_message_as_an_unknown_one() {
    let app = spawn_app().await;
    let issued = app.issue(Issue::default()).await;
    app.store
        .revoke_key(&issued.key_id, unix_now())
        .await
        .unwrap();
    app.refresh().await;

    let (_, revoked) = app.authorize_json("@acme/a", &issued.key).await;
    let (_, unknown) = app.authorize_json("@acme/a", &never_issued_key()).await;

    assert_eq!(revoked, unknown);
}

#[tokio::test]
async fn a_quota_allows_exactly_n_in_the_period_then_says_when_it_resets() {
    let app = spawn_app().await;
    let issued = app
        .issue(Issue {
            quota: Some((3, CalendarPeriod::Month)),
            ..Issue::default()
        })
        .await;

    for _ in 0..3 {
        assert_allowed(&app, "@acme/sdxl", &issued.key).await;
    }
    let resets = calendar::date(calendar::next_month_start(unix_now()));
    let expected = format!("used all 3 predictions of this period; it resets on {resets}");
    assert_denied(&app, "@acme/sdxl", &issued.key, &expected).await;
}

#[tokio::test]
async fn credits_run_out_with_a_message() {
    let app = spawn_app().await;
    let issued = app
        .issue(Issue {
            credits: Some(2),
            ..Issue::default()
        })
        .await;

    assert_allowed(&app, "@acme/a", &issued.key).await;
    assert_allowed(&app, "@acme/b", &issued.key).await;
    assert_denied(
        &app,
        "@acme/a",
        &issued.key,
        "used all 2 of your prediction credits",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_a_plain_404_like_any_unknown_path() {
    let app = spawn_app().await;
    let issued = app.issue(Issue::default()).await;
    let body = serde_json::json!({"tag": "@acme/a", "accessKey": issued.key}).to_string();

    let unknown = app
        .post_raw(
            &format!("{}/no-such-page", app.address),
            Some("application/json"),
            body.clone().into(),
        )
        .await;
    let unknown_status = unknown.status();
    let unknown_body = unknown.text().await.unwrap();
    assert_eq!(unknown_status.as_u16(), 404);

    for path in ["/authorize/wrong-token", "/authorize/", "/authorize"] {
        let url = format!("{}{path}", app.address);
        let response = app
            .post_raw(&url, Some("application/json"), body.clone().into())
            .await;
        assert_eq!(response.status(), unknown_status, "{path}");
        assert_eq!(response.text().await.unwrap(), unknown_body, "{path}");
    }
    let beyond = format!("{}/extra", app.authorize_url());
    let response = app
        .post_raw(&beyond, Some("application/json"), body.clone().into())
        .await;
    assert_eq!(response.status(), unknown_status, "a path below the token");

    // The right token with another method says nothing more than a wrong one.
    let response = app.client.get(app.authorize_url()).send().await.unwrap();
    assert_eq!(
        response.status(),
        unknown_status,
        "GET with the right token"
    );
    assert_eq!(response.text().await.unwrap(), unknown_body);
}
