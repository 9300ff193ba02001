//! `Stripe-Signature` verification, on the raw body, before anything is parsed or stored.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::domain::unhex;

/// Why a webhook was refused. Stripe shows the message in the Dashboard's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header (expected t=… and v1=…)")]
    Malformed,
    #[error("signature timestamp is outside the tolerance; check the server clock")]
    Stale,
    #[error("no signature matches any configured webhook secret")]
    NoMatch,
}

/// Accepts the body if any `v1` value of the header is the HMAC-SHA256 of `"{t}.{body}"`
/// under any of the secrets (so the owner can roll them), and `t` is within `tolerance`
/// seconds of `now`. Comparisons are constant-time.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    tolerance: i64,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => {
                if let Some(bytes) = unhex(hex) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed outside this code base, with Python's standard library:
    // hmac.new(b"whsec_test_secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"customer.created"}"#;
    const T: i64 = 1_700_000_000;
    const V1: &str = "7401f12dfbd370e571f0ed15746eb48bff16d798a9b8f1fc8c91034db4bb4698";

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn the_independent_vector_verifies_and_any_change_breaks_it() {
        let header = format!("t={T},v1={V1}");
        let s = secrets(&[SECRET]);
        assert_eq!(verify(Some(&header), BODY, &s, 300, T + 10), Ok(()));
        let mut tampered = BODY.to_vec();
        tampered[2] = b'X';
        assert_eq!(
            verify(Some(&header), &tampered, &s, 300, T),
            Err(SignatureError::NoMatch)
        );
        let wrong = secrets(&["whsec_other"]);
        assert_eq!(
            verify(Some(&header), BODY, &wrong, 300, T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn any_v1_value_and_any_secret_may_match() {
        let header = format!("t={T},v1={},v0=ignored,v1={V1}", "00".repeat(32));
        let rolled = secrets(&["whsec_new_secret", SECRET]);
        assert_eq!(verify(Some(&header), BODY, &rolled, 300, T), Ok(()));
    }

    #[test]
    fn header_shapes_are_checked_before_any_hmac() {
        let s = secrets(&[SECRET]);
        assert_eq!(verify(None, BODY, &s, 300, T), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some("garbage"), BODY, &s, 300, T),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("t=1,v0=ab"), BODY, &s, 300, T),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("v1=abcd"), BODY, &s, 300, T),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn an_old_timestamp_is_refused() {
        let header = format!("t={T},v1={V1}");
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&[SECRET]), 300, T + 301),
            Err(SignatureError::Stale)
        );
    }
}
