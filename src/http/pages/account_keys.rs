//! The account page's key actions: a customer makes, rolls, caps and revokes their own keys.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::account::{page_with, require};
use super::{html, see_other};
use crate::domain::{Actor, Grace, KeyCap, calendar};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::ledger::{CustomerRef, IssueError, IssueRequest, KeyError, KeyRef, Revoke};

#[derive(Template)]
#[template(path = "confirm_revoke.html")]
struct ConfirmRevokePage {
    csrf: String,
    id: String,
    prefix: String,
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    csrf: String,
    name: String,
}

#[derive(Deserialize)]
pub struct RollForm {
    csrf: String,
    grace: String,
}

#[derive(Deserialize)]
pub struct CapForm {
    csrf: String,
    /// 100/day, 5000/month, 10000; empty for no cap.
    cap: String,
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    confirm: Option<String>,
}

pub async fn create_key(
    request: HttpRequest,
    form: web::Form<NewKeyForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let issued = Actor::Customer(session.customer_id.clone())
        .acting(state.ledger.issue_key(IssueRequest {
            customer: CustomerRef::Id(session.customer_id.clone()),
            name: Some(form.name.clone()),
            grant: None,
            cap: None,
        }))
        .await
        .map_err(|e| match e {
            IssueError::Unexpected(e) => PageError::Unexpected(e),
            other => PageError::BadRequest(format!("The key could not be created: {other}.")),
        })?;
    let page = page_with(&state, &session, None, Some(issued.key.as_ref().to_owned())).await?;
    html(&page, true)
}

pub async fn revoke_key(
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RevokeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let key_id = path.into_inner();
    let confirmed = form.confirm.as_deref() == Some("yes");
    match Actor::Customer(session.customer_id.clone())
        .acting(
            state
                .ledger
                .revoke_customer_key(&session.customer_id, &key_id, confirmed),
        )
        .await?
    {
        Revoke::Revoked => {}
        Revoke::NeedsConfirmation { id, prefix } => {
            let page = ConfirmRevokePage {
                csrf: state.sessions.csrf_token(&session),
                id,
                prefix,
            };
            return html(&page, true);
        }
        Revoke::NotTheirs => {
            return Err(PageError::BadRequest(
                "That key is not one of your active keys.".into(),
            ));
        }
        Revoke::NotRevoked => {
            return Err(PageError::BadRequest(
                "That key could not be revoked.".into(),
            ));
        }
    }
    let mut response = see_other("/account");
    if session.key_id.as_deref() == Some(key_id.as_str()) {
        // The key this browser signed in with is gone; so is the session.
        response
            .add_cookie(&state.sessions.end())
            .map_err(|e| anyhow::anyhow!("Failed to clear the session cookie: {e}"))?;
    }
    Ok(response)
}

/// `POST /account/keys/{id}/roll`: a new key in place of one of the customer's own, shown once;
/// the old one keeps working for the grace period chosen.
pub async fn roll_key(
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RollForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let grace = Grace::parse(&form.grace)
        .map_err(|_| PageError::BadRequest("Choose how long the old key keeps working.".into()))?;
    let key_id = path.into_inner();
    let which = KeyRef::Of {
        customer_id: &session.customer_id,
        key_id: &key_id,
    };
    let rolled = Actor::Customer(session.customer_id.clone())
        .acting(state.ledger.roll_key(which, grace, Some(&session.id)))
        .await
        .map_err(key_error)?;
    let message = match grace {
        Grace::None => "Your key was replaced; the old key stopped working now.".to_owned(),
        _ => format!(
            "Your key was replaced; the old key keeps working until {} UTC.",
            calendar::date_time(rolled.old_stops_at)
        ),
    };
    let page = page_with(
        &state,
        &session,
        Some(message),
        Some(rolled.key.as_ref().to_owned()),
    )
    .await?;
    html(&page, true)
}

/// `POST /account/keys/{id}/cap`: sets or removes one of the customer's keys' own cap.
pub async fn cap_key(
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CapForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let cap = match form.cap.trim() {
        "" => None,
        text => Some(
            KeyCap::parse(text)
                .map_err(|e| PageError::BadRequest(format!("That limit could not be set: {e}.")))?,
        ),
    };
    let key_id = path.into_inner();
    let which = KeyRef::Of {
        customer_id: &session.customer_id,
        key_id: &key_id,
    };
    Actor::Customer(session.customer_id.clone())
        .acting(state.ledger.cap_key(which, cap))
        .await
        .map_err(key_error)?;
    Ok(see_other("/account"))
}

/// A key the customer named that could not be rolled or capped, in their terms.
fn key_error(e: KeyError) -> PageError {
    match e {
        KeyError::Unexpected(e) => PageError::Unexpected(e),
        KeyError::AlreadyRolled(_) => PageError::BadRequest(
            "That key was replaced already; roll the key that replaced it.".into(),
        ),
        KeyError::NotFound(_) | KeyError::Ambiguous(..) => {
            PageError::BadRequest("That key is not one of your active keys.".into())
        }
    }
}
