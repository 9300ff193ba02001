//! `POST /authorize/{token}`: Function's authorization call, on the path of every prediction.
//! Any other method or path under `/authorize` gets the same 404 as a wrong token.

use std::borrow::Cow;
use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

use actix_web::http::Method;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::BODY_TIMEOUT;
use super::error::JsonError;
use super::state::AppState;
use crate::clock::unix_now;
use crate::domain::AccessKeyError;
use crate::gate::{DenyReason, Links};
use crate::metrics::Outcome;

/// Matched by a plain prefix: a `{token}` segment would cost a regular-expression match per
/// prediction.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/authorize").default_service(web::to(authorize)));
}

/// Function sends two short strings; anything much bigger is not from Function.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Function's two strings, borrowed from the body where they need no unescaping. Unknown
/// fields are ignored: Function may add some.
#[derive(Deserialize)]
pub struct AuthorizeBody<'a> {
    #[serde(borrow)]
    pub tag: Cow<'a, str>,
    #[serde(rename = "accessKey", borrow)]
    pub access_key: Cow<'a, str>,
}

impl<'a> AuthorizeBody<'a> {
    /// Reads the body, or says precisely what is wrong with it, in words for the person who
    /// made the prediction (`links` say where to get a key).
    pub fn parse(body: &'a [u8], links: &Links) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| diagnose(body, &e, links))
    }
}

/// Every prediction passes through here, so nothing is logged or traced per request at the
/// default level: each answer is counted in the metrics (by outcome, with its latency), and
/// the access log (`RUST_LOG=tollbooth::access=debug`) is opt-in, for debugging, and never
/// shows the path (it holds the token), the key or the body.
pub async fn authorize(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let token = request
        .match_info()
        .unprocessed()
        .strip_prefix('/')
        .filter(|token| !token.is_empty() && !token.contains('/'));
    if request.method() != Method::POST
        || !token.is_some_and(|token| state.authorize_token.matches(token))
    {
        return Err(JsonError::NotFound);
    }
    let started = Instant::now();
    let (outcome, answer) = answer(&request, payload, &state).await;
    state.metrics.authorization(outcome, started.elapsed());
    answer
}

/// The answer to a call with the right token, and how it is counted.
async fn answer(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> (Outcome, Result<HttpResponse, JsonError>) {
    let input = match read_body(request, payload).await {
        Ok(body) => body,
        Err(e) => return (Outcome::BAD_REQUEST, Err(e)),
    };
    let input = match AuthorizeBody::parse(&input, &state.links) {
        Ok(input) => input,
        Err(message) => return (Outcome::BAD_REQUEST, Err(JsonError::Rejected(message))),
    };
    let now = unix_now();
    let decision = if state.gate.is_loaded() {
        state.gate.authorize(&input.tag, &input.access_key, now)
    } else {
        match state
            .gate
            .authorize_cold(state.store.as_ref(), &input.tag, &input.access_key, now)
            .await
        {
            Ok(decision) => decision,
            Err(e) => return (Outcome::FAILED, Err(e.into())),
        }
    };
    match decision {
        Ok(_) => {
            access_log(200, "allow");
            (
                Outcome::ALLOWED,
                Ok(HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"{"authorized":true}"#)),
            )
        }
        Err(reason) => {
            access_log(400, reason.label());
            (
                Outcome::refused(&reason),
                Err(JsonError::Rejected(
                    reason.message(&input.tag, &state.links),
                )),
            )
        }
    }
}

/// The body, whole, if it is JSON of a sensible size that arrived in time.
async fn read_body(request: &HttpRequest, payload: web::Payload) -> Result<Bytes, JsonError> {
    if !is_json(request) {
        return Err(JsonError::UnsupportedMediaType(
            "The request must be JSON (Content-Type: application/json) with tag and accessKey."
                .into(),
        ));
    }
    // Function sends its body with its headers; a body still on its way after the deadline is
    // not Function's (and only a caller with the token gets this far).
    // It has almost always come whole with the headers: the deadline's timer is set only when
    // it has not.
    let mut read = pin!(payload.to_bytes_limited(MAX_BODY_BYTES));
    let body = match poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        Poll::Ready(read) => read,
        Poll::Pending => tokio::time::timeout(BODY_TIMEOUT, read)
            .await
            .map_err(|_| JsonError::Rejected("The request body did not arrive in time.".into()))?,
    };
    body.map_err(|_| {
        JsonError::PayloadTooLarge(format!(
            "The request body is larger than {} KiB; send only tag and accessKey.",
            MAX_BODY_BYTES / 1024
        ))
    })?
    .map_err(|_| JsonError::Rejected("The request body could not be read.".into()))
}

fn access_log(status: u16, outcome: &'static str) {
    tracing::debug!(
        target: "tollbooth::access",
        route = "/authorize/{token}",
        status,
        outcome,
        "Authorization answered"
    );
}

fn is_json(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Says precisely what is wrong with a body the fast path could not read.
fn diagnose(body: &[u8], error: &serde_json::Error, links: &Links) -> String {
    for field in ["tag", "accessKey"] {
        if error
            .to_string()
            .contains(&format!("duplicate field `{field}`"))
        {
            return format!("The request has {field} more than once; send it once.");
        }
    }
    let object = match serde_json::from_slice::<Value>(body) {
        Err(_) => return "The request body is not valid JSON.".into(),
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return "The request body must be a JSON object with tag and accessKey.".into();
        }
    };
    let tag = match object.get("tag") {
        Some(Value::String(tag)) => tag.as_str(),
        None | Some(Value::Null) => return "The request has no predictor tag (tag).".into(),
        Some(_) => return "The predictor tag (tag) must be a string.".into(),
    };
    match object.get("accessKey") {
        None | Some(Value::Null) => DenyReason::Key(AccessKeyError::Empty).message(tag, links),
        Some(_) => "The access key (accessKey) must be a string.".into(),
    }
}
