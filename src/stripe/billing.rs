//! The Stripe calls behind the customer's pages: creating a Checkout Session, reading one back
//! after payment, and opening the Billing Portal. Requests are built here from typed
//! arguments, so no page builds Stripe's JSON.

use serde_json::{Value, json};

use super::client::{ApiError, StripeApi, stripe_id};
use crate::domain::{CheckoutSessionId, PriceType, StripeCustomerId, UsageType};

/// A Checkout Session to create for one price.
pub struct NewCheckout<'a> {
    pub price_id: &'a str,
    pub price_type: PriceType,
    pub usage_type: UsageType,
    /// The price is 0: a free plan, taken without a card.
    pub free: bool,
    /// The customer paying, when they are signed in; otherwise Stripe makes one.
    pub customer: Option<&'a StripeCustomerId>,
    pub success_url: String,
    pub cancel_url: String,
}

/// Creates the session; returns the URL to send the customer to.
pub async fn create_checkout(api: &StripeApi, new: &NewCheckout<'_>) -> Result<String, ApiError> {
    let subscription = new.price_type == PriceType::Recurring;
    let mut line = json!({ "price": new.price_id });
    // Stripe refuses a quantity on metered prices.
    if new.usage_type != UsageType::Metered {
        line["quantity"] = json!(1);
    }
    let mut params = json!({
        "mode": if subscription { "subscription" } else { "payment" },
        "line_items": [line],
        "success_url": new.success_url,
        "cancel_url": new.cancel_url,
    });
    // A free subscription asks for no card (Stripe collects one only when there is
    // something to pay).
    if subscription && new.free {
        params["payment_method_collection"] = json!("if_required");
    }
    match new.customer {
        Some(customer) => params["customer"] = json!(customer.as_ref()),
        // A subscription always makes its customer; a payment only when asked to.
        None if !subscription => params["customer_creation"] = json!("always"),
        None => {}
    }
    let path = "/checkout/sessions";
    url_of(path, &api.post(path, &params).await?)
}

/// Where a Checkout Session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Complete and paid (or nothing to pay): access may be given.
    Paid,
    /// Complete, with an asynchronous payment still on its way.
    Processing,
    Expired,
    /// Not finished yet.
    Open,
}

pub struct CheckoutSession {
    pub state: SessionState,
    /// The customer who paid (Stripe sets it once the session is complete).
    pub customer: Option<String>,
}

/// Reads a session back; [`ApiError::NotFound`] if Stripe has no such session.
pub async fn checkout_session(
    api: &StripeApi,
    id: &CheckoutSessionId,
) -> Result<CheckoutSession, ApiError> {
    let session = api
        .get(&format!("/checkout/sessions/{}", id.as_ref()), &json!({}))
        .await?;
    let paid = matches!(
        session["payment_status"].as_str(),
        Some("paid" | "no_payment_required")
    );
    let state = match (session["status"].as_str(), paid) {
        (Some("complete"), true) => SessionState::Paid,
        (Some("complete"), false) => SessionState::Processing,
        (Some("expired"), _) => SessionState::Expired,
        _ => SessionState::Open,
    };
    Ok(CheckoutSession {
        state,
        customer: stripe_id(&session["customer"]).map(str::to_owned),
    })
}

/// A Billing Portal session for the customer; returns its URL.
pub async fn billing_portal(
    api: &StripeApi,
    customer: &StripeCustomerId,
    return_url: &str,
) -> Result<String, ApiError> {
    let path = "/billing_portal/sessions";
    let params = json!({ "customer": customer.as_ref(), "return_url": return_url });
    url_of(path, &api.post(path, &params).await?)
}

fn url_of(path: &str, created: &Value) -> Result<String, ApiError> {
    created["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Failed {
            path: path.to_owned(),
            message: "Stripe answered without a url".into(),
        })
}
