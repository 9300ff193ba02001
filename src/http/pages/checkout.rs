//! `POST /checkout`: a Stripe Checkout Session for one plan, then off to Stripe to pay.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::see_other;
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::ledger::CheckoutError;

#[derive(Deserialize)]
pub struct CheckoutForm {
    price: String,
}

#[tracing::instrument(name = "checkout", skip_all)]
pub async fn checkout(
    request: HttpRequest,
    form: web::Form<CheckoutForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    state.sessions.require_same_origin(&request)?;
    let signed_in = super::account::signed_in(&request, &state).await?;
    let customer = signed_in.as_ref().map(|s| s.customer_id.as_str());
    match state.ledger.start_checkout(&form.price, customer).await {
        Ok(url) => Ok(see_other(&url)),
        Err(CheckoutError::NotSelling) => Err(PageError::NotFound),
        Err(CheckoutError::NotOnSale) => Err(PageError::BadRequest(
            "That plan is not on sale any more. Please choose another.".into(),
        )),
        Err(CheckoutError::Unexpected(e)) => Err(e.into()),
    }
}
