//! Signing in by email, for a customer who lost every key: ask for a link, follow it, confirm.
//! The form answers the same for every address; following the link shows a button rather than
//! signing in at once, so a mail scanner that opens links does not use it up.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::account::to_account;
use super::html;
use crate::http::error::PageError;
use crate::http::state::AppState;

#[derive(Template)]
#[template(path = "email_link.html")]
struct LinkPage {
    /// What happened, for the person who asked.
    message: String,
    /// The token to confirm, on the page a link opens.
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct LinkForm {
    email: String,
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// `POST /account/email-link`: sends a sign-in link to the account with this email, if there is
/// one, and says the same either way.
pub async fn ask(
    request: HttpRequest,
    form: web::Form<LinkForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    state.sessions.require_same_origin(&request)?;
    if !state.ledger.emails() {
        return Err(PageError::NotFound);
    }
    let email = form.email.trim().to_lowercase();
    if email.len() > 254 || !email.contains('@') {
        return Err(PageError::BadRequest(
            "Give the email address your account uses.".into(),
        ));
    }
    let now = Instant::now();
    let client = state
        .client_address
        .of(request.headers(), request.peer_addr());
    let limited = client
        .map_or(Ok(()), |c| state.link_limits.per_client.try_count(c, now))
        .and_then(|()| state.link_limits.per_email.try_count(email.clone(), now));
    if let Err(wait) = limited {
        let page = LinkPage {
            message: format!(
                "Too many sign-in links were asked for. Try again in {} minutes.",
                wait.div_ceil(60)
            ),
            token: None,
        };
        let mut response = html(&page, true)?;
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return Ok(response);
    }
    state.ledger.send_sign_in_link(&email).await?;
    let page = LinkPage {
        message: "If an account uses that address, a sign-in link is on its way to it. The \
                  link works once, within 15 minutes."
            .into(),
        token: None,
    };
    html(&page, true)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// `GET /account/email-sign-in?token=…`: the page a link opens, with a button to sign in.
pub async fn open(
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if !state.ledger.emails() {
        return Err(PageError::NotFound);
    }
    let page = LinkPage {
        message: "Sign in to your account with the link you were sent.".into(),
        token: Some(query.token.clone().unwrap_or_default()),
    };
    html(&page, true)
}

/// `POST /account/email-sign-in`: uses the link and signs in.
pub async fn confirm(
    request: HttpRequest,
    form: web::Form<TokenForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    state.sessions.require_same_origin(&request)?;
    let Some(session) = state.ledger.sign_in_with_link(&form.token).await? else {
        let page = LinkPage {
            message: "This sign-in link has expired or was used already. Ask for a new one \
                      below the sign-in form."
                .into(),
            token: None,
        };
        let mut response = html(&page, true)?;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    to_account(&state, &session)
}
