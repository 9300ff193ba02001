//! Every route of the service, registered in one place.

mod account;
mod assets;
mod authorize;
mod checkout;
mod health;
pub mod page;
mod pricing;
mod webhook;
mod welcome;

use actix_web::{HttpResponse, web};

/// The URL map.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // First, and matched by a plain prefix: every prediction passes through here, and a
    // `{token}` segment would cost a regular-expression match per request.
    cfg.service(web::scope("/authorize").default_service(web::to(authorize::authorize)))
        .route("/", web::get().to(pricing::pricing))
        .route("/checkout", web::post().to(checkout::checkout))
        .route("/welcome", web::get().to(welcome::welcome))
        .route("/account", web::get().to(account::show))
        .route("/account/sign-in", web::post().to(account::sign_in))
        .route("/account/sign-out", web::post().to(account::sign_out))
        .route("/account/keys", web::post().to(account::create_key))
        .route(
            "/account/keys/{id}/revoke",
            web::post().to(account::revoke_key),
        )
        .route("/account/billing", web::post().to(account::billing))
        .route("/static/style.css", web::get().to(assets::style))
        .route("/static/copy.js", web::get().to(assets::copy_script))
        .service(
            web::resource("/stripe/webhook")
                .app_data(web::PayloadConfig::new(webhook::MAX_EVENT_BYTES))
                .route(web::post().to(webhook::stripe_webhook)),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(not_found));
}

/// The authorize route's pattern for logs (a prefix scope has none of its own); the path
/// itself carries the secret token and is never logged.
pub fn authorize_pattern(path: &str) -> Option<String> {
    (path == "/authorize" || path.starts_with("/authorize/")).then(|| "/authorize/{token}".into())
}

async fn not_found() -> HttpResponse {
    not_found_response()
}

/// The one 404 answer, for unknown paths and for a wrong authorize token alike.
pub fn not_found_response() -> HttpResponse {
    page::not_found()
}
