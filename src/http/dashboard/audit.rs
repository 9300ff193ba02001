//! The audit log: every change of the ledger, newest first, by whom.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::overview::ChangeLine;
use super::{Gate, Owner, page_gate};
use crate::http::error::PageError;
use crate::http::pages::html;
use crate::http::state::AppState;
use crate::store::Audit;

/// Rows shown; older ones are read with `tollbooth audit --limit N` or an export.
const SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    owner: Owner,
    changes: Vec<ChangeLine>,
    shown: i64,
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let owner = match page_gate(&request, &state).await? {
        Gate::In(_, owner) => owner,
        Gate::Out(page) => return Ok(page),
    };
    let changes = state
        .store
        .audit_log(None, SHOWN)
        .await?
        .into_iter()
        .map(ChangeLine::from)
        .collect();
    html(
        &AuditPage {
            owner,
            changes,
            shown: SHOWN,
        },
        true,
    )
}
