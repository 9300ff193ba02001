//! The account page's sign-in cookie: the id of a session kept server-side (the ledger's),
//! signed, HttpOnly, SameSite=Lax, so that signing out ends every copy of it; and CSRF tokens
//! derived from the session for every state-changing form.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::{HOST, ORIGIN, REFERER};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::PageError;

use crate::ledger::{SESSION_LIFETIME, Session};

const COOKIE: &str = "tb_session";
const ADMIN_COOKIE: &str = "tb_admin";

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

    pub(crate) fn sign(&self, text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The cookie of a session that has started.
    pub fn cookie(&self, session: &Session) -> Cookie<'static> {
        let value = format!("{}.{}", session.id, self.sign(&session.id));
        Cookie::build(COOKIE, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(CookieDuration::seconds(SESSION_LIFETIME))
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

    /// The id of the session in the request's cookie, if its signature holds; whether the
    /// session is still live is the ledger's to say.
    pub fn session_id(&self, request: &HttpRequest) -> Option<String> {
        let cookie = request.cookie(COOKIE)?;
        let (id, signature) = cookie.value().rsplit_once('.')?;
        bool::from(self.sign(id).as_bytes().ct_eq(signature.as_bytes())).then(|| id.to_owned())
    }

    /// The dashboard's cookie: the id of an admin session, signed, HttpOnly, sent only to
    /// `/admin` and only from this site's own pages (SameSite=Strict).
    pub fn admin_cookie(&self, id: &str, lifetime: i64) -> Cookie<'static> {
        let value = format!("{id}.{}", self.sign(&format!("admin.{id}")));
        Cookie::build(ADMIN_COOKIE, value)
            .path("/admin")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .max_age(CookieDuration::seconds(lifetime))
            .finish()
    }

    pub fn end_admin(&self) -> Cookie<'static> {
        let mut cookie = Cookie::build(ADMIN_COOKIE, "")
            .path("/admin")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .finish();
        cookie.make_removal();
        cookie
    }

    /// The admin session id in the request's cookie, if its signature holds.
    pub fn admin_session_id(&self, request: &HttpRequest) -> Option<String> {
        let cookie = request.cookie(ADMIN_COOKIE)?;
        let (id, signature) = cookie.value().rsplit_once('.')?;
        let expected = self.sign(&format!("admin.{id}"));
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes())).then(|| id.to_owned())
    }

    /// The CSRF token of an admin session's forms.
    pub fn admin_csrf(&self, session_id: &str) -> String {
        self.sign(&format!("admin-csrf.{session_id}"))
    }

    pub fn admin_csrf_ok(&self, session_id: &str, token: &str) -> bool {
        self.admin_csrf(session_id)
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }

    pub fn csrf_token(&self, session: &Session) -> String {
        self.sign(&format!("csrf.{}", session.id))
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

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            customer_id: "cus_1".into(),
            key_id: Some("key_1".into()),
            created_at: 1_000,
            expires_at: 1_000 + SESSION_LIFETIME,
        }
    }

    #[test]
    fn a_signed_cookie_names_its_session_and_a_tampered_one_names_none() {
        let s = sessions();
        let cookie = s.cookie(&session("ses_1"));
        assert!(cookie.http_only().unwrap() && cookie.secure().unwrap());
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        let request = TestRequest::default()
            .cookie(cookie.clone())
            .to_http_request();
        assert_eq!(s.session_id(&request).as_deref(), Some("ses_1"));
        let forged = Cookie::new(COOKIE, cookie.value().replace("ses_1", "ses_2"));
        let request = TestRequest::default().cookie(forged).to_http_request();
        assert!(s.session_id(&request).is_none(), "forged");
    }

    #[test]
    fn the_admin_cookie_is_strict_to_admin_paths_and_not_the_customers_cookie() {
        let s = sessions();
        let cookie = s.admin_cookie("ads_1", 3_600);
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some("/admin"));
        assert!(cookie.http_only().unwrap() && cookie.secure().unwrap());
        let request = TestRequest::default()
            .cookie(cookie.clone())
            .to_http_request();
        assert_eq!(s.admin_session_id(&request).as_deref(), Some("ads_1"));
        let customer = s.cookie(&session("ads_1"));
        let as_admin = Cookie::new(ADMIN_COOKIE, customer.value().to_owned());
        let request = TestRequest::default().cookie(as_admin).to_http_request();
        assert!(
            s.admin_session_id(&request).is_none(),
            "signed for another use"
        );
        assert!(s.admin_csrf_ok("ads_1", &s.admin_csrf("ads_1")));
        assert!(!s.admin_csrf_ok("ads_2", &s.admin_csrf("ads_1")));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let s = sessions();
        let (a, b) = (session("ses_a"), session("ses_b"));
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
