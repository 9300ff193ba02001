//! `GET /healthz` (the process answers) and `GET /readyz` (each part behind the hot path
//! works), both within a second whatever the database does.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::state::AppState;
use crate::clock::unix_now;

/// How long the readiness check waits for the database: a health check with a timeout of
/// a second must get an answer, not a timeout.
const DATABASE_WAIT: Duration = Duration::from_millis(700);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database answers, the ledger view is loaded and kept current, and counted
/// use is being written. A `503` names each part that is not working (`failing`).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let now = unix_now();
    let database = match tokio::time::timeout(DATABASE_WAIT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "Readiness check: database unreachable");
            "unreachable"
        }
        Err(_) => "no answer within 0.7 s",
    };
    let loaded = state.gate.is_loaded();
    let view = state.health.view();
    let usage = state.health.usage();
    let ago = |at: Option<i64>| at.map(|t| now - t);
    let mut failing = Vec::new();
    if database != "ok" {
        failing.push("database");
    }
    if !loaded || view.failing_since.is_some() {
        failing.push("view");
    }
    if usage.failing_since.is_some() {
        failing.push("usage_writes");
    }
    let body = json!({
        "database": database,
        "view": match (loaded, view.failing_since) {
            (false, _) => "loading",
            (true, None) => "loaded",
            (true, Some(_)) => "stale: refreshing fails",
        },
        "view_checked_s_ago": ago(view.last_ok),
        "usage_writes": if usage.failing_since.is_some() { "failing" } else { "ok" },
        "usage_writes_failing_for_s": ago(usage.failing_since),
        "last_usage_write_s_ago": ago(usage.last_ok),
        "keys": state.gate.key_count(),
        "failing": failing,
    });
    if failing.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
