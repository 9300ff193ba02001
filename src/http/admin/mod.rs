//! The admin API (`/admin/api/v1`, JSON): what the owner's back office does without a shell —
//! find customers, issue and revoke keys, give and end grants, read use (JSON or CSV), retry
//! failing webhook events, start a reconcile. On only when `ADMIN_TOKEN` is set (every admin
//! path is the site's 404 otherwise); every request needs a token ([`auth`]); every POST may
//! carry an `Idempotency-Key` ([`idempotency`]); every error is one shape ([`error`]).
//!
//! The OpenAPI document (`/admin/api/openapi.json`) is generated from the handlers'
//! `#[utoipa::path]` annotations, and the routes are registered from the same annotations
//! ([`Routes::add`]), so the document and the URL map cannot drift.

pub mod auth;
mod customers;
pub mod error;
mod events;
mod grants;
mod idempotency;
mod keys;
pub mod sync;
mod usage;

use std::sync::OnceLock;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{FromRequest, Handler, HttpResponse, Responder, web};
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use self::error::ApiError;
use crate::config::Settings;
use crate::domain::Owner;

pub use sync::{SyncStatus, with_last_success};

/// Where the API's version 1 lives.
pub const V1: &str = "/admin/api/v1";

/// Largest JSON body a POST may send.
const BODY_LIMIT: usize = 64 * 1024;

/// The admin API's state, present when `ADMIN_TOKEN` is set.
pub struct Admin {
    pub tokens: auth::Tokens,
    /// `FXN_OWNER`, which grant patterns are checked against, as the CLI does.
    pub owner: Option<Owner>,
    /// The Stripe Dashboard's customers page (test or live, from the secret key).
    stripe_dashboard: Option<&'static str>,
    /// This instance's last reconcile started through the API or the dashboard.
    pub sync: sync::Runs,
}

impl Admin {
    /// The admin API's state, or `None` when no token is configured.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        if settings.admin_tokens.is_empty() {
            return None;
        }
        let stripe_dashboard = settings.stripe_secret_key.as_ref().map(|key| {
            use secrecy::ExposeSecret as _;
            let key = key.expose_secret();
            if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
                "https://dashboard.stripe.com/customers/"
            } else {
                "https://dashboard.stripe.com/test/customers/"
            }
        });
        Some(Self {
            tokens: auth::Tokens::new(&settings.admin_tokens, settings.client_ip_header.as_deref()),
            owner: settings.owner.clone(),
            stripe_dashboard,
            sync: sync::Runs::default(),
        })
    }
}

impl Admin {
    /// The customer in the Stripe Dashboard, for a Stripe customer while Stripe is configured.
    pub fn stripe_customer_url(&self, customer_id: &str) -> Option<String> {
        self.stripe_dashboard
            .filter(|_| crate::domain::StripeCustomerId::parse(customer_id).is_ok())
            .map(|base| format!("{base}{customer_id}"))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tollbooth admin API",
        description = "Customers, keys, grants, use, webhook events and reconciles of one tollbooth \
            service. Every request sends `Authorization: Bearer <ADMIN_TOKEN>`; every POST or PUT may \
            send an `Idempotency-Key` (kept 24 hours). Times are Unix seconds, days are \
            `YYYY-MM-DD` in UTC. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        customers::list,
        customers::show,
        keys::list,
        keys::issue,
        keys::revoke,
        keys::roll,
        keys::cap,
        grants::create,
        grants::end,
        usage::report,
        events::list,
        events::retry,
        sync::start,
        sync::status,
    ),
    modifiers(&BearerToken),
    security(("admin_token" = [])),
    tags(
        (name = "customers", description = "Who buys, and what they hold"),
        (name = "keys", description = "Access keys: shown once when issued, stored as hashes"),
        (name = "grants", description = "Access given by hand"),
        (name = "usage", description = "Predictions allowed per day"),
        (name = "events", description = "Stripe webhook events that failed"),
        (name = "sync", description = "The full reconcile with Stripe"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the tokens in ADMIN_TOKEN."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, rendered once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes")
    })
}

/// Registers the admin routes (they answer the site's 404 while the API is off).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/api")
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(|e, _| json_error(e).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
            .route("/openapi.json", web::get().to(openapi))
            .service(
                web::scope("/v1")
                    .wrap(from_fn(auth::require_token))
                    .configure(|cfg| v1(&mut Routes::registering(cfg)))
                    .default_service(web::to(unknown_path)),
            ),
    );
}

/// Every route of version 1, each registered at the path and methods of its annotation.
fn v1(routes: &mut Routes) {
    routes.add::<customers::__path_list, _, _>(customers::list);
    routes.add::<customers::__path_show, _, _>(customers::show);
    routes.add::<keys::__path_list, _, _>(keys::list);
    routes.add::<keys::__path_issue, _, _>(keys::issue);
    routes.add::<keys::__path_revoke, _, _>(keys::revoke);
    routes.add::<keys::__path_roll, _, _>(keys::roll);
    routes.add::<keys::__path_cap, _, _>(keys::cap);
    routes.add::<grants::__path_create, _, _>(grants::create);
    routes.add::<grants::__path_end, _, _>(grants::end);
    routes.add::<usage::__path_report, _, _>(usage::report);
    routes.add::<events::__path_list, _, _>(events::list);
    routes.add::<events::__path_retry, _, _>(events::retry);
    routes.add::<sync::__path_start, _, _>(sync::start);
    routes.add::<sync::__path_status, _, _>(sync::status);
}

/// Registers routes from their OpenAPI annotations, and remembers each (method, path).
struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    added: Vec<(String, String)>,
}

impl<'a> Routes<'a> {
    fn registering(cfg: &'a mut web::ServiceConfig) -> Self {
        Self {
            cfg: Some(cfg),
            added: Vec::new(),
        }
    }

    fn add<P, F, Args>(&mut self, handler: F)
    where
        P: utoipa::Path,
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = P::path();
        let relative = path
            .strip_prefix(V1)
            .expect("every admin route is under /admin/api/v1")
            .to_owned();
        for method in P::methods() {
            let (name, route) = match method {
                HttpMethod::Get => ("get", web::get()),
                HttpMethod::Post => ("post", web::post()),
                HttpMethod::Put => ("put", web::put()),
                HttpMethod::Delete => ("delete", web::delete()),
                HttpMethod::Patch => ("patch", web::patch()),
                _ => panic!("the admin API uses GET, POST, PUT, DELETE and PATCH only"),
            };
            self.added.push((name.to_owned(), path.clone()));
            if let Some(cfg) = self.cfg.as_deref_mut() {
                cfg.route(&relative, route.to(handler.clone()));
            }
        }
    }
}

async fn openapi(admin: Option<web::Data<Admin>>) -> HttpResponse {
    if admin.is_none() {
        return crate::http::error::not_found();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

async fn unknown_path() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        "There is no admin API route at this path and method; see /admin/api/openapi.json.",
    ))
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body is larger than {limit} bytes."),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON, with Content-Type: application/json.",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::invalid(
            "invalid_request",
            format!("The body is not as documented: {e}"),
        ),
        other => ApiError::invalid(
            "invalid_request",
            format!("The body could not be read: {other}"),
        ),
    }
}

fn query_error(e: QueryPayloadError) -> ApiError {
    ApiError::invalid(
        "invalid_request",
        format!("The query is not as documented: {e}"),
    )
}

/// The JSON answer of a GET.
fn ok(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// Pages are at most this long; 50 unless `limit` says otherwise.
const PAGE_LIMIT: i64 = 200;

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "invalid_limit",
            format!("limit {n} is out of range: give 1 to {PAGE_LIMIT}"),
        )),
    }
}

/// A page's cursor: the last row's creation time and id, `<seconds>.<id>`.
fn cursor(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

/// Rows read `limit + 1` at a time cut to a page: the rows shown, and the cursor of the next
/// page when there is one (from the last row shown, by `key`: its creation time and id).
fn paged<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (i64, &str),
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more
        .then(|| {
            rows.last().map(|row| {
                let (created_at, id) = key(row);
                cursor(created_at, id)
            })
        })
        .flatten();
    (rows, next)
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<crate::store::After>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let parsed = cursor.split_once('.').and_then(|(at, id)| {
        Some(crate::store::After {
            created_at: at.parse().ok()?,
            id: id.to_owned(),
        })
    });
    parsed.map(Some).ok_or_else(|| {
        ApiError::invalid(
            "invalid_cursor",
            "The cursor is not one this API gave; pass next_cursor from the previous page as it was.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let rows = vec![(1, "a"), (2, "b"), (3, "c")];
        let (shown, next) = paged(rows.clone(), 2, |r| (r.0, r.1));
        assert_eq!(shown, [(1, "a"), (2, "b")]);
        assert_eq!(next.as_deref(), Some("2.b"));
        let (shown, next) = paged(rows, 3, |r| (r.0, r.1));
        assert_eq!((shown.len(), next), (3, None));
    }

    #[test]
    fn every_registered_route_is_documented_and_every_documented_route_registered() {
        let mut routes = Routes {
            cfg: None,
            added: Vec::new(),
        };
        v1(&mut routes);
        let mut registered = routes.added;
        registered.sort();
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut documented: Vec<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| matches!(k.as_str(), "get" | "post" | "put" | "delete" | "patch"))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        assert_eq!(registered, documented);
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn a_cursor_reads_back_as_the_row_it_names() {
        let after = parse_cursor(Some(&cursor(1_700_000_000, "cus_A.b")))
            .unwrap()
            .unwrap();
        assert_eq!(after.created_at, 1_700_000_000);
        assert_eq!(after.id, "cus_A.b");
        assert!(parse_cursor(Some("nonsense")).is_err());
        assert!(parse_cursor(None).unwrap().is_none());
    }
}
