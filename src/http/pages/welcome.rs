//! `GET /welcome?session_id=…`: where Stripe sends the customer after paying. The ledger
//! fulfils the session; the page reveals the session's key exactly once.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::html;
use crate::domain::{Actor, CheckoutSessionId};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::ledger::{FulfilError, Welcome};
use crate::stripe::billing::SessionState;

#[derive(Deserialize)]
pub struct WelcomeQuery {
    session_id: Option<String>,
}

pub enum WelcomeOutcome {
    NewKey(String),
    AlreadyShown,
    AddedToAccount,
    NotPaid(&'static str),
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    outcome: WelcomeOutcome,
}

#[tracing::instrument(name = "welcome", skip_all)]
pub async fn welcome(
    request: HttpRequest,
    query: web::Query<WelcomeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if !state.ledger.selling() {
        return Err(PageError::NotFound);
    }
    let session_id = query
        .session_id
        .as_deref()
        .and_then(|id| CheckoutSessionId::parse(id).ok())
        .ok_or_else(|| PageError::BadRequest("This link is missing its payment session.".into()))?;
    let signed_in = super::account::signed_in(&request, &state).await?;
    let welcome = Actor::Checkout(session_id.as_ref().to_owned())
        .acting(state.ledger.fulfil_checkout(
            &session_id,
            signed_in.as_ref().map(|s| s.customer_id.as_str()),
        ))
        .await
        .map_err(|e| match e {
            FulfilError::NotSelling => PageError::NotFound,
            FulfilError::UnknownSession => PageError::BadRequest(
                "This payment session is unknown. If you paid, sign in to your account or \
                 contact the predictor's owner."
                    .into(),
            ),
            FulfilError::Unexpected(e) => PageError::Unexpected(e),
        })?;
    let outcome = match welcome {
        Welcome::NewKey(key) => WelcomeOutcome::NewKey(key.as_ref().to_owned()),
        Welcome::AlreadyShown => WelcomeOutcome::AlreadyShown,
        Welcome::AddedToAccount => WelcomeOutcome::AddedToAccount,
        Welcome::NotPaid(state) => WelcomeOutcome::NotPaid(not_paid(state)),
    };
    html(&WelcomePage { outcome }, true)
}

fn not_paid(state: SessionState) -> &'static str {
    match state {
        SessionState::Expired => {
            "This checkout expired before it was paid. Nothing was charged; choose a plan again to buy."
        }
        SessionState::Processing => {
            "Your payment is still being processed. This page will show your key once it succeeds; reload it in a minute."
        }
        SessionState::Open | SessionState::Paid => {
            "This checkout has not been paid yet. Return to the checkout page to finish paying."
        }
    }
}
