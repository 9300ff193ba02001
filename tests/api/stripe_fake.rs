//! A Stripe API for tests on wiremock, answering with objects built from Stripe's own
//! fixtures, and webhook deliveries signed the way Stripe signs them.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tollbooth::clock::unix_now;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockGuard, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, spawn_app_with};

pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";
pub const CUSTOMER: &str = "cus_Test0001";
pub const PRODUCT: &str = "prod_Test0001";
pub const PRICE: &str = "price_Test0001";
const DAY: i64 = 86_400;

static FIXTURES: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stripe-objects.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures are present"))
        .expect("fixtures are JSON")
});

/// A copy of Stripe's example object of this type.
pub fn fixture(object: &str) -> Value {
    FIXTURES[object].clone()
}

/// The signature header Stripe would send, computed here from the secret with a plain HMAC.
pub fn sign(body: &str, secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

pub fn event(id: &str, event_type: &str, object: Value) -> Value {
    let mut event = fixture("event");
    event["id"] = json!(id);
    event["type"] = json!(event_type);
    event["created"] = json!(unix_now());
    event["data"] = json!({ "object": object });
    event
}

pub fn product(metadata: Value) -> Value {
    let mut p = fixture("product");
    p["id"] = json!(PRODUCT);
    p["name"] = json!("Pro");
    p["active"] = json!(true);
    p["metadata"] = metadata;
    p
}

pub fn price(one_time: bool, metadata: Value) -> Value {
    let mut p = fixture("price");
    p["id"] = json!(PRICE);
    p["product"] = json!(PRODUCT);
    p["active"] = json!(true);
    p["metadata"] = metadata;
    if one_time {
        p["type"] = json!("one_time");
        p["recurring"] = Value::Null;
    } else {
        p["type"] = json!("recurring");
        p["recurring"] = json!({"interval": "month", "interval_count": 1, "usage_type": "licensed", "meter": null, "trial_period_days": null});
    }
    p
}

/// A subscription of `CUSTOMER` to `PRICE` whose period started `started_days_ago`.
pub fn subscription(status: &str, started_days_ago: i64) -> Value {
    let now = unix_now();
    let start = now - started_days_ago * DAY;
    let mut item = fixture("subscription_item");
    item["id"] = json!("si_Test0001");
    item["price"] = price(false, json!({}));
    item["plan"] = Value::Null;
    item["quantity"] = json!(1);
    item["current_period_start"] = json!(start);
    item["current_period_end"] = json!(start + 30 * DAY);
    let mut s = fixture("subscription");
    s["id"] = json!("sub_Test0001");
    s["customer"] = json!(CUSTOMER);
    s["status"] = json!(status);
    s["created"] = json!(start);
    s["cancel_at_period_end"] = json!(false);
    s["cancel_at"] = Value::Null;
    s["canceled_at"] = Value::Null;
    s["ended_at"] = Value::Null;
    s["items"] = json!({"object": "list", "data": [item], "has_more": false});
    if status == "canceled" {
        s["canceled_at"] = json!(now - 60);
        s["ended_at"] = json!(now - 60);
    }
    s
}

pub fn list(data: Vec<Value>) -> Value {
    json!({"object": "list", "data": data, "has_more": false, "url": "/v1/x"})
}

pub struct FakeStripe {
    pub server: MockServer,
}

impl FakeStripe {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    /// The customer, the product, and no checkout sessions.
    pub async fn customer_basics(&self, product_metadata: Value) {
        let mut customer = fixture("customer");
        customer["id"] = json!(CUSTOMER);
        customer["email"] = json!("payer@example.com");
        self.get(&format!("/v1/customers/{CUSTOMER}"), customer)
            .await;
        self.get(
            &format!("/v1/products/{PRODUCT}"),
            product(product_metadata),
        )
        .await;
    }

    /// The customer's first fetch answers `status` with a Stripe error; later ones succeed.
    pub async fn customer_fails_once(&self, status: u16) {
        let error = json!({"error": {"type": "api_error", "message": "try again"}});
        Mock::given(method("GET"))
            .and(path(format!("/v1/customers/{CUSTOMER}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(error))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    pub async fn no_sessions(&self) {
        self.get("/v1/checkout/sessions", list(vec![])).await;
    }

    /// What `GET /v1/subscriptions?customer=…&status=all` answers while the guard lives.
    pub async fn subscriptions(&self, subscriptions: Vec<Value>) -> MockGuard {
        Mock::given(method("GET"))
            .and(path("/v1/subscriptions"))
            .and(query_param("customer", CUSTOMER))
            .and(query_param("status", "all"))
            .respond_with(ResponseTemplate::new(200).set_body_json(list(subscriptions)))
            .mount_as_scoped(&self.server)
            .await
    }

    /// How many requests this fake Stripe received for `at`.
    pub async fn requests_to(&self, at: &str) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path() == at).count()
    }

    pub async fn get(&self, at: &str, body: Value) {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.server)
            .await;
    }
}

pub async fn spawn_app_with_stripe(stripe: &FakeStripe) -> TestApp {
    spawn_app_with_stripe_and(stripe, &[]).await
}

/// The app selling through `stripe`, with `extra` settings.
pub async fn spawn_app_with_stripe_and(stripe: &FakeStripe, extra: &[(&str, &str)]) -> TestApp {
    let uri = stripe.server.uri();
    let mut settings = vec![
        ("STRIPE_SECRET_KEY", "sk_test_tollbooth"),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("STRIPE_API_BASE", uri.as_str()),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

impl TestApp {
    pub async fn post_webhook(&self, body: &str, signature: Option<String>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/stripe/webhook", self.address))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.expect("Failed to post a webhook")
    }

    /// Delivers an event signed with the test secret; asserts it was acknowledged.
    pub async fn deliver(&self, event: &Value) {
        let body = event.to_string();
        let response = self
            .post_webhook(&body, Some(sign(&body, WEBHOOK_SECRET, unix_now())))
            .await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Polls until `key` gets `status` for a tag; returns how long it took.
    pub async fn wait_for_status(&self, key: &str, status: u16, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (got, body) = self.authorize_json("@acme/sdxl", key).await;
            if got == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "still {got} {body} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
