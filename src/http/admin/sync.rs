//! The full reconcile with Stripe, started from the back office (the same as `tollbooth sync`
//! and the periodic job), and its progress on this instance.

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::Admin;
use super::auth::TokenLabel;
use super::error::{ApiError, ErrorBody};
use super::idempotency::once;
use super::ok;
use crate::clock::unix_now;
use crate::domain::Actor;
use crate::http::state::AppState;
use crate::ledger::Ledger;

/// The last reconcile started through the API on this instance.
#[derive(Default, Clone)]
pub struct Runs(Arc<Mutex<SyncStatus>>);

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct SyncStatus {
    /// A reconcile started through the API is running on this instance.
    pub running: bool,
    pub started_at: Option<i64>,
    /// The token label that started it.
    pub started_by: Option<String>,
    /// What it is reading now: `products`, `prices`, `customers`, …
    pub step: Option<String>,
    pub finished_at: Option<i64>,
    /// `succeeded` or `failed`, once finished.
    pub outcome: Option<&'static str>,
    /// What the finished run synced.
    pub report: Option<SyncCounts>,
    pub error: Option<String>,
    /// When the last reconcile succeeded on any instance (the API's, the periodic one, or
    /// `tollbooth sync`).
    pub last_succeeded_at: Option<i64>,
    /// What that reconcile synced, in words.
    pub last_succeeded_report: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncCounts {
    pub products: usize,
    pub prices: usize,
    pub customers: usize,
    pub subscriptions: usize,
    pub purchases: usize,
    /// Products or prices Stripe no longer has, marked inactive.
    pub deactivated: usize,
}

impl Runs {
    /// Starts a reconcile as `label` in the background unless one is running; returns whether
    /// it started.
    pub fn start(&self, ledger: Arc<Ledger>, label: String) -> bool {
        let mut started = false;
        self.update(|s| {
            if !s.running {
                started = true;
                *s = SyncStatus {
                    running: true,
                    started_at: Some(unix_now()),
                    started_by: Some(label.clone()),
                    ..SyncStatus::default()
                };
            }
        });
        if !started {
            return false;
        }
        let progress_runs = self.clone();
        let finished_runs = self.clone();
        tokio::spawn(Actor::Admin(label).acting(async move {
            let progress = move |step: &str| {
                let step = step.to_owned();
                progress_runs.update(|s| s.step = Some(step));
            };
            let result = ledger.reconcile(&progress).await;
            finished_runs.update(|s| {
                s.running = false;
                s.step = None;
                s.finished_at = Some(unix_now());
                match result {
                    Ok(r) => {
                        s.outcome = Some("succeeded");
                        s.report = Some(SyncCounts {
                            products: r.products,
                            prices: r.prices,
                            customers: r.customers,
                            subscriptions: r.subscriptions,
                            purchases: r.purchases,
                            deactivated: r.deactivated,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "Reconcile started by an admin failed");
                        s.outcome = Some("failed");
                        s.error = Some(format!("{e:#}"));
                    }
                }
            });
        }));
        true
    }

    pub fn now(&self) -> SyncStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut SyncStatus)) {
        change(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

pub async fn with_last_success(state: &AppState, mut status: SyncStatus) -> SyncStatus {
    match state.ledger.last_reconcile().await {
        Ok(last) => {
            status.last_succeeded_at = last.as_ref().map(|(at, _)| *at);
            status.last_succeeded_report = last.map(|(_, report)| report).filter(|r| !r.is_empty());
        }
        Err(e) => tracing::warn!(error = ?e, "Failed to read when the last reconcile ran"),
    }
    status
}

/// Starts a reconcile with Stripe in the background (or answers the one already running).
#[utoipa::path(
    post,
    operation_id = "start_sync",
    path = "/admin/api/v1/sync",
    tag = "sync",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 202, body = SyncStatus, description = "Started, or already running"),
        (status = 409, body = ErrorBody, description = "`stripe_not_configured`"),
    )
)]
pub async fn start(
    state: web::Data<AppState>,
    admin: web::Data<Admin>,
    request: HttpRequest,
) -> HttpResponse {
    let label = request
        .extensions()
        .get::<TokenLabel>()
        .map(|l| l.0.clone())
        .unwrap_or_default();
    once(state.store.as_ref(), &request, b"", || async {
        if !state.ledger.selling() {
            return Err(ApiError::conflict(
                "stripe_not_configured",
                "STRIPE_SECRET_KEY is not set: there is nothing to sync from.",
            ));
        }
        admin.sync.start(Arc::clone(&state.ledger), label.clone());
        let runs = &admin.sync;
        let status = with_last_success(&state, runs.now()).await;
        Ok((StatusCode::ACCEPTED, json!(status)))
    })
    .await
}

/// The reconcile started through the API on this instance, running or last finished.
#[utoipa::path(
    get,
    operation_id = "sync_status",
    path = "/admin/api/v1/sync",
    tag = "sync",
    responses((status = 200, body = SyncStatus))
)]
pub async fn status(
    state: web::Data<AppState>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, ApiError> {
    let runs = &admin.sync;
    Ok(ok(&with_last_success(&state, runs.now()).await))
}
