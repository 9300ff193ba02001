//! The owner's dashboard (`/admin`), server-rendered: sign in with an admin token, read the
//! overview (use and refusals per day, revenue, top customers), find a customer and act for
//! them (issue and revoke keys, give and end grants), retry failing webhook events and start a
//! reconcile. No action needs JavaScript. On only when `ADMIN_TOKEN` is set, as the admin API.
//!
//! Sessions are kept server-side (`admin_sessions`), in a cookie signed, HttpOnly,
//! SameSite=Strict and sent to `/admin` only; every form carries a CSRF token and must come from
//! this site. A session ends on sign-out, after 12 hours, or when its token leaves ADMIN_TOKEN.

mod audit;
mod customers;
mod overview;
mod webhooks;

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::admin::Admin;
use super::admin::auth::Tokens;
use super::error::PageError;
use super::pages::{html, see_other};
use super::state::AppState;
use crate::clock::unix_now;
use crate::domain::random_base62;
use crate::store::{AdminSession, AdminSessions};

/// How long a dashboard sign-in lasts.
const SESSION_LIFETIME: i64 = 12 * 3_600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(overview::show))
        .route("/admin/sign-in", web::post().to(sign_in))
        .route("/admin/sign-out", web::post().to(sign_out))
        .route("/admin/customers", web::get().to(customers::list))
        .route("/admin/customers/{id}", web::get().to(customers::show))
        .route(
            "/admin/customers/{id}/keys",
            web::post().to(customers::issue_key),
        )
        .route(
            "/admin/customers/{id}/grants",
            web::post().to(customers::grant),
        )
        .route(
            "/admin/keys/{id}/revoke",
            web::post().to(customers::revoke_key),
        )
        .route("/admin/keys/{id}/roll", web::post().to(customers::roll_key))
        .route("/admin/keys/{id}/cap", web::post().to(customers::cap_key))
        .route(
            "/admin/grants/{id}/end",
            web::post().to(customers::end_grant),
        )
        .route("/admin/webhooks", web::get().to(webhooks::show))
        .route("/admin/audit", web::get().to(audit::show))
        .route("/admin/events/{id}/retry", web::post().to(webhooks::retry))
        .route("/admin/sync", web::post().to(webhooks::sync));
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "admin/signin.html")]
struct SignInPage<'a> {
    message: Option<&'a str>,
}

/// The signed-in owner: their session, and the CSRF token for the page's forms.
pub struct Owner {
    pub session: AdminSession,
    pub csrf: String,
}

impl Owner {
    /// The audit log's actor for what this owner does.
    fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::Admin(self.session.label.clone())
    }
}

/// The admin API's state, or the site's 404 while the dashboard is off.
fn admin(request: &HttpRequest) -> Result<web::Data<Admin>, PageError> {
    request
        .app_data::<web::Data<Admin>>()
        .cloned()
        .ok_or(PageError::NotFound)
}

/// The owner signed in with this request's cookie, if any: a live session whose token is still
/// configured.
async fn signed_in(
    request: &HttpRequest,
    state: &AppState,
    admin: &Admin,
) -> Result<Option<Owner>, PageError> {
    let Some(id) = state.sessions.admin_session_id(request) else {
        return Ok(None);
    };
    let Some(session) = state.store.live_admin_session(&id, unix_now()).await? else {
        return Ok(None);
    };
    if !admin
        .tokens
        .still_configured(&session.label, &session.token_digest)
    {
        return Ok(None);
    }
    let csrf = state.sessions.admin_csrf(&session.id);
    Ok(Some(Owner { session, csrf }))
}

/// A page for the signed-in owner, or the sign-in page.
enum Gate {
    In(web::Data<Admin>, Owner),
    Out(HttpResponse),
}

async fn page_gate(request: &HttpRequest, state: &AppState) -> Result<Gate, PageError> {
    let admin = admin(request)?;
    match signed_in(request, state, &admin).await? {
        Some(owner) => Ok(Gate::In(admin, owner)),
        None => Ok(Gate::Out(html(&SignInPage { message: None }, true)?)),
    }
}

/// The owner behind a form: signed in, the form from this site, its CSRF token right.
async fn form_owner(
    request: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<(web::Data<Admin>, Owner), PageError> {
    let admin = admin(request)?;
    state.sessions.require_same_origin(request)?;
    let Some(owner) = signed_in(request, state, &admin).await? else {
        return Err(PageError::Forbidden(
            "Your dashboard session has ended; sign in again.".into(),
        ));
    };
    if !state.sessions.admin_csrf_ok(&owner.session.id, csrf) {
        return Err(PageError::Forbidden(
            "This form has expired; reload the page and try again.".into(),
        ));
    }
    Ok((admin, owner))
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn sign_in(
    request: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let admin = admin(&request)?;
    state.sessions.require_same_origin(&request)?;
    let now = Instant::now();
    let client = admin.tokens.client(request.headers(), request.peer_addr());
    if let Some(wait) = admin.tokens.locked_for(client, now) {
        let message = format!("Too many wrong tokens from this address; try again in {wait} s.");
        let mut response = html(
            &SignInPage {
                message: Some(&message),
            },
            true,
        )?;
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return Ok(response);
    }
    let token = form.token.trim();
    let Some(label) = admin.tokens.label_of(token) else {
        admin.tokens.failed(client, now);
        let mut response = html(
            &SignInPage {
                message: Some("That is not one of the admin tokens (ADMIN_TOKEN)."),
            },
            true,
        )?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    let at = unix_now();
    let session = AdminSession {
        id: format!("ads_{}", random_base62(32)),
        label: label.to_owned(),
        token_digest: Tokens::digest_hex(token),
        created_at: at,
        expires_at: at + SESSION_LIFETIME,
    };
    state.store.start_admin_session(&session).await?;
    let mut response = see_other("/admin");
    response
        .add_cookie(&state.sessions.admin_cookie(&session.id, SESSION_LIFETIME))
        .map_err(|e| anyhow::anyhow!("Failed to set the dashboard cookie: {e}"))?;
    Ok(response)
}

async fn sign_out(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (_, owner) = form_owner(&request, &state, &form.csrf).await?;
    state
        .store
        .end_admin_session(&owner.session.id, unix_now())
        .await?;
    let mut response = see_other("/admin");
    response
        .add_cookie(&state.sessions.end_admin())
        .map_err(|e| anyhow::anyhow!("Failed to clear the dashboard cookie: {e}"))?;
    Ok(response)
}

/// `2026-12-02 14:05` UTC, or `never`.
fn when(at: Option<i64>) -> String {
    at.map_or_else(|| "never".into(), crate::domain::calendar::date_time)
}

/// A form's optional number: empty is none; anything else must be a whole number.
fn number(field: &str, text: Option<&str>) -> Result<Option<u64>, PageError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| {
            PageError::BadRequest(format!("{field} must be a whole number, not {t:?}."))
        }),
    }
}
