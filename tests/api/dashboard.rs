//! The owner's dashboard over HTTP (the browser suite drives it in Chromium): off without
//! ADMIN_TOKEN, signed in with a token, every form guarded by CSRF and same-origin, a session
//! ended by sign-out for every copy of its cookie, and the actions leaving audit rows as the
//! token's label.

use reqwest::redirect::Policy;
use serde_json::json;
use tollbooth::clock::unix_now;
use tollbooth::store::Audit;

use crate::helpers::{Issue, TestApp, assert_allowed, assert_denied, spawn_app, spawn_app_with};
use crate::pages::{csrf, revealed_key};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

struct Dashboard {
    app: TestApp,
    client: reqwest::Client,
}

impl Dashboard {
    async fn start() -> Self {
        let app = spawn_app_with(&[("ADMIN_TOKEN", &format!("owner:{SECRET}"))]).await;
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self { app, client }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(format!("{}{path}", self.app.address));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.app.address))
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// Signs in; the cookie to send.
    async fn sign_in(&self) -> String {
        let response = self
            .post("/admin/sign-in", None, &[("token", SECRET)])
            .await;
        assert_eq!(response.status(), 303);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(cookie.contains("Path=/admin"), "{cookie}");
        cookie.split(';').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn without_admin_token_the_dashboard_is_not_found() {
    let app = spawn_app().await;
    for path in ["/admin", "/admin/customers", "/admin/webhooks"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_owner_signs_in_with_a_token_and_a_wrong_one_is_refused_then_limited() {
    let d = Dashboard::start().await;
    let (status, page) = d.get("/admin", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("Admin token"), "the sign-in form");
    let wrong = d
        .post("/admin/sign-in", None, &[("token", "not-the-token-at-all")])
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("not one of the admin tokens")
    );
    let cross_site = d
        .client
        .post(format!("{}/admin/sign-in", d.app.address))
        .header("Origin", "https://evil.example")
        .form(&[("token", SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);

    let cookie = d.sign_in().await;
    let (status, overview) = d.get("/admin", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(
        overview.contains("<h1>Overview</h1>") && overview.contains("<svg"),
        "{overview}"
    );
    assert!(overview.contains("Sign out (owner)"));

    for _ in 0..9 {
        d.post("/admin/sign-in", None, &[("token", "still-not-the-token")])
            .await;
    }
    let limited = d.post("/admin/sign-in", None, &[("token", SECRET)]).await;
    assert_eq!(limited.status(), 429);
}

#[tokio::test]
async fn signing_out_ends_every_copy_of_the_cookie() {
    let d = Dashboard::start().await;
    let cookie = d.sign_in().await;
    let (_, page) = d.get("/admin/customers", Some(&cookie)).await;
    let token = csrf(&page);
    let forged = d
        .post(
            "/admin/sign-out",
            Some(&cookie),
            &[("csrf", "0".repeat(64).as_str())],
        )
        .await;
    assert_eq!(forged.status(), 403, "a wrong CSRF token");
    let out = d
        .post("/admin/sign-out", Some(&cookie), &[("csrf", &token)])
        .await;
    assert_eq!(out.status(), 303);
    let (status, page) = d.get("/admin/customers", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Admin token"),
        "the copy kept is signed out too"
    );
}

#[tokio::test]
async fn the_owner_finds_a_customer_issues_and_revokes_a_key_and_gives_and_ends_a_grant() {
    let d = Dashboard::start().await;
    let issued = d
        .app
        .issue(Issue {
            email: Some("found@example.com"),
            no_grant: true,
            ..Issue::default()
        })
        .await;
    let cookie = d.sign_in().await;
    let (_, list) = d.get("/admin/customers?search=FOUND", Some(&cookie)).await;
    assert!(
        list.contains(&format!("/admin/customers/{}", issued.customer_id)),
        "{list}"
    );
    let (_, none) = d.get("/admin/customers?search=nobody", Some(&cookie)).await;
    assert!(none.contains("No customer matches"), "{none}");

    let path = format!("/admin/customers/{}", issued.customer_id);
    let (status, page) = d.get(&path, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains("No plan"), "{page}");
    let token = csrf(&page);

    let response = d
        .post(
            &format!("{path}/grants"),
            Some(&cookie),
            &[
                ("csrf", &token),
                ("credits", "5"),
                ("note", "pilot"),
                ("period", "month"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_allowed(&d.app, "@acme/sdxl", &issued.key).await;

    let response = d
        .post(
            &format!("{path}/keys"),
            Some(&cookie),
            &[("csrf", &token), ("name", "ci runner")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let new_key = revealed_key(&page).expect("the new key, shown once");
    assert_allowed(&d.app, "@acme/sdxl", &new_key).await;
    let (_, again) = d.get(&path, Some(&cookie)).await;
    assert!(!again.contains(&new_key), "shown once");
    assert!(
        again.contains("ci runner") && again.contains("pilot"),
        "{again}"
    );

    let zero = d
        .post(
            &format!("{path}/grants"),
            Some(&cookie),
            &[("csrf", &token), ("quota", "0")],
        )
        .await;
    assert_eq!(zero.status(), 400);
    assert!(zero.text().await.unwrap().contains("at least 1"));

    let key_id = issued.key_id.clone();
    assert!(again.contains(&format!("/admin/keys/{key_id}/revoke")));
    let response = d
        .post(
            &format!("/admin/keys/{key_id}/revoke"),
            Some(&cookie),
            &[("csrf", &token), ("customer", &issued.customer_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_denied(&d.app, "@acme/sdxl", &issued.key, "revoked").await;

    let grant_id = {
        let (_, page) = d.get(&path, Some(&cookie)).await;
        let at = page.find("/admin/grants/").unwrap() + "/admin/grants/".len();
        page[at..at + page[at..].find('/').unwrap()].to_owned()
    };
    let response = d
        .post(
            &format!("/admin/grants/{grant_id}/end"),
            Some(&cookie),
            &[("csrf", &token), ("customer", &issued.customer_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_denied(&d.app, "@acme/sdxl", &new_key, "").await;

    let actions: Vec<String> = d
        .app
        .store
        .audit_log(Some(&issued.customer_id), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.actor == "admin:owner")
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        ["grant.ended", "key.revoked", "key.issued", "grant.created"]
    );
    d.app
        .gate
        .flush(d.app.store.as_ref(), unix_now(), true)
        .await
        .unwrap();
    let (_, page) = d.get(&path, Some(&cookie)).await;
    assert!(
        page.contains("no plan (a key without a plan)"),
        "the refusal after the grant ended: {page}"
    );
    let (status, audit) = d.get("/admin/audit", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(
        audit.contains("admin:owner") && audit.contains("grant.ended"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_failing_event_is_retried_from_the_webhooks_page() {
    let d = Dashboard::start().await;
    let now = unix_now();
    let event = tollbooth::store::NewEvent {
        id: "evt_stuck".into(),
        event_type: "invoice.paid".into(),
        created: now,
        payload: json!({}).to_string(),
        received_at: now,
    };
    use tollbooth::store::Inbox as _;
    d.app.store.insert_event(&event).await.unwrap();
    d.app
        .store
        .event_failed("evt_stuck", "Stripe answered 500", now + 3_600)
        .await
        .unwrap();
    let cookie = d.sign_in().await;
    let (_, page) = d.get("/admin/webhooks", Some(&cookie)).await;
    assert!(
        page.contains("evt_stuck") && page.contains("Stripe answered 500"),
        "{page}"
    );
    assert!(
        page.contains("Stripe is off"),
        "no reconcile without Stripe"
    );
    let token = csrf(&page);
    let response = d
        .post(
            "/admin/events/evt_stuck/retry",
            Some(&cookie),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let due: Vec<(i64,)> = d
        .app
        .store
        .0
        .fetch_all(tollbooth::store::sql::sql(
            "SELECT next_attempt_at FROM stripe_events WHERE id = 'evt_stuck'",
        ))
        .await
        .unwrap();
    assert!(due[0].0 <= unix_now());
}

#[tokio::test]
async fn the_owner_rolls_a_key_and_gives_another_its_own_limit_from_the_customer_page() {
    let d = Dashboard::start().await;
    let issued = d
        .app
        .issue(Issue {
            email: Some("team@example.com"),
            ..Issue::default()
        })
        .await;
    let cookie = d.sign_in().await;
    let path = format!("/admin/customers/{}", issued.customer_id);
    let (_, page) = d.get(&path, Some(&cookie)).await;
    let token = csrf(&page);
    let key_id = issued.key_id.clone();
    assert!(page.contains(&format!("/admin/keys/{key_id}/roll")));

    // An own limit of 1 a day: the key is allowed once, then refused as at its limit.
    let capped = d
        .post(
            &format!("/admin/keys/{key_id}/cap"),
            Some(&cookie),
            &[
                ("csrf", &token),
                ("customer", &issued.customer_id),
                ("cap", "1/day"),
            ],
        )
        .await;
    assert_eq!(capped.status(), 303);
    assert_allowed(&d.app, "@acme/sdxl", &issued.key).await;
    assert_denied(&d.app, "@acme/sdxl", &issued.key, "own limit of 1").await;
    let (_, page) = d.get(&path, Some(&cookie)).await;
    assert!(page.contains("1 prediction a day"), "{page}");
    let bad = d
        .post(
            &format!("/admin/keys/{key_id}/cap"),
            Some(&cookie),
            &[
                ("csrf", &token),
                ("customer", &issued.customer_id),
                ("cap", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);

    // Rolled with an hour's grace: the new key is shown once, the old one still works.
    let rolled = d
        .post(
            &format!("/admin/keys/{key_id}/roll"),
            Some(&cookie),
            &[
                ("csrf", &token),
                ("customer", &issued.customer_id),
                ("grace", "1h"),
            ],
        )
        .await;
    assert_eq!(rolled.status(), 200);
    let page = rolled.text().await.unwrap();
    let new_key = revealed_key(&page).expect("the new key, shown once");
    assert!(page.contains("works until"), "{page}");
    // The new key kept the old one's limit, counted on its own.
    assert_allowed(&d.app, "@acme/sdxl", &new_key).await;
    assert_denied(&d.app, "@acme/sdxl", &new_key, "own limit of 1").await;
    let actions: Vec<String> = d
        .app
        .store
        .audit_log(Some(&issued.customer_id), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.actor, r.action))
        .collect();
    assert_eq!(
        actions,
        [
            "admin:owner key.issued",
            "admin:owner key.rolled",
            "admin:owner key.capped"
        ]
    );
}
