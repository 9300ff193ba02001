//! `POST /checkout`: a Stripe Checkout Session for one plan, then off to Stripe to pay.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::see_other;
use crate::clock::unix_now;
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::store::Mirror;

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
    if !state.sessions.same_origin(&request) {
        return Err(PageError::Forbidden(
            "This form must be sent from this site.".into(),
        ));
    }
    let syncer = state.syncer.as_ref().ok_or(PageError::NotFound)?;
    let plan = state
        .store
        .catalog()
        .await?
        .into_iter()
        .find(|p| p.price_id == form.price)
        .ok_or_else(|| {
            PageError::BadRequest(
                "That plan is not on sale any more. Please choose another.".into(),
            )
        })?;
    let subscription = plan.price_type == "recurring";
    let mut line = json!({ "price": plan.price_id });
    // Stripe refuses a quantity on metered prices.
    if plan.usage_type.as_deref() != Some("metered") {
        line["quantity"] = json!(1);
    }
    let mut params = json!({
        "mode": if subscription { "subscription" } else { "payment" },
        "line_items": [line],
        "success_url": format!("{}/welcome?session_id={{CHECKOUT_SESSION_ID}}", state.public_url),
        "cancel_url": format!("{}/", state.public_url),
    });
    let signed_in = state
        .sessions
        .read(&request, unix_now())
        .filter(|s| s.customer_id.starts_with("cus_"));
    match signed_in {
        Some(session) => params["customer"] = json!(session.customer_id),
        None if !subscription => params["customer_creation"] = json!("always"),
        None => {}
    }
    let created = syncer.api().post("/checkout/sessions", &params).await?;
    let url = created["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("Stripe returned a Checkout Session without a url"))?;
    Ok(see_other(url))
}
