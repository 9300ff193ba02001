//! What wraps every request: admission (a deadline on every body, and a cap on the pages and
//! the webhook in flight, so slow clients cannot take the authorize route's room), the
//! security headers, and a span naming the route.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage as _, HttpResponse};
use futures_util::Stream;
use tokio::time::Sleep;
use tracing::Instrument as _;

use super::BODY_TIMEOUT;
use super::state::AppState;

/// Requests to the pages and the webhook handled at once; one more is answered `503` at once
/// and its connection closed, so a flood of slow bodies holds at most this many connections
/// (for `BODY_TIMEOUT` at most) and the authorize route keeps its room.
pub const PAGES_AT_ONCE: usize = 256;

/// Admits a request to the pages or the webhook: within the cap, its body under the deadline.
/// (The authorize route is not wrapped: it reads its own body under `BODY_TIMEOUT`.)
pub async fn admission(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("the app has its state")
        .clone();
    let Ok(_permit) = state.pages_in_flight.try_acquire() else {
        let busy = HttpResponse::ServiceUnavailable()
            .insert_header(("Connection", "close"))
            .insert_header(("Retry-After", "1"))
            .body("Too many requests at once; try again in a moment.");
        return Ok(request.into_response(busy).map_into_right_body());
    };
    let payload = request.take_payload();
    request.set_payload(Payload::Stream {
        payload: Box::pin(Deadline {
            inner: payload,
            timer: Box::pin(tokio::time::sleep(BODY_TIMEOUT)),
        }),
    });
    Ok(next.call(request).await?.map_into_left_body())
}

/// A body that ends in an error once its deadline passes.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<Sleep>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Sent with every response. Scripts and styles come only from this service; no page may be
/// framed; no Referer leaves for another site (welcome URLs carry a session id), while
/// same-site form posts keep their `Origin`, which the CSRF check reads.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}

/// A span per request to the pages and the webhook naming the matched route pattern, with the
/// response status. Built only when INFO is enabled. (The authorize route has none: see its
/// access log.)
pub async fn request_span(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !tracing::enabled!(tracing::Level::INFO) {
        return next.call(request).await;
    }
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let response = next.call(request).instrument(span.clone()).await;
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    span.record("status", status.as_u16());
    response
}
