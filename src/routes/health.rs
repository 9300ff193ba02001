use actix_web::{HttpResponse, web};

use crate::startup::AppState;

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
