//! Who may use the admin API: a bearer token from `ADMIN_TOKEN`, compared in constant time,
//! whose label names the actor in the audit log. Failed attempts are counted per client
//! address; past the limit that address is answered `429` until its window ends, so a token
//! cannot be guessed at speed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError as _, web};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::config::AdminToken;
use crate::domain::{Actor, hex};
use crate::http::limits::{ClientAddress, Windows};

/// Failed attempts an address may make in a window.
pub const FAILURES_ALLOWED: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The token's label, for the handlers (put in the request's extensions once it is checked).
#[derive(Debug, Clone)]
pub struct TokenLabel(pub String);

pub struct Tokens {
    /// Each token's label and the SHA-256 of its secret.
    tokens: Vec<(String, [u8; 32])>,
    client: ClientAddress,
    failures: Windows<IpAddr>,
}

impl Tokens {
    pub fn new(tokens: &[AdminToken], client_ip_header: Option<&str>) -> Self {
        Self {
            tokens: tokens
                .iter()
                .map(|t| {
                    let digest = Sha256::digest(t.secret.expose_secret().as_bytes()).into();
                    (t.label.clone(), digest)
                })
                .collect(),
            client: ClientAddress::new(client_ip_header),
            failures: Windows::new(FAILURES_ALLOWED, FAILURE_WINDOW),
        }
    }

    /// The label of the token `candidate` is, comparing with every token in constant time.
    pub fn label_of(&self, candidate: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        let mut found = None;
        for (label, token) in &self.tokens {
            if bool::from(digest.ct_eq(token)) {
                found = Some(label.as_str());
            }
        }
        found
    }

    /// Whether the token with this label and SHA-256 (hex) is still configured: a dashboard
    /// session lasts only as long as the token it was started with.
    pub fn still_configured(&self, label: &str, digest_hex: &str) -> bool {
        self.tokens
            .iter()
            .any(|(l, d)| l == label && bool::from(hex(d).as_bytes().ct_eq(digest_hex.as_bytes())))
    }

    /// SHA-256 (hex) of a token, as dashboard sessions keep it.
    pub fn digest_hex(token: &str) -> String {
        hex(&Sha256::digest(token.as_bytes()))
    }

    /// The client's address (see [`ClientAddress`]).
    pub fn client(
        &self,
        headers: &header::HeaderMap,
        peer: Option<std::net::SocketAddr>,
    ) -> Option<IpAddr> {
        self.client.of(headers, peer)
    }

    /// Seconds until the address may try again, when it has used up its failures.
    pub fn locked_for(&self, client: Option<IpAddr>, now: Instant) -> Option<u64> {
        self.failures.locked_for(&client?, now)
    }

    pub fn failed(&self, client: Option<IpAddr>, now: Instant) {
        if let Some(client) = client {
            self.failures.count(client, now);
        }
    }
}

/// Lets a request with a valid admin token through, as that token's actor; answers `401`
/// (with `WWW-Authenticate`) without one, `429` to an address that failed too often, and the
/// site's 404 to every admin path when the API is off.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(admin) = request.app_data::<web::Data<super::Admin>>().cloned() else {
        let off = crate::http::error::not_found();
        return Ok(request.into_response(off).map_into_right_body());
    };
    let now = Instant::now();
    let client = admin.tokens.client(request.headers(), request.peer_addr());
    if let Some(wait) = admin.tokens.locked_for(client, now) {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "Too many requests with a wrong admin token from this address; try again in {wait} s."
            ),
        );
        let mut response = error.error_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        return Ok(request.into_response(response).map_into_right_body());
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let label = bearer.and_then(|token| admin.tokens.label_of(token));
    let Some(label) = label else {
        admin.tokens.failed(client, now);
        let message = if bearer.is_some() {
            "The admin token is not valid."
        } else {
            "Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`."
        };
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).error_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"tollbooth admin\""),
        );
        return Ok(request.into_response(response).map_into_right_body());
    };
    let label = label.to_owned();
    request.extensions_mut().insert(TokenLabel(label.clone()));
    let response = Actor::Admin(label).acting(next.call(request)).await?;
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn tokens() -> Tokens {
        let token = |label: &str, secret: &str| AdminToken {
            label: label.into(),
            secret: SecretString::from(secret.to_owned()),
        };
        Tokens::new(
            &[
                token("backoffice", "0123456789abcdef0123"),
                token("ci", "fedcba9876543210fedc"),
            ],
            None,
        )
    }

    #[test]
    fn a_token_is_known_by_its_whole_secret_and_named_by_its_label() {
        let tokens = tokens();
        assert_eq!(tokens.label_of("0123456789abcdef0123"), Some("backoffice"));
        assert_eq!(tokens.label_of("fedcba9876543210fedc"), Some("ci"));
        assert_eq!(tokens.label_of("0123456789abcdef012"), None);
        assert_eq!(tokens.label_of(""), None);
    }

    #[test]
    fn an_address_is_locked_after_its_failures_until_the_window_ends() {
        let tokens = tokens();
        let client = Some("192.0.2.7".parse().unwrap());
        let other = Some("192.0.2.8".parse().unwrap());
        let start = Instant::now();
        for _ in 0..FAILURES_ALLOWED - 1 {
            tokens.failed(client, start);
        }
        assert_eq!(tokens.locked_for(client, start), None);
        tokens.failed(client, start);
        assert_eq!(tokens.locked_for(client, start), Some(60));
        assert_eq!(tokens.locked_for(other, start), None, "per address");
        let later = start + FAILURE_WINDOW;
        assert_eq!(tokens.locked_for(client, later), None);
        tokens.failed(client, later);
        assert_eq!(tokens.locked_for(client, later), None, "a new window");
    }
}
