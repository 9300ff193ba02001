//! The two ways a request fails, and which to use where:
//!
//! - [`JsonError`] for the machine-facing routes (`/authorize`, `/stripe/webhook`): a JSON
//!   body `{"error": message}`, the shape Function relays to the person who made the
//!   prediction and Stripe shows in its delivery log.
//! - [`PageError`] for the HTML pages: the error page in the site's layout, with a title and
//!   a message saying what happened and what to do.
//!
//! Both keep 500s opaque to people (the cause chain goes to the log), and both answer a wrong
//! path or a wrong authorize token with the same [`not_found`] page. Messages written for the
//! CLI never reach either: the use cases' errors are turned into these at each route.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

/// An error of a JSON route. 4xx variants carry a message written for the person who will
/// read it; `Unexpected` answers an opaque 500 and sends its cause chain to the log.
#[derive(thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Identical to the answer for a path that does not exist.
    #[error("Not Found")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl std::fmt::Debug for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unexpected(e) => write!(f, "{e:?}"),
            other => write!(f, "{other}"),
        }
    }
}

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Rejected(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::NotFound => not_found(),
            Self::Unexpected(e) => {
                tracing::error!(error = ?e, "Request failed");
                json_error(
                    self.status_code(),
                    "Something went wrong on our side. Please try again in a moment.",
                )
            }
            other => json_error(other.status_code(), &other.to_string()),
        }
    }
}

/// `{"error": message}`, the shape Function relays to the caller.
fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

/// An error of an HTML page: each renders the error page in the site's layout.
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

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
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
