//! The account page's sign-in: a signed, HttpOnly, SameSite=Lax cookie naming the customer and
//! the key they signed in with, and CSRF tokens derived from it for every state-changing form.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::{HOST, ORIGIN, REFERER};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::PageError;

const COOKIE: &str = "tb_session";
/// Sessions last a week; signing in again is one paste of a key.
const LIFETIME: i64 = 7 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub customer_id: String,
    pub key_id: String,
    expires: i64,
}

pub struct Sessions {
    secret: SecretString,
    secure: bool,
    public_origin: String,
}

impl Sessions {
    /// `secure` when the service is reached over HTTPS (`PUBLIC_URL`).
    pub fn new(secret: SecretString, public_url: &str) -> Self {
        let origin_end = public_url
            .find("://")
            .and_then(|i| public_url[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(public_url.len());
        Self {
            secret,
            secure: public_url.starts_with("https://"),
            public_origin: public_url[..origin_end].to_owned(),
        }
    }

    fn sign(&self, text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn start(&self, customer_id: &str, key_id: &str, now: i64) -> Cookie<'static> {
        let body = format!("{customer_id}.{key_id}.{}", now + LIFETIME);
        let value = format!("{body}.{}", self.sign(&body));
        Cookie::build(COOKIE, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(CookieDuration::seconds(LIFETIME))
            .finish()
    }

    pub fn end(&self) -> Cookie<'static> {
        let mut cookie = Cookie::build(COOKIE, "")
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .finish();
        cookie.make_removal();
        cookie
    }

    /// The session in the request's cookie, if its signature holds and it has not expired.
    pub fn read(&self, request: &HttpRequest, now: i64) -> Option<Session> {
        let cookie = request.cookie(COOKIE)?;
        let (body, signature) = cookie.value().rsplit_once('.')?;
        if !bool::from(self.sign(body).as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let mut parts = body.splitn(3, '.');
        let session = Session {
            customer_id: parts.next()?.to_owned(),
            key_id: parts.next()?.to_owned(),
            expires: parts.next()?.parse().ok()?,
        };
        (session.expires > now).then_some(session)
    }

    pub fn csrf_token(&self, session: &Session) -> String {
        self.sign(&format!(
            "csrf.{}.{}.{}",
            session.customer_id, session.key_id, session.expires
        ))
    }

    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        self.csrf_token(session)
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }

    /// Refuses a form sent from another site (see [`Self::same_origin`]).
    pub fn require_same_origin(&self, request: &HttpRequest) -> Result<(), PageError> {
        if self.same_origin(request) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "This form must be sent from this site.".into(),
            ))
        }
    }

    /// A POST from a page of another site is refused: the `Origin` (or, failing that, the
    /// `Referer`) must be this service, by `PUBLIC_URL` or by the `Host` it was reached at.
    pub fn same_origin(&self, request: &HttpRequest) -> bool {
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let Some(origin) = header(ORIGIN).or_else(|| header(REFERER)) else {
            // Browsers send Origin on every cross-site POST; its absence is not cross-site.
            return true;
        };
        let host_origin = header(HOST).map(|host| {
            let scheme = if self.secure { "https" } else { "http" };
            format!("{scheme}://{host}")
        });
        let matches = |candidate: &str| {
            origin == candidate
                || origin
                    .strip_prefix(candidate)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        matches(&self.public_origin) || host_origin.as_deref().is_some_and(matches)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(
            SecretString::from("test-secret".to_owned()),
            "https://tb.example",
        )
    }

    #[test]
    fn a_signed_cookie_reads_back_and_a_tampered_one_does_not() {
        let s = sessions();
        let cookie = s.start("cus_1", "key_1", 1_000);
        assert!(cookie.http_only().unwrap() && cookie.secure().unwrap());
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        let request = TestRequest::default()
            .cookie(cookie.clone())
            .to_http_request();
        let session = s.read(&request, 1_001).expect("valid session");
        assert_eq!(session.customer_id, "cus_1");
        assert!(s.read(&request, 1_000 + LIFETIME + 1).is_none(), "expired");
        let forged = Cookie::new(COOKIE, cookie.value().replace("cus_1", "cus_2"));
        let request = TestRequest::default().cookie(forged).to_http_request();
        assert!(s.read(&request, 1_001).is_none(), "forged");
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let s = sessions();
        let a = Session {
            customer_id: "cus_1".into(),
            key_id: "key_1".into(),
            expires: 9,
        };
        let b = Session {
            customer_id: "cus_1".into(),
            key_id: "key_2".into(),
            expires: 9,
        };
        assert!(s.csrf_ok(&a, &s.csrf_token(&a)));
        assert!(!s.csrf_ok(&b, &s.csrf_token(&a)));
        assert!(!s.csrf_ok(&a, ""));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let s = sessions();
        let from = |origin: &str| {
            TestRequest::post()
                .insert_header((ORIGIN, origin))
                .insert_header((HOST, "internal:8080"))
                .to_http_request()
        };
        assert!(s.same_origin(&from("https://tb.example")));
        assert!(s.same_origin(&from("https://internal:8080")));
        assert!(!s.same_origin(&from("https://evil.example")));
        assert!(!s.same_origin(&from("https://tb.example.evil.example")));
    }
}
