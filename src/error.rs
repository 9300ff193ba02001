use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// Every error a route can return. 4xx variants carry a message written for the person who
/// will read it; `Unexpected` answers an opaque 500 and sends its cause chain to the log.
#[derive(thiserror::Error)]
pub enum AppError {
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

impl std::fmt::Debug for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unexpected(e) => write!(f, "{e:?}"),
            other => write!(f, "{other}"),
        }
    }
}

impl ResponseError for AppError {
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
            Self::NotFound => crate::routes::not_found_response(),
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
pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}
