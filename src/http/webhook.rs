//! `POST /stripe/webhook`: verify, store in the inbox, acknowledge; processing happens after.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::error::JsonError;
use super::state::AppState;
use crate::clock::unix_now;
use crate::store::{Inbox, NewEvent};
use crate::stripe::signature;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/stripe/webhook")
            .app_data(web::PayloadConfig::new(MAX_EVENT_BYTES))
            .route(web::post().to(stripe_webhook)),
    );
}

/// Stripe events are small; anything far larger is not one.
const MAX_EVENT_BYTES: usize = 512 * 1024;

#[tracing::instrument(name = "stripe_webhook", skip_all, fields(event_type, duplicate))]
pub async fn stripe_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let Some(webhooks) = &state.webhooks else {
        return Err(JsonError::Rejected(
            "Webhooks are not configured on this server: set STRIPE_SECRET_KEY and \
             STRIPE_WEBHOOK_SECRET."
                .into(),
        ));
    };
    let header = request
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        header,
        &body,
        &webhooks.secrets,
        webhooks.tolerance,
        unix_now(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "Webhook refused");
        JsonError::Rejected(format!("Webhook signature refused: {e}."))
    })?;
    let envelope: Value = serde_json::from_slice(&body)
        .map_err(|_| JsonError::Rejected("The webhook body is not JSON.".into()))?;
    let (Some(id), Some(event_type)) = (envelope["id"].as_str(), envelope["type"].as_str()) else {
        return Err(JsonError::Rejected(
            "The webhook body is not a Stripe event.".into(),
        ));
    };
    tracing::Span::current().record("event_type", event_type);
    let payload = std::str::from_utf8(&body)
        .map_err(|_| JsonError::Rejected("The webhook body is not UTF-8.".into()))?;
    let inserted = state
        .store
        .insert_event(&NewEvent {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            created: envelope["created"].as_i64().unwrap_or_else(unix_now),
            payload: payload.to_owned(),
            received_at: unix_now(),
        })
        .await?;
    tracing::Span::current().record("duplicate", !inserted);
    if inserted {
        webhooks.wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true })))
}
