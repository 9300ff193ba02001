//! `GET /welcome?session_id=…`: where Stripe sends the customer after paying. Fulfils the
//! session (the same re-fetch the webhook does; whichever comes first, the other changes
//! nothing) and reveals the session's key exactly once.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::html;
use crate::clock::unix_now;
use crate::domain::{AccessKey, random_base62};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::store::{IssueKey, Keys, NewKey};
use crate::stripe::{ApiError, stripe_id};

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
    let syncer = state.syncer.as_ref().ok_or(PageError::NotFound)?;
    let session_id = query
        .session_id
        .as_deref()
        .and_then(|id| stripe_id(&json!(id)).map(str::to_owned))
        .filter(|id| id.starts_with("cs_"))
        .ok_or_else(|| PageError::BadRequest("This link is missing its payment session.".into()))?;
    let session = match syncer
        .api()
        .get(&format!("/checkout/sessions/{session_id}"), &json!({}))
        .await
    {
        Ok(session) => session,
        Err(ApiError::NotFound(_)) => {
            return Err(PageError::BadRequest(
                "This payment session is unknown. If you paid, sign in to your account or \
                 contact the predictor's owner."
                    .into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let paid = matches!(
        session["payment_status"].as_str(),
        Some("paid" | "no_payment_required")
    );
    let outcome = match (session["status"].as_str(), paid) {
        (Some("complete"), true) => None,
        (Some("expired"), _) => Some(
            "This checkout expired before it was paid. Nothing was charged; choose a plan again to buy.",
        ),
        (Some("complete"), false) => Some(
            "Your payment is still being processed. This page will show your key once it succeeds; reload it in a minute.",
        ),
        _ => Some(
            "This checkout has not been paid yet. Return to the checkout page to finish paying.",
        ),
    };
    if let Some(why) = outcome {
        return html(
            &WelcomePage {
                outcome: WelcomeOutcome::NotPaid(why),
            },
            true,
        );
    }
    let customer_id = stripe_id(&session["customer"])
        .ok_or_else(|| anyhow::anyhow!("A paid Checkout Session has no customer"))?
        .to_owned();
    syncer.refresh_customer(&customer_id).await?;

    let now = unix_now();
    let signed_in_here = state
        .sessions
        .read(&request, now)
        .is_some_and(|s| s.customer_id == customer_id);
    let outcome = if signed_in_here {
        WelcomeOutcome::AddedToAccount
    } else {
        let key = AccessKey::generate(&state.key_prefix);
        let issue = IssueKey {
            new_customer: None,
            key: NewKey {
                id: format!("key_{}", random_base62(16)),
                customer_id: customer_id.clone(),
                key_hash: key.hash().to_hex(),
                display_prefix: key.display_prefix(),
                name: Some("First key".into()),
                created_at: now,
            },
            grant: None,
        };
        if state
            .store
            .issue_key_for_session(&session_id, &issue)
            .await?
        {
            WelcomeOutcome::NewKey(key.as_ref().to_owned())
        } else {
            WelcomeOutcome::AlreadyShown
        }
    };
    state.gate.refresh(state.store.as_ref(), now).await?;
    html(&WelcomePage { outcome }, true)
}
