//! The admin API (`/admin/api/v1`): off without ADMIN_TOKEN, every request checked against a
//! token (and a wrong one limited per address), each resource, idempotent POSTs, CSV, stable
//! error codes, and the OpenAPI document that lists every route. On SQLite, and on PostgreSQL
//! when TEST_DATABASE_URL is set.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tollbooth::clock::unix_now;
use tollbooth::domain::calendar;
use tollbooth::store::{Audit, Inbox, NewEvent};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{Issue, TestApp, assert_allowed, assert_denied, spawn_app, spawn_app_with};
use crate::stripe_fake::{FakeStripe, list, spawn_app_with_stripe_and};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN: &str = "backoffice:0123456789abcdef0123456789abcdef";

async fn admin_app() -> TestApp {
    spawn_app_with(&[("ADMIN_TOKEN", ADMIN_TOKEN)]).await
}

impl TestApp {
    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/admin/api/v1{path}", self.address))
            .bearer_auth(SECRET)
    }

    /// Status and JSON body of an admin request.
    async fn admin_json(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("the admin API answers");
        let status = response.status();
        let body = response.json().await.expect("the admin API answers JSON");
        (status, body)
    }

    async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.admin_json(self.admin(Method::GET, path)).await
    }

    async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin_json(self.admin(Method::POST, path).json(&body))
            .await
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn without_admin_token_every_admin_path_is_not_found() {
    let app = spawn_app().await;
    for path in [
        "/admin/api/v1/customers",
        "/admin/api/v1/nothing",
        "/admin/api/openapi.json",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_missing_wrong_or_other_scheme_token_is_refused_and_then_rate_limited() {
    let app = admin_app().await;
    let url = format!("{}/admin/api/v1/customers", app.address);
    let refusals = [
        app.client.get(&url),
        app.client
            .get(&url)
            .bearer_auth("0123456789abcdef0123456789abcdeX"),
        app.client.get(&url).basic_auth("backoffice", Some(SECRET)),
        app.client.get(&url).header("Authorization", SECRET),
    ];
    for request in refusals {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"tollbooth admin\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "unauthorized");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert_eq!(app.admin_get("/customers").await.0, 200, "the right token");

    // Ten failures a minute per address; the eleventh request waits, right token or not.
    for _ in 0..6 {
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    }
    let limited = app
        .client
        .get(&url)
        .bearer_auth("wrong-token-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
    assert_eq!(app.admin_get("/customers").await.0, 429);
}

#[tokio::test]
async fn unknown_routes_and_malformed_requests_answer_json_errors_with_stable_codes() {
    let app = admin_app().await;
    let (status, body) = app.admin_get("/nothing-here").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.admin_get("/customers?limit=0").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_limit")
    );
    let (status, body) = app.admin_get("/customers?cursor=nonsense").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
    let (status, body) = app.admin_get("/customers?limit=many").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, body) = app
        .admin_post(
            "/keys",
            json!({"email": "a@example.com", "grant": {"quotas": 5}}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quotas"),
        "{body}"
    );
    let (status, body) = app
        .admin_json(
            app.admin(Method::POST, "/keys")
                .body("{\"email\": \"a@example.com\"}"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, body) = app
        .admin_json(
            app.admin(Method::POST, "/keys")
                .header("content-type", "application/json")
                .body(format!("{{\"name\": \"{}\"}}", "x".repeat(70_000))),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let (status, body) = app.admin_post("/keys", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, body) = app
        .admin_post("/keys", json!({"email": "not-an-email"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_email")
    );
    let (status, body) = app
        .admin_post("/keys", json!({"customer": "cus_nobody"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "customer_not_found")
    );
    let (status, body) = app.admin_get("/customers/cus_nobody").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "customer_not_found")
    );
}

#[tokio::test]
async fn keys_are_issued_with_a_grant_listed_and_revoked_and_each_change_is_the_tokens() {
    let app = admin_app().await;
    let (status, issued) = app
        .admin_post(
            "/keys",
            json!({"email": "ann@example.com", "name": "laptop",
                   "grant": {"predictors": ["@acme/*"], "credits": 2, "note": "trial"}}),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["key"].as_str().unwrap();
    assert!(key.starts_with(issued["prefix"].as_str().unwrap()));
    assert_eq!(issued["customer_created"], true);
    assert!(issued["grant_id"].as_str().unwrap().starts_with("gr_"));
    let customer = issued["customer_id"].as_str().unwrap().to_owned();

    assert_allowed(&app, "@acme/sdxl", key).await;
    assert_allowed(&app, "@acme/sdxl", key).await;
    assert_denied(&app, "@acme/sdxl", key, "used").await;

    let (status, page) = app.admin_get(&format!("/keys?customer={customer}")).await;
    assert_eq!(status, 200);
    let keys = page["data"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], issued["key_id"]);
    assert_eq!(keys[0]["name"], "laptop");
    assert_eq!(keys[0]["active"], true);
    assert!(
        !page.to_string().contains(key),
        "a listing never holds a key"
    );

    let key_id = issued["key_id"].as_str().unwrap();
    let (status, revoked) = app
        .admin_post(&format!("/keys/{key_id}/revoke"), json!(null))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["changed"], true);
    assert_denied(&app, "@acme/sdxl", key, "revoked").await;
    let (status, again) = app
        .admin_post(&format!("/keys/{key_id}/revoke"), json!(null))
        .await;
    assert_eq!((status.as_u16(), &again["changed"]), (200, &json!(false)));
    let (status, body) = app
        .admin_post("/keys/key_nothing/revoke", json!(null))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "key_not_found")
    );

    let rows = app.store.audit_log(Some(&customer), 10).await.unwrap();
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("admin:backoffice", "key.revoked"),
            ("admin:backoffice", "key.issued")
        ]
    );
}

#[tokio::test]
async fn a_retried_issue_with_the_same_idempotency_key_returns_the_first_key_and_makes_no_second() {
    let app = admin_app().await;
    let body = json!({"email": "retry@example.com", "name": "back office"});
    let send = |key: &'static str, body: &Value| {
        app.admin(Method::POST, "/keys")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send("9b1c2f4e-retry", &body).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retried = send("9b1c2f4e-retry", &body).await.unwrap();
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried, first, "the same answer, the same key");

    let (_, page) = app.admin_get("/keys").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "one key made");

    let other = send("9b1c2f4e-retry", &json!({"email": "other@example.com"}))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    let other: Value = other.json().await.unwrap();
    assert_eq!(code(&other), "idempotency_key_reused");
    let fresh = send("another-key", &body).await.unwrap();
    assert_eq!(
        fresh.status(),
        201,
        "a new Idempotency-Key is a new request"
    );

    // An error is an answer too: the retry gets it without running again.
    let missing = json!({"customer": "cus_nobody"});
    let (status, _) = app
        .admin_json(
            app.admin(Method::POST, "/keys")
                .header("Idempotency-Key", "k-404")
                .json(&missing),
        )
        .await;
    assert_eq!(status, 404);
    let replay = app
        .admin(Method::POST, "/keys")
        .header("Idempotency-Key", "k-404")
        .json(&missing)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 404);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    // Neither the Idempotency-Key nor the key is stored as sent.
    let stored: Vec<(String, Option<String>)> = app
        .store
        .0
        .fetch_all(tollbooth::store::sql::sql(
            "SELECT id, answer FROM admin_requests",
        ))
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    let key = first["key"].as_str().unwrap();
    for (id, answer) in stored {
        assert!(!id.contains("retry") && !answer.unwrap().contains(key));
    }
}

#[tokio::test]
async fn customers_are_found_by_email_or_id_a_page_at_a_time_and_shown_whole() {
    let app = admin_app().await;
    let mut ids = Vec::new();
    for email in ["a@one.example", "b@two.example", "c@one.example"] {
        let (status, issued) = app.admin_post("/keys", json!({"email": email})).await;
        assert_eq!(status, 201);
        ids.push(issued["customer_id"].as_str().unwrap().to_owned());
    }
    let (_, first) = app.admin_get("/customers?limit=2").await;
    let page: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(page.len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .admin_get(&format!("/customers?limit=2&cursor={cursor}"))
        .await;
    let rest: Vec<&str> = second["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest.len(), 1);
    assert!(second["next_cursor"].is_null(), "the last page");
    let mut all: Vec<&str> = page.into_iter().chain(rest).collect();
    all.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(all, expected, "every customer once");

    let (_, keys) = app.admin_get("/keys?limit=2").await;
    let cursor = keys["next_cursor"].as_str().unwrap();
    let (_, more) = app
        .admin_get(&format!("/keys?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(more["data"].as_array().unwrap().len(), 1);
    assert!(more["next_cursor"].is_null());
    let mut key_ids: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(more["data"].as_array().unwrap())
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    key_ids.sort_unstable();
    key_ids.dedup();
    assert_eq!(key_ids.len(), 3, "every key once");

    let (_, found) = app.admin_get("/customers?search=ONE.example").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    let (_, found) = app.admin_get("/customers?search=%25").await;
    assert_eq!(
        found["data"].as_array().unwrap().len(),
        0,
        "% is a character"
    );
    let (_, found) = app
        .admin_get(&format!("/customers?search={}", ids[1]))
        .await;
    assert_eq!(found["data"][0]["email"], "b@two.example");
    assert_eq!(found["data"][0]["active_keys"], 1);

    let (status, grant) = app
        .admin_post(
            "/grants",
            json!({"customer": ids[0], "quota": 5, "period": "day", "note": "pilot"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (status, one) = app.admin_get(&format!("/customers/{}", ids[0])).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["email"], "a@one.example");
    assert_eq!(one["keys"].as_array().unwrap().len(), 1);
    assert_eq!(one["grants"][0]["note"], "pilot");
    assert_eq!(one["plans"][0]["limit_kind"], "quota");
    assert_eq!(one["plans"][0]["limit"], 5);
    assert_eq!(one["plans"][0]["standing"], "active");
    assert_eq!(one["plans"][0]["covers"], "all predictors");
    assert!(
        one["stripe_dashboard_url"].is_null(),
        "not a Stripe customer"
    );
    assert!(one["usage_this_month"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_grant_gives_access_until_it_is_ended_and_meaningless_grants_are_refused() {
    let app = admin_app().await;
    let issued = app
        .issue(Issue {
            no_grant: true,
            ..Issue::default()
        })
        .await;
    assert_denied(&app, "@acme/sdxl", &issued.key, "").await;
    let (status, grant) = app
        .admin_post(
            "/grants",
            json!({"customer": issued.customer_id, "predictors": ["@acme/sdxl"], "quota": 1, "period": "day"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["active"], true);
    let (_, one) = app
        .admin_get(&format!("/customers/{}", issued.customer_id))
        .await;
    assert_eq!(one["plans"][0]["covers"], "acme's sdxl");
    assert_allowed(&app, "@acme/sdxl", &issued.key).await;
    assert_denied(&app, "@acme/sdxl", &issued.key, "").await;

    // The refusals of this customer's key, by reason, written with the activity.
    app.gate
        .flush(app.store.as_ref(), unix_now(), true)
        .await
        .unwrap();
    let (_, one) = app
        .admin_get(&format!("/customers/{}", issued.customer_id))
        .await;
    let mut reasons: Vec<(String, i64)> = one["recent_refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["key_id"], issued.key_id.as_str());
            (
                r["reason"].as_str().unwrap().to_owned(),
                r["refusals"].as_i64().unwrap(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [("no_plan".to_owned(), 1), ("quota_used".to_owned(), 1)]
    );

    let id = grant["id"].as_str().unwrap();
    let (status, ended) = app
        .admin_post(&format!("/grants/{id}/end"), json!(null))
        .await;
    assert_eq!((status.as_u16(), &ended["changed"]), (200, &json!(true)));
    let (_, one) = app
        .admin_get(&format!("/customers/{}", issued.customer_id))
        .await;
    assert_eq!(one["grants"][0]["active"], false);
    assert!(one["grants"][0]["ended_at"].is_i64());
    let (status, again) = app
        .admin_post(&format!("/grants/{id}/end"), json!(null))
        .await;
    assert_eq!((status.as_u16(), &again["changed"]), (200, &json!(false)));
    let (status, body) = app.admin_post("/grants/gr_nothing/end", json!(null)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "grant_not_found")
    );

    let yesterday = calendar::date(unix_now() - calendar::DAY);
    for (grant, expected) in [
        (json!({"quota": 0}), "invalid_grant"),
        (json!({"credits": 0}), "invalid_grant"),
        (json!({"quota": 5, "credits": 5}), "invalid_grant"),
        (json!({"period": "day"}), "invalid_grant"),
        (json!({"expires": yesterday}), "invalid_grant"),
        (json!({"expires": "2026-02-30"}), "invalid_grant"),
        (
            json!({"predictors": ["@someone-else/sdxl"]}),
            "invalid_predictors",
        ),
        (json!({"period": "week", "quota": 5}), "invalid_request"),
    ] {
        let mut body = grant.clone();
        body["customer"] = json!(issued.customer_id);
        let (status, answer) = app.admin_post("/grants", body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, expected),
            "{grant}"
        );
    }
    let (status, body) = app
        .admin_post("/grants", json!({"customer": "loc_nobody", "credits": 5}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "customer_not_found")
    );
    let actions: Vec<String> = app
        .store
        .audit_log(Some(&issued.customer_id), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.actor == "admin:backoffice")
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["grant.ended", "grant.created"]);
}

#[tokio::test]
async fn usage_per_day_is_json_or_csv_for_a_range_and_a_customer() {
    let app = admin_app().await;
    let issued = app.issue(Issue::default()).await;
    for tag in ["@acme/sdxl", "@acme/sdxl", "@acme/llama"] {
        assert_allowed(&app, tag, &issued.key).await;
    }
    app.gate
        .flush(app.store.as_ref(), unix_now(), true)
        .await
        .unwrap();
    let today = calendar::date(unix_now());
    let (status, report) = app
        .admin_get(&format!("/usage?customer={}", issued.customer_id))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["until"], today);
    assert_eq!(report["total_allowed"], 3);
    let sdxl = report["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["predictor"] == "@acme/sdxl")
        .unwrap();
    assert_eq!(sdxl["predictions"], 2);
    assert_eq!(sdxl["day"], today);
    assert_eq!(sdxl["key_id"], issued.key_id.as_str());

    let csv = app
        .admin(Method::GET, &format!("/usage?since={today}&until={today}"))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "day,customer_id,key_id,predictor,predictions");
    assert!(
        lines.contains(
            &format!(
                "{today},{},{},'@acme/sdxl,2",
                issued.customer_id, issued.key_id
            )
            .as_str()
        ),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");

    let (_, none) = app
        .admin_get("/usage?since=2020-01-01&until=2020-01-31")
        .await;
    assert_eq!(none["total_allowed"], 0);
    for (query, expected) in [
        ("since=yesterday", "invalid_date"),
        ("since=2026-03-02&until=2026-03-01", "invalid_range"),
        ("since=2020-01-01&until=2026-01-01", "invalid_range"),
    ] {
        let (status, body) = app.admin_get(&format!("/usage?{query}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, expected),
            "{query}"
        );
    }
}

#[tokio::test]
async fn failing_events_are_listed_with_their_error_and_a_retry_makes_one_due_now() {
    let app = admin_app().await;
    let now = unix_now();
    let event = NewEvent {
        id: "evt_failing".into(),
        event_type: "customer.subscription.updated".into(),
        created: now - 60,
        payload: "{}".into(),
        received_at: now - 60,
    };
    assert!(app.store.insert_event(&event).await.unwrap());
    app.store
        .event_failed("evt_failing", "Stripe answered 500", now + 3_600)
        .await
        .unwrap();
    let (status, events) = app.admin_get("/events").await;
    assert_eq!(status, 200);
    assert_eq!(events["data"][0]["id"], "evt_failing");
    assert_eq!(events["data"][0]["type"], "customer.subscription.updated");
    assert_eq!(events["data"][0]["attempts"], 1);
    assert_eq!(events["data"][0]["last_error"], "Stripe answered 500");

    let (status, retried) = app
        .admin_post("/events/evt_failing/retry", json!(null))
        .await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["status"], "queued");
    let due: Vec<(i64,)> = app
        .store
        .0
        .fetch_all(tollbooth::store::sql::sql(
            "SELECT next_attempt_at FROM stripe_events WHERE id = 'evt_failing'",
        ))
        .await
        .unwrap();
    assert!(due[0].0 <= unix_now(), "due now, not in an hour");
    let (status, body) = app
        .admin_post("/events/evt_nothing/retry", json!(null))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "event_not_found")
    );
}

#[tokio::test]
async fn a_reconcile_is_started_and_its_progress_read_back() {
    let app = admin_app().await;
    let (status, body) = app.admin_post("/sync", json!(null)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "stripe_not_configured")
    );

    let stripe = FakeStripe::start().await;
    // Stripe with nothing in it: every list is empty.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .with_priority(10)
        .mount(&stripe.server)
        .await;
    let app = spawn_app_with_stripe_and(
        &stripe,
        &[("ADMIN_TOKEN", ADMIN_TOKEN), ("RECONCILE_EVERY", "30d")],
    )
    .await;
    let (status, started) = app.admin_post("/sync", json!(null)).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["started_by"], "backoffice");
    let started_at = Instant::now();
    let finished = loop {
        let (status, now) = app.admin_get("/sync").await;
        assert_eq!(status, 200);
        if now["running"] == false {
            break now;
        }
        assert!(started_at.elapsed() < Duration::from_secs(10), "{now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["outcome"], "succeeded", "{finished}");
    assert_eq!(finished["report"]["products"], 0);
    assert!(finished["last_succeeded_at"].as_i64().unwrap() >= unix_now() - 10);
    assert!(
        finished["last_succeeded_report"]
            .as_str()
            .unwrap()
            .starts_with("0 products, 0 prices"),
        "{finished}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route_the_api_answers() {
    let app = admin_app().await;
    let document: Value = app
        .client
        .get(format!("{}/admin/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 12, "{:?}", paths.keys());
    assert!(document["components"]["securitySchemes"]["admin_token"].is_object());
    // Each documented route is answered by its handler, not by the unknown-path answer.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "nothing")
                .trim_start_matches("/admin/api/v1")
                .to_owned();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .admin(method.clone(), &concrete)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(
                body["error"]["code"] != "not_found",
                "{method} {path}: {status} {body}"
            );
        }
    }
}

/// The document checked by an OpenAPI validator (`openapi-spec-validator` from PyPI,
/// installed by `.ci/run`).
#[tokio::test]
#[ignore = "needs openapi-spec-validator; .ci/run installs it and runs this"]
async fn the_openapi_document_validates() {
    let app = admin_app().await;
    let text = app
        .client
        .get(format!("{}/admin/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let checked = std::process::Command::new("openapi-spec-validator")
        .arg(file.path())
        .output()
        .expect("openapi-spec-validator is installed (pip install openapi-spec-validator)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(checked.status.success(), "{said}");
}
