//! Webhooks to the owner, signed the Standard Webhooks way (standardwebhooks.com): headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` = `v1,` + base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed by the bytes of `OWNER_WEBHOOK_SECRET`
//! (`whsec_` + base64), so the owner's endpoint can use any Standard Webhooks library.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

/// How long the owner's endpoint may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct OwnerWebhook {
    url: hyper::Uri,
    key: Vec<u8>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The bytes a `whsec_…` secret stands for.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).ok().filter(|key| key.len() >= 16)
}

/// `v1,<base64>`: the signature of one message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl OwnerWebhook {
    pub fn new(url: &str, secret: &SecretString) -> anyhow::Result<Self> {
        let url: hyper::Uri = url.parse().context("OWNER_WEBHOOK_URL is not a URL")?;
        let key = secret_bytes(secret.expose_secret())
            .context("OWNER_WEBHOOK_SECRET is not whsec_ followed by base64")?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { url, key, client })
    }

    /// POSTs one message; an answer other than 2xx, or none in time, is an error.
    pub async fn send(&self, id: &str, body: &str, timestamp: i64) -> anyhow::Result<()> {
        let request = hyper::Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "tollbooth")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(&self.key, id, timestamp, body))
            .body(Full::new(Bytes::from(body.to_owned())))
            .context("Failed to build the webhook request")?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .context("The owner's webhook endpoint did not answer in time")?
            .context("The owner's webhook endpoint could not be reached")?;
        let status = response.status();
        // Read (a little of) the answer so the connection can be used again.
        let _ = tokio::time::timeout(TIMEOUT, response.into_body().collect()).await;
        anyhow::ensure!(
            status.is_success(),
            "The owner's webhook endpoint answered {status}"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification, signed as it signs it.
    #[test]
    fn a_signature_matches_the_standard_webhooks_example() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
