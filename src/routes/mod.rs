//! Every route of the service, registered in one place.

mod authorize;
mod health;
mod webhook;

use actix_web::{HttpResponse, web};

pub use authorize::MAX_BODY_BYTES;

/// The URL map.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize/{token}", web::post().to(authorize::authorize))
        .service(
            web::resource("/stripe/webhook")
                .app_data(web::PayloadConfig::new(webhook::MAX_EVENT_BYTES))
                .route(web::post().to(webhook::stripe_webhook)),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    not_found_response()
}

/// The one 404 answer, for unknown paths and for a wrong authorize token alike.
pub fn not_found_response() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("Not Found")
}
