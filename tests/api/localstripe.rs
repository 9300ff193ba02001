//! End to end against localstripe, a stateful Stripe emulator that sends signed webhooks.
//! `.ci/run` starts it and runs these with `--ignored`; `LOCALSTRIPE_URL` says where it is.

use std::time::Duration;

use serde_json::Value;
use tollbooth::clock::unix_now;
use tollbooth::domain::random_base62;
use tollbooth::store::{ItemRow, Keys, LedgerRows, PriceRow, Snapshot};

use crate::freshness::cli_with;
use crate::helpers::{TestDatabase, spawn_app_with};

const SECRET_KEY: &str = "sk_test_localstripe_e2e";
const WEBHOOK_SECRET: &str = "whsec_localstripe_e2e";

/// The owner, working in (local) Stripe.
struct Owner {
    base: String,
    client: reqwest::Client,
}

impl Owner {
    fn new() -> Self {
        let base = std::env::var("LOCALSTRIPE_URL")
            .expect("LOCALSTRIPE_URL must point at a running localstripe (see .ci/run)");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .expect("localstripe answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.send(reqwest::Method::POST, path, form).await
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn stripe_env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", base.to_owned()),
    ]
}

/// The customer's subscription items as a ledger holds them, each with its price.
async fn items_of(store: &dyn Snapshot, customer: &str) -> Vec<(ItemRow, Option<PriceRow>)> {
    let LedgerRows { items, prices, .. } = crate::helpers::load_ledger(store, unix_now())
        .await
        .unwrap();
    items
        .into_iter()
        .filter(|i| i.customer_id == customer)
        .map(|item| {
            let price = prices.iter().find(|p| p.id == item.price_id).cloned();
            (item, price)
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs localstripe; .ci/run starts it and runs this"]
async fn paying_in_stripe_opens_a_predictor_cancelling_closes_it_and_sync_rebuilds_the_ledger() {
    let owner = Owner::new();
    let env = stripe_env(&owner.base);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&env_refs).await;
    let hook = format!("/_config/webhooks/tollbooth_{}", random_base62(8));
    let url = format!("{}/stripe/webhook", app.address);
    owner
        .post(&hook, &[("url", &url), ("secret", WEBHOOK_SECRET)])
        .await;

    // The owner's catalog: a product whose metadata unlocks the SDXL predictors.
    let product = owner
        .post(
            "/v1/products",
            &[
                ("name", "SDXL Pro"),
                ("metadata[predictors]", "@acme/sdxl*"),
            ],
        )
        .await;
    let plan_id = format!("plan_{}", random_base62(10));
    owner
        .post(
            "/v1/plans",
            &[
                ("id", &plan_id),
                ("product", product["id"].as_str().unwrap()),
                ("amount", "2000"),
                ("currency", "usd"),
                ("interval", "month"),
            ],
        )
        .await;
    // A customer pays.
    let token = owner
        .post(
            "/v1/tokens",
            &[
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2030"),
                ("card[cvc]", "123"),
            ],
        )
        .await;
    let customer = owner
        .post(
            "/v1/customers",
            &[
                ("email", "e2e@example.com"),
                ("source", token["id"].as_str().unwrap()),
            ],
        )
        .await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let subscription = owner
        .post(
            "/v1/subscriptions",
            &[("customer", &customer_id), ("items[0][plan]", &plan_id)],
        )
        .await;
    assert_eq!(subscription["status"], "active");

    // The owner issues the customer's key from the command line.
    let out = cli_with(
        &app.db.url,
        &["keys", "issue", "--customer", &customer_id],
        &env_refs,
    )
    .await;
    let key = out.lines().last().unwrap().trim().to_owned();
    app.wait_for_status(&key, 200, Duration::from_secs(5)).await;
    let (status, body) = app.authorize_json("@acme/llama", &key).await;
    assert_eq!(status, 400, "the plan covers only @acme/sdxl*: {body}");

    // The owner cancels the subscription in Stripe; the webhook closes access.
    let sub_path = format!("/v1/subscriptions/{}", subscription["id"].as_str().unwrap());
    owner.send(reqwest::Method::DELETE, &sub_path, &[]).await;
    let closed_after = app.wait_for_status(&key, 400, Duration::from_secs(5)).await;
    let (_, body) = app.authorize_json("@acme/sdxl", &key).await;
    assert!(
        body["error"].as_str().unwrap().contains("canceled on"),
        "{body}"
    );
    assert!(
        closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );

    // `tollbooth sync` rebuilds the same ledger from an empty database.
    let fresh = TestDatabase::fresh().await;
    let report = cli_with(&fresh.url, &["sync"], &env_refs).await;
    assert!(report.contains("Synced from"), "{report}");
    let rebuilt = tollbooth::store::connect(&fresh.url).await.unwrap();
    let from_webhooks = items_of(app.store.as_ref(), &customer_id).await;
    let from_sync = items_of(rebuilt.as_ref(), &customer_id).await;
    assert_eq!(from_webhooks.len(), 1);
    assert_eq!(from_sync, from_webhooks);
    let synced_customer = rebuilt
        .customer(&customer_id)
        .await
        .unwrap()
        .expect("customer synced");
    assert_eq!(synced_customer.email.as_deref(), Some("e2e@example.com"));
}
