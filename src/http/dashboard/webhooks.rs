//! Webhooks: the events that failed, with their last error and a retry button, and the
//! reconcile: when it last succeeded, this instance's last run, and a button to start one.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{CsrfForm, Gate, Owner, form_owner, page_gate, when};
use crate::domain::calendar;
use crate::http::admin::with_last_success;
use crate::http::error::PageError;
use crate::http::pages::{html, see_other};
use crate::http::state::AppState;
use crate::store::Inbox;

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct WebhooksPage {
    owner: Owner,
    events: Vec<EventLine>,
    selling: bool,
    running: bool,
    last_success: String,
    last_report: Option<String>,
    last_run: Option<String>,
}

struct EventLine {
    id: String,
    kind: String,
    received: String,
    attempts: i64,
    error: String,
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = match page_gate(&request, &state).await? {
        Gate::In(admin, owner) => (admin, owner),
        Gate::Out(page) => return Ok(page),
    };
    let events = state
        .store
        .failed_events()
        .await?
        .into_iter()
        .map(|e| EventLine {
            id: e.id,
            kind: e.event_type,
            received: calendar::date_time(e.received_at),
            attempts: e.attempts,
            error: e.last_error.unwrap_or_default(),
        })
        .collect();
    let status = with_last_success(&state, admin.sync.now()).await;
    let last_run = status.started_at.map(|at| {
        let by = status.started_by.clone().unwrap_or_default();
        match (status.running, status.outcome, &status.report, &status.error) {
            (true, _, _, _) => format!(
                "Started {} by {by}; now reading {}.",
                calendar::date_time(at),
                status.step.clone().unwrap_or_else(|| "Stripe".into())
            ),
            (false, _, Some(r), _) => format!(
                "Started {} by {by}: {} products, {} prices, {} customers, {} subscriptions, {} purchases synced; {} marked inactive.",
                calendar::date_time(at),
                r.products,
                r.prices,
                r.customers,
                r.subscriptions,
                r.purchases,
                r.deactivated
            ),
            (false, _, _, Some(e)) => {
                format!("Started {} by {by}: failed: {e}", calendar::date_time(at))
            }
            _ => format!("Started {} by {by}.", calendar::date_time(at)),
        }
    });
    let page = WebhooksPage {
        owner,
        events,
        selling: state.ledger.selling(),
        running: status.running,
        last_success: when(status.last_succeeded_at),
        last_report: status.last_succeeded_report.clone(),
        last_run,
    };
    html(&page, true)
}

#[derive(Deserialize)]
pub struct RetryForm {
    csrf: String,
}

pub async fn retry(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, PageError> {
    let (_, _owner) = form_owner(&request, &state, &form.csrf).await?;
    if !state.ledger.retry_event(&id).await? {
        return Err(PageError::NotFound);
    }
    if let Some(webhooks) = &state.webhooks {
        webhooks.wake.notify_one();
    }
    Ok(see_other("/admin/webhooks"))
}

pub async fn sync(
    request: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = form_owner(&request, &state, &form.csrf).await?;
    if !state.ledger.selling() {
        return Err(PageError::BadRequest(
            "STRIPE_SECRET_KEY is not set: there is nothing to sync from.".into(),
        ));
    }
    admin
        .sync
        .start(Arc::clone(&state.ledger), owner.session.label.clone());
    Ok(see_other("/admin/webhooks"))
}
