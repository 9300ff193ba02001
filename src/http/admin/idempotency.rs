//! `Idempotency-Key` on the admin API's POSTs: the first request with a key runs and its answer
//! is kept for 24 hours; a retry with the same key and the same request gets that answer (with
//! `Idempotent-Replayed: true`) and nothing is done twice, so a back office may retry "issue a
//! key" after a timeout without making two keys.
//!
//! What is kept reveals neither: the row is found by a hash of the token's label and the key,
//! and the answer (which may hold the new access key) is sealed with ChaCha20-Poly1305 under a
//! key derived from the Idempotency-Key, which only the caller holds.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest as _, Sha256};

use super::auth::TokenLabel;
use super::error::ApiError;
use crate::clock::unix_now;
use crate::domain::{hex, unhex};
use crate::store::{Claim, Idempotency};

/// What a handler answers: a status and a JSON body.
pub type Answer = Result<(StatusCode, serde_json::Value), ApiError>;

/// Runs `work` once per `Idempotency-Key` (when the request has one) and answers.
pub async fn once<F, Fut>(
    store: &dyn Idempotency,
    request: &HttpRequest,
    body: &[u8],
    work: F,
) -> HttpResponse
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Answer>,
{
    let Some(key) = request.headers().get("idempotency-key") else {
        return respond(work().await);
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k,
        _ => {
            return respond(Err(ApiError::invalid(
                "invalid_idempotency_key",
                "The Idempotency-Key header must be 1 to 255 visible ASCII characters (a random UUID is best).",
            )));
        }
    };
    let label = request
        .extensions()
        .get::<TokenLabel>()
        .map(|l| l.0.clone())
        .unwrap_or_default();
    let secrets = Secrets::new(&label, key);
    let fingerprint = hex(&Sha256::new()
        .chain_update(request.method().as_str())
        .chain_update(b" ")
        .chain_update(request.path())
        .chain_update(b"\n")
        .chain_update(body)
        .finalize());
    let claim = match store.claim(&secrets.id, &fingerprint, unix_now()).await {
        Ok(claim) => claim,
        Err(e) => return respond(Err(ApiError::internal(&e))),
    };
    match claim {
        Claim::New => {}
        Claim::Running => {
            return respond(Err(ApiError::conflict(
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still running; retry in a moment.",
            )));
        }
        Claim::Mismatch => {
            return respond(Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request (path or body); use a new key for a new request.",
            )));
        }
        Claim::Done { status, answer } => {
            let opened = secrets
                .open(&answer)
                .and_then(|body| serde_json::from_slice(&body).ok());
            let Some(body) = opened else {
                let e = anyhow::anyhow!("a kept idempotent answer could not be opened");
                return respond(Err(ApiError::internal(&e)));
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json(status, &body);
            response.headers_mut().insert(
                "idempotent-replayed".parse().expect("a header name"),
                actix_web::http::header::HeaderValue::from_static("true"),
            );
            return response;
        }
    }
    let answer = work().await;
    let (status, body) = match &answer {
        Ok((status, body)) => (*status, body.clone()),
        Err(e) => (e.status, e.body()),
    };
    // A failure on our side did nothing (each use case writes in one transaction): let the
    // retry run. Every other answer is kept.
    let kept = if status.is_server_error() {
        store.forget(&secrets.id).await
    } else {
        store
            .finish(
                &secrets.id,
                status.as_u16(),
                &secrets.seal(&body.to_string()),
            )
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = ?e, "Failed to keep an idempotent answer");
    }
    respond(answer)
}

fn respond(answer: Answer) -> HttpResponse {
    match answer {
        Ok((status, body)) => json(status, &body),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// The row's id and the answer's sealing key, both derived from the token's label and the
/// Idempotency-Key (so two tokens' keys never meet).
struct Secrets {
    id: String,
    seal: [u8; 32],
}

impl Secrets {
    fn new(label: &str, key: &str) -> Self {
        let derive = |purpose: &str| -> [u8; 32] {
            Sha256::new()
                .chain_update(purpose)
                .chain_update([0])
                .chain_update(label)
                .chain_update([0])
                .chain_update(key)
                .finalize()
                .into()
        };
        Self {
            id: hex(&derive("tollbooth idempotency id")),
            seal: derive("tollbooth idempotency seal"),
        }
    }

    fn cipher(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.seal).expect("a 32-byte key"))
    }

    /// Hex of a random nonce and the sealed text (with its tag).
    fn seal(&self, text: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let mut sealed = text.as_bytes().to_vec();
        self.cipher()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.id.as_bytes()),
                &mut sealed,
            )
            .expect("an answer far below ChaCha20's limit");
        let mut out = hex(&nonce);
        out.push_str(&hex(&sealed));
        out
    }

    fn open(&self, stored: &str) -> Option<Vec<u8>> {
        let bytes = unhex(stored)?;
        let (nonce, sealed) = bytes.split_at_checked(12)?;
        let mut sealed = sealed.to_vec();
        let opened = self
            .cipher()
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(self.id.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        Some(opened.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_opens_only_under_its_own_idempotency_key_and_token() {
        let secrets = Secrets::new("backoffice", "4f1d-retry");
        let sealed = secrets.seal(r#"{"key":"tb_secret"}"#);
        assert!(!sealed.contains("tb_secret"));
        assert_eq!(secrets.open(&sealed).unwrap(), br#"{"key":"tb_secret"}"#);
        assert!(
            Secrets::new("backoffice", "4f1d-retrx")
                .open(&sealed)
                .is_none()
        );
        assert!(Secrets::new("ci", "4f1d-retry").open(&sealed).is_none());
        assert_ne!(secrets.id, Secrets::new("ci", "4f1d-retry").id);
        let mut tampered = sealed.clone();
        tampered.replace_range(30..32, if &sealed[30..32] == "00" { "01" } else { "00" });
        assert!(secrets.open(&tampered).is_none());
    }
}
