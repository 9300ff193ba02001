//! Calls to the Stripe API through async-stripe's client, read back as plain JSON.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::domain::is_stripe_id;

/// The Stripe API at `STRIPE_API_BASE`, with retries on 409/429/5xx that honour
/// `Stripe-Should-Retry` (1 s, 2 s, 4 s between attempts).
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    /// Requests answered, by HTTP status (`error`: no answer), shared by every clone.
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Stripe has no {0}")]
    NotFound(String),
    /// An answer that is not a Stripe error (a non-JSON error body): a server that does not
    /// implement the endpoint, such as an emulator, or a proxy in between.
    #[error("the Stripe API at this address does not answer {0} like Stripe")]
    Unsupported(String),
    /// Stripe refused the request itself (400, 402, 422): sending it again cannot succeed.
    #[error("Stripe refused {path} ({status}): {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
    },
    #[error("Stripe request {path} failed: {message}")]
    Failed { path: String, message: String },
}

impl StripeApi {
    pub fn new(secret_key: &SecretString, api_base: &str) -> anyhow::Result<Self> {
        let client = stripe::ClientBuilder::new(secret_key.expose_secret())
            .url(format!("{}/", api_base.trim_end_matches('/')))
            .request_strategy(stripe::RequestStrategy::ExponentialBackoff(4))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| anyhow::anyhow!("Invalid Stripe configuration: {e}"))?;
        Ok(Self {
            client,
            calls: Arc::default(),
        })
    }

    /// Requests made so far, by the status of their last answer (`200`, `404`, …, or `error`
    /// when none came), for the metrics; retries within one request count once.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls
            .lock()
            .expect("Stripe calls lock poisoned")
            .clone()
    }

    /// `GET /v1{path}` with `query` (a JSON object, form-encoded the way Stripe expects).
    pub async fn get(&self, path: &str, query: &Value) -> Result<Value, ApiError> {
        let mut request = RequestBuilder::new(StripeMethod::Get, path);
        if query.as_object().is_some_and(|q| !q.is_empty()) {
            request = request.query(query);
        }
        self.send(path, request).await
    }

    /// `POST /v1{path}` with `form` (a JSON object, sent form-encoded).
    pub async fn post(&self, path: &str, form: &Value) -> Result<Value, ApiError> {
        self.send(
            path,
            RequestBuilder::new(StripeMethod::Post, path).form(form),
        )
        .await
    }

    async fn send(&self, path: &str, request: RequestBuilder) -> Result<Value, ApiError> {
        let response: Result<miniserde::json::Value, stripe::StripeError> =
            request.customize().send(&self.client).await;
        let status = match &response {
            Ok(_) => "200".to_owned(),
            Err(stripe::StripeError::Stripe(_, status)) => status.to_string(),
            Err(_) => "error".to_owned(),
        };
        *self
            .calls
            .lock()
            .expect("Stripe calls lock poisoned")
            .entry(status)
            .or_default() += 1;
        let value = response.map_err(|e| match e {
            stripe::StripeError::Stripe(_, 404) => ApiError::NotFound(path.to_owned()),
            stripe::StripeError::JSONDeserialize(_) => ApiError::Unsupported(path.to_owned()),
            ref refused @ stripe::StripeError::Stripe(_, status @ (400 | 402 | 422)) => {
                ApiError::Refused {
                    path: path.to_owned(),
                    status,
                    message: refused.to_string(),
                }
            }
            other => ApiError::Failed {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })?;
        serde_json::from_str(&miniserde::json::to_string(&value)).map_err(|e| ApiError::Failed {
            path: path.to_owned(),
            message: format!("unreadable JSON: {e}"),
        })
    }

    /// Every object of a list endpoint, page by page (100 a page).
    pub async fn list(&self, path: &str, query: Value) -> Result<Vec<Value>, ApiError> {
        let mut query = query;
        query["limit"] = json!(100);
        let mut all = Vec::new();
        loop {
            let page = self.get(path, &query).await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            let last_id = data
                .last()
                .and_then(|o| o["id"].as_str())
                .map(str::to_owned);
            all.extend(data);
            match (page["has_more"].as_bool(), last_id) {
                (Some(true), Some(last)) => query["starting_after"] = json!(last),
                _ => return Ok(all),
            }
        }
    }
}

/// A Stripe id safe to put in a path (`cus_…`, `prod_…`, `price_…`).
pub fn stripe_id(value: &Value) -> Option<&str> {
    let id = match value {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("id")?.as_str()?,
        _ => return None,
    };
    is_stripe_id(id).then_some(id)
}
