//! What every page shares: rendering, the error page, and money formatting.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// Errors of the HTML pages: each renders the error page in the site's layout.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("Page not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<crate::stripe::ApiError> for PageError {
    fn from(e: crate::stripe::ApiError) -> Self {
        Self::Unexpected(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            Self::NotFound => return not_found(),
            Self::BadRequest(m) => ("That did not work", m.as_str()),
            Self::Forbidden(m) => ("Not allowed", m.as_str()),
            Self::Unexpected(e) => {
                tracing::error!(error = ?e, "Page failed");
                (
                    "Something went wrong",
                    "Something went wrong on our side. Please try again in a moment; nothing \
                     was charged twice and no key was lost.",
                )
            }
        };
        error_page(self.status_code(), title, message)
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = ErrorPage { title, message }
        .render()
        .unwrap_or_else(|_| message.to_owned());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The one 404 answer, for unknown paths and for a wrong authorize token alike.
pub fn not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
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
