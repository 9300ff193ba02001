//! `/account`: a customer signs in with one of their keys and looks after their access.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::{html, see_other};
use crate::clock::unix_now;
use crate::domain::{AccessKey, calendar, thousands};
use crate::gate::{Entitlement, Limit, Source, Status};
use crate::http::error::PageError;
use crate::http::session::Session;
use crate::http::state::AppState;
use crate::issue::{CustomerRef, IssueRequest, issue_key};
use crate::store::{Keys, RevokeOutcome};

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    message: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    csrf: String,
    email: Option<String>,
    message: Option<String>,
    new_key: Option<String>,
    plans: Vec<PlanLine>,
    keys: Vec<KeyLine>,
    billing: bool,
}

#[derive(Template)]
#[template(path = "confirm_revoke.html")]
struct ConfirmRevokePage {
    csrf: String,
    id: String,
    prefix: String,
}

struct PlanLine {
    name: String,
    status: String,
    dates: String,
    usage: String,
    ok: bool,
}

struct KeyLine {
    id: String,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
}

#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    csrf: String,
    name: String,
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    confirm: Option<String>,
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    match signed_in(&request, &state).await? {
        Some(session) => account_page(&state, &session, None, None).await,
        None => html(&SignInPage { message: None }, true),
    }
}

pub async fn sign_in(
    request: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if !state.sessions.same_origin(&request) {
        return Err(PageError::Forbidden(
            "This form must be sent from this site.".into(),
        ));
    }
    let owner = AccessKey::parse(form.key.trim())
        .ok()
        .and_then(|key| state.gate.key_owner(&key));
    let Some((key_id, customer_id)) = owner else {
        let page = SignInPage {
            message: Some("That key is not valid: it may be mistyped or revoked."),
        };
        let mut response = html(&page, true)?;
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let cookie = state.sessions.start(&customer_id, &key_id, unix_now());
    let mut response = see_other("/account");
    response
        .add_cookie(&cookie)
        .map_err(|e| anyhow::anyhow!("Failed to set the session cookie: {e}"))?;
    Ok(response)
}

pub async fn sign_out(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let _ = require(&request, &state, &form.csrf).await?;
    let mut response = see_other("/account");
    response
        .add_cookie(&state.sessions.end())
        .map_err(|e| anyhow::anyhow!("Failed to clear the session cookie: {e}"))?;
    Ok(response)
}

pub async fn create_key(
    request: HttpRequest,
    form: web::Form<NewKeyForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let issued = issue_key(
        state.store.as_ref(),
        &state.key_prefix,
        IssueRequest {
            customer: CustomerRef::Id(session.customer_id.clone()),
            name: Some(form.name.clone()),
            grant: None,
        },
        unix_now(),
    )
    .await
    .map_err(|e| match e {
        crate::issue::IssueError::Unexpected(e) => PageError::Unexpected(e),
        other => PageError::BadRequest(format!("The key could not be created: {other}.")),
    })?;
    state.gate.refresh(state.store.as_ref(), unix_now()).await?;
    account_page(&state, &session, None, Some(issued.key.as_ref().to_owned())).await
}

pub async fn revoke_key(
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RevokeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let key_id = path.into_inner();
    let keys = state.store.list_keys(Some(&session.customer_id)).await?;
    let active: Vec<_> = keys.iter().filter(|k| k.revoked_at.is_none()).collect();
    let Some(key) = active.iter().find(|k| k.id == key_id) else {
        return Err(PageError::BadRequest(
            "That key is not one of your active keys.".into(),
        ));
    };
    if active.len() == 1 && form.confirm.as_deref() != Some("yes") {
        let page = ConfirmRevokePage {
            csrf: state.sessions.csrf_token(&session),
            id: key.id.clone(),
            prefix: key.display_prefix.clone(),
        };
        return html(&page, true);
    }
    let outcome = state.store.revoke_key(&key_id, unix_now()).await?;
    state.gate.refresh(state.store.as_ref(), unix_now()).await?;
    if !matches!(outcome, RevokeOutcome::Revoked { .. }) {
        return Err(PageError::BadRequest(
            "That key could not be revoked.".into(),
        ));
    }
    let mut response = see_other("/account");
    if key_id == session.key_id {
        // The key this browser signed in with is gone; so is the session.
        response
            .add_cookie(&state.sessions.end())
            .map_err(|e| anyhow::anyhow!("Failed to clear the session cookie: {e}"))?;
    }
    Ok(response)
}

pub async fn billing(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let syncer = state.syncer.as_ref().ok_or(PageError::NotFound)?;
    if !session.customer_id.starts_with("cus_") {
        return Err(PageError::BadRequest(
            "Your access was given by the owner; there is no billing to manage.".into(),
        ));
    }
    let portal = syncer
        .api()
        .post(
            "/billing_portal/sessions",
            &json!({
                "customer": session.customer_id,
                "return_url": format!("{}/account", state.public_url),
            }),
        )
        .await?;
    let url = portal["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("Stripe returned a portal session without a url"))?;
    Ok(see_other(url))
}

/// The session, if its key is still active (revoking the key ends the session).
async fn signed_in(request: &HttpRequest, state: &AppState) -> Result<Option<Session>, PageError> {
    let Some(session) = state.sessions.read(request, unix_now()) else {
        return Ok(None);
    };
    let keys = state.store.list_keys(Some(&session.customer_id)).await?;
    let active = keys
        .iter()
        .any(|k| k.id == session.key_id && k.revoked_at.is_none());
    Ok(active.then_some(session))
}

/// A signed-in session whose form carries its CSRF token and comes from this site.
async fn require(
    request: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<Session, PageError> {
    if !state.sessions.same_origin(request) {
        return Err(PageError::Forbidden(
            "This form must be sent from this site.".into(),
        ));
    }
    let session = signed_in(request, state).await?.ok_or_else(|| {
        PageError::Forbidden("Your session has ended. Please sign in again.".into())
    })?;
    if !state.sessions.csrf_ok(&session, csrf) {
        return Err(PageError::Forbidden(
            "This form has expired. Please go back, reload the page and try again.".into(),
        ));
    }
    Ok(session)
}

async fn account_page(
    state: &AppState,
    session: &Session,
    message: Option<String>,
    new_key: Option<String>,
) -> Result<HttpResponse, PageError> {
    let now = unix_now();
    let customer = state.store.customer(&session.customer_id).await?;
    let plans = state
        .gate
        .customer(&session.customer_id, now)
        .iter()
        .map(|(e, used)| plan_line(state, e, *used, now))
        .collect();
    let keys = state
        .store
        .list_keys(Some(&session.customer_id))
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none())
        .map(|k| KeyLine {
            id: k.id,
            name: k.name.unwrap_or_else(|| "Unnamed".into()),
            prefix: k.display_prefix,
            created: calendar::date(k.created_at),
            last_used: k
                .last_used_at
                .map_or_else(|| "Never".into(), calendar::date_time),
        })
        .collect();
    let page = AccountPage {
        csrf: state.sessions.csrf_token(session),
        email: customer.and_then(|c| c.email),
        message,
        new_key,
        plans,
        keys,
        billing: state.syncer.is_some() && session.customer_id.starts_with("cus_"),
    };
    html(&page, true)
}

fn plan_line(state: &AppState, e: &Entitlement, used: u64, now: i64) -> PlanLine {
    let in_force = e.in_force(now, state.gate.past_due_grace());
    let status = match (&in_force, &e.source) {
        (Ok(()), Source::Subscription(s)) if s.status == Status::Trialing => "Trial".to_owned(),
        (Ok(()), Source::Subscription(s)) if s.status == Status::PastDue => {
            "Payment past due".to_owned()
        }
        (Ok(()), _) => "Active".to_owned(),
        (Err(reason), _) => reason.short().to_owned(),
    };
    let dates = match &e.source {
        Source::Subscription(s) if s.ended_at.get().is_some() || s.status == Status::Canceled => {
            format!(
                "Ended {}",
                calendar::date(s.ended_at().unwrap_or(s.period_end))
            )
        }
        Source::Subscription(s) if s.cancel_at_period_end => {
            format!("Ends {}", calendar::date(s.period_end))
        }
        Source::Subscription(s) => format!("Renews {}", calendar::date(s.period_end)),
        Source::Grant { expires_at } => match expires_at.get() {
            Some(at) => format!("Until {}", calendar::date(at - 1)),
            None => "No end date".to_owned(),
        },
        Source::Purchase {
            pass_expires_at, ..
        } => match pass_expires_at.get() {
            Some(at) => format!("Until {}", calendar::date(at)),
            None => "No end date".to_owned(),
        },
    };
    let usage = match e.limit {
        Limit::Unlimited if e.plan.meter.is_some() => format!(
            "{} predictions this period, billed per use",
            thousands(used)
        ),
        Limit::Unlimited => format!("{} predictions this period", thousands(used)),
        Limit::Quota { per_period, .. } => {
            format!(
                "{} of {} predictions this period",
                thousands(used),
                thousands(per_period)
            )
        }
        Limit::Credits { total } => format!(
            "{} of {} credits left",
            thousands(total.saturating_sub(used)),
            thousands(total)
        ),
    };
    PlanLine {
        name: e.plan.name.to_string(),
        status,
        dates,
        usage,
        ok: in_force.is_ok(),
    }
}
