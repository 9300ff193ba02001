//! The customer's pages (pricing, checkout, welcome, account) and what they share:
//! rendering, redirects, and money formatting.

mod account;
mod account_keys;
mod assets;
mod checkout;
mod email_sign_in;
mod pricing;
mod welcome;

use actix_web::{HttpResponse, web};
use askama::Template;

use super::error::PageError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pricing::pricing))
        .route("/checkout", web::post().to(checkout::checkout))
        .route("/welcome", web::get().to(welcome::welcome))
        .route("/account", web::get().to(account::show))
        .route("/account/sign-in", web::post().to(account::sign_in))
        .route("/account/sign-out", web::post().to(account::sign_out))
        .route(
            "/account/sign-out-everywhere",
            web::post().to(account::sign_out_everywhere),
        )
        .route("/account/keys", web::post().to(account_keys::create_key))
        .route(
            "/account/keys/{id}/revoke",
            web::post().to(account_keys::revoke_key),
        )
        .route(
            "/account/keys/{id}/roll",
            web::post().to(account_keys::roll_key),
        )
        .route(
            "/account/keys/{id}/cap",
            web::post().to(account_keys::cap_key),
        )
        .route("/account/billing", web::post().to(account::billing))
        .route("/account/alerts", web::post().to(account::set_alerts))
        .route("/account/email-link", web::post().to(email_sign_in::ask))
        .route("/account/email-sign-in", web::get().to(email_sign_in::open))
        .route(
            "/account/email-sign-in",
            web::post().to(email_sign_in::confirm),
        )
        .route("/account/usage.csv", web::get().to(account::usage_csv))
        .route("/static/style.css", web::get().to(assets::style))
        .route("/static/copy.js", web::get().to(assets::copy_script));
}

/// A rendered page; `private` pages (keys, accounts) are never cached.
pub fn html(page: &impl Template, private: bool) -> Result<HttpResponse, PageError> {
    let body = page
        .render()
        .map_err(|e| PageError::Unexpected(anyhow::anyhow!("Failed to render a page: {e}")))?;
    let mut response = HttpResponse::Ok();
    response.content_type("text/html; charset=utf-8");
    if private {
        response.insert_header(("Cache-Control", "no-store"));
    }
    Ok(response.body(body))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .finish()
}

/// `$20.00`, `€9.50`, `¥500`, or `12.00 CHF`, from minor units.
pub fn money(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let zero_decimal = matches!(
        code.as_str(),
        "JPY" | "KRW" | "VND" | "CLP" | "PYG" | "UGX" | "XAF" | "XOF" | "ISK"
    );
    let amount = if zero_decimal {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / 100, (minor % 100).abs())
    };
    match code.as_str() {
        "USD" => format!("${amount}"),
        "EUR" => format!("€{amount}"),
        "GBP" => format!("£{amount}"),
        "JPY" => format!("¥{amount}"),
        _ => format!("{amount} {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_major_units() {
        assert_eq!(money(2000, "usd"), "$20.00");
        assert_eq!(money(950, "eur"), "€9.50");
        assert_eq!(money(500, "jpy"), "¥500");
        assert_eq!(money(1205, "chf"), "12.05 CHF");
    }
}
