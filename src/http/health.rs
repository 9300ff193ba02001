use actix_web::{HttpResponse, web};

use super::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the database answers and the ledger view is loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.ping().await;
    let loaded = state.gate.is_loaded();
    let body = serde_json::json!({
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "view": if loaded { "loaded" } else { "loading" },
        "keys": state.gate.key_count(),
    });
    match (&database, loaded) {
        (Ok(()), true) => HttpResponse::Ok().json(body),
        _ => {
            if let Err(e) = database {
                tracing::warn!(error = ?e, "Readiness check: database unreachable");
            }
            HttpResponse::ServiceUnavailable().json(body)
        }
    }
}
