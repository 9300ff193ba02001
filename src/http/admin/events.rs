//! Stripe webhook events that failed, with their last error, and retrying one now.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::idempotency::once;
use super::ok;
use crate::http::state::AppState;
use crate::store::Inbox;

#[derive(Serialize, ToSchema)]
pub struct FailingEvent {
    id: String,
    r#type: String,
    /// When Stripe created the event.
    created: i64,
    received_at: i64,
    attempts: i64,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FailingEvents {
    data: Vec<FailingEvent>,
}

/// Events that failed at least once and are not processed yet, oldest first. The worker
/// retries each with backoff (up to an hour apart).
#[utoipa::path(
    get,
    operation_id = "list_failing_events",
    path = "/admin/api/v1/events",
    tag = "events",
    responses((status = 200, body = FailingEvents))
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let events = state.store.failed_events().await?;
    Ok(ok(&FailingEvents {
        data: events
            .into_iter()
            .map(|e| FailingEvent {
                id: e.id,
                r#type: e.event_type,
                created: e.created,
                received_at: e.received_at,
                attempts: e.attempts,
                last_error: e.last_error,
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Retrying {
    id: String,
    /// `queued`: the worker takes it now.
    status: &'static str,
}

/// Retries a waiting event now instead of at its next backoff.
#[utoipa::path(
    post,
    operation_id = "retry_event",
    path = "/admin/api/v1/events/{id}/retry",
    tag = "events",
    params(
        ("id" = String, Path, description = "evt_…"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer"),
    ),
    responses(
        (status = 202, body = Retrying),
        (status = 404, body = ErrorBody, description = "`event_not_found`: no such event is waiting"),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    once(state.store.as_ref(), &request, b"", || async {
        if !state.ledger.retry_event(&id).await? {
            return Err(ApiError::not_found(
                "event_not_found",
                format!("No event {id} is waiting to be processed."),
            ));
        }
        if let Some(webhooks) = &state.webhooks {
            webhooks.wake.notify_one();
        }
        let retrying = Retrying {
            id: id.into_inner(),
            status: "queued",
        };
        Ok((StatusCode::ACCEPTED, json!(retrying)))
    })
    .await
}
