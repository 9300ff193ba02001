//! The HTTP edge: each resource's module registers its own routes, merged here into the URL
//! map. Handlers turn requests into calls on the gate (the hot path) or the ledger's use cases,
//! and their errors into [`error::JsonError`] or [`error::PageError`].

pub mod admin;
pub mod authorize;
mod chart;
mod dashboard;
pub mod error;
mod health;
pub mod limits;
pub mod metrics;
pub mod middleware;
mod pages;
pub mod session;
pub mod state;
mod webhook;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};

pub use state::{AppState, Webhooks};

/// How long a request's body may take to arrive, whole, on every route. Function's calls,
/// Stripe's events and the pages' forms are a few kilobytes; a client that sends a byte a
/// second is not one of them.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL map. The authorize route comes first: every prediction passes through it, and
/// no middleware of its own wraps it (it keeps its own body deadline and its opt-in access
/// log). The pages and the webhook, which take bodies from anyone, go through admission and
/// get a span per request (`middleware`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    authorize::routes(cfg);
    health::routes(cfg);
    cfg.service(
        web::scope("")
            .wrap(from_fn(middleware::admission))
            .wrap(from_fn(middleware::request_span))
            .configure(admin::routes)
            .configure(dashboard::routes)
            .configure(pages::routes)
            .configure(webhook::routes)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> HttpResponse {
    error::not_found()
}
