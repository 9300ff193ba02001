//! Keys: issued for a customer or an email (with a grant, as the CLI does), listed a page at a
//! time, revoked. A new key is in the answer to its issue and nowhere else.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::Admin;
use super::error::{ApiError, ErrorBody};
use super::grants::GrantFields;
use super::idempotency::once;
use super::{ok, page_limit, paged, parse_cursor};
use crate::clock::unix_now;
use crate::domain::{Grace, KeyCap};
use crate::http::state::AppState;
use crate::ledger::{CustomerRef, IssueError, IssueRequest, KeyError, KeyRef};
use crate::store::{Directory, KeyListing, RevokeOutcome};

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    customer_id: String,
    email: Option<String>,
    /// The start of the key, for people to tell keys apart; never the key.
    prefix: String,
    name: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    /// Written about once a minute.
    last_used_at: Option<i64>,
    /// Not revoked and, if rolled, still in its grace period.
    active: bool,
    /// When a rolled key stops (or stopped) working.
    stops_at: Option<i64>,
    /// The key that replaced this one.
    replaced_by: Option<String>,
    /// The key's own cap: `100/day`, `5000/month` or `10000` (in all).
    cap: Option<String>,
}

impl From<KeyListing> for KeyView {
    fn from(k: KeyListing) -> Self {
        Self {
            active: k.active(unix_now()),
            cap: k.cap().map(|c| c.to_string()),
            stops_at: k.expires_at,
            replaced_by: k.replaced_by,
            id: k.id,
            customer_id: k.customer_id,
            email: k.email,
            prefix: k.display_prefix,
            name: k.name,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's keys.
    customer: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyPage {
    data: Vec<KeyView>,
    next_cursor: Option<String>,
}

/// Keys, revoked ones included, oldest first.
#[utoipa::path(
    get,
    operation_id = "list_keys",
    path = "/admin/api/v1/keys",
    tag = "keys",
    params(ListQuery),
    responses(
        (status = 200, body = KeyPage),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = parse_cursor(query.cursor.as_deref())?;
    let rows = state
        .store
        .page_keys(query.customer.as_deref(), after.as_ref(), limit + 1)
        .await?;
    let (rows, next_cursor) = paged(rows, limit, |k| (k.created_at, &k.id));
    Ok(ok(&KeyPage {
        data: rows.into_iter().map(KeyView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// An existing customer (cus_… from Stripe, read from Stripe if not seen yet, or loc_…).
    customer: Option<String>,
    /// Or the customer's email: a customer is created if none has it.
    email: Option<String>,
    /// A name for the key, shown in listings (at most 100 characters).
    name: Option<String>,
    /// Access to give the customer with the key; without it the key gives what the customer's
    /// plans give.
    grant: Option<GrantFields>,
    /// The key's own cap, on top of the customer's plans (which all their keys share):
    /// `100/day`, `5000/month` or `10000` (in all).
    cap: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedKey {
    /// The key. Shown in this answer only (and to a retry with the same Idempotency-Key).
    key: String,
    key_id: String,
    prefix: String,
    customer_id: String,
    customer_created: bool,
    grant_id: Option<String>,
    expires_at: Option<i64>,
}

/// Issues a key.
#[utoipa::path(
    post,
    operation_id = "issue_key",
    path = "/admin/api/v1/keys",
    tag = "keys",
    request_body = IssueBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer, the same key included")),
    responses(
        (status = 201, body = IssuedKey),
        (status = 400, body = ErrorBody, description = "`invalid_request`, `invalid_email`, `invalid_name`, `invalid_grant`, `invalid_predictors`, `invalid_cap`"),
        (status = 404, body = ErrorBody, description = "`customer_not_found`"),
        (status = 409, body = ErrorBody, description = "`ambiguous_email`, `idempotency_key_in_use`"),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused`"),
    )
)]
pub async fn issue(
    state: web::Data<AppState>,
    admin: web::Data<Admin>,
    request: HttpRequest,
    body: web::Json<IssueBody>,
) -> HttpResponse {
    let fingerprint = serde_json::to_vec(&*body).unwrap_or_default();
    once(state.store.as_ref(), &request, &fingerprint, || async {
        let body = body.into_inner();
        let customer = match (body.customer, body.email) {
            (Some(id), None) => CustomerRef::Id(id.trim().to_owned()),
            (None, Some(email)) => CustomerRef::Email(email),
            _ => {
                return Err(ApiError::invalid(
                    "invalid_request",
                    "Give customer or email, one of them.",
                ));
            }
        };
        let grant = match &body.grant {
            Some(fields) => {
                let spec = fields.spec(&admin)?;
                spec.check(unix_now())?;
                Some(spec)
            }
            None => None,
        };
        let cap = body.cap.as_deref().map(parse_cap).transpose()?;
        let issued = state
            .ledger
            .issue_key(IssueRequest {
                customer,
                name: body.name,
                grant,
                cap,
            })
            .await
            .map_err(issue_error)?;
        let answer = IssuedKey {
            prefix: issued.key.display_prefix(),
            key: issued.key.as_ref().to_owned(),
            key_id: issued.key_id,
            customer_id: issued.customer_id,
            customer_created: issued.customer_created,
            grant_id: issued.grant_id,
            expires_at: issued.expires_at,
        };
        Ok((StatusCode::CREATED, json!(answer)))
    })
    .await
}

fn issue_error(e: IssueError) -> ApiError {
    match e {
        IssueError::UnknownCustomer(id) | IssueError::NotInStripe(id) => ApiError::not_found(
            "customer_not_found",
            format!("No customer {id} is known here or in Stripe."),
        ),
        IssueError::AmbiguousEmail { email, ids } => ApiError::conflict(
            "ambiguous_email",
            format!("Several customers have the email {email} ({ids}); give customer instead."),
        ),
        IssueError::InvalidEmail(email) => ApiError::invalid(
            "invalid_email",
            format!("{email:?} is not an email address."),
        ),
        IssueError::NameTooLong => ApiError::invalid(
            "invalid_name",
            "The key name must be at most 100 characters.",
        ),
        IssueError::Unexpected(e) => ApiError::internal(&e),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    id: String,
    /// `revoked`.
    status: &'static str,
    /// False when the key was revoked already.
    changed: bool,
}

/// Revokes a key: every instance refuses it within a second.
#[utoipa::path(
    post,
    operation_id = "revoke_key",
    path = "/admin/api/v1/keys/{id}/revoke",
    tag = "keys",
    params(
        ("id" = String, Path, description = "key_… (or the key's display prefix)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer"),
    ),
    responses(
        (status = 200, body = Revoked),
        (status = 404, body = ErrorBody, description = "`key_not_found`"),
        (status = 409, body = ErrorBody, description = "`ambiguous_key`"),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    once(state.store.as_ref(), &request, b"", || async {
        let (id, changed) = match state.ledger.revoke_key(&id).await? {
            RevokeOutcome::Revoked { id } => (id, true),
            RevokeOutcome::AlreadyRevoked { id } => (id, false),
            RevokeOutcome::NotFound => {
                return Err(ApiError::not_found(
                    "key_not_found",
                    format!("No key has the id {id}."),
                ));
            }
            RevokeOutcome::Ambiguous(ids) => {
                return Err(ApiError::conflict(
                    "ambiguous_key",
                    format!(
                        "{id} matches several keys ({}); revoke by id.",
                        ids.join(", ")
                    ),
                ));
            }
        };
        let revoked = Revoked {
            id,
            status: "revoked",
            changed,
        };
        Ok((StatusCode::OK, json!(revoked)))
    })
    .await
}

fn parse_cap(text: &str) -> Result<KeyCap, ApiError> {
    KeyCap::parse(text).map_err(|e| ApiError::invalid("invalid_cap", format!("{e}.")))
}

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::NotFound(id) => {
            ApiError::not_found("key_not_found", format!("No active key has the id {id}."))
        }
        KeyError::Ambiguous(id, ids) => ApiError::conflict(
            "ambiguous_key",
            format!("{id} matches several keys ({ids}); use the key's id."),
        ),
        KeyError::AlreadyRolled(id) => ApiError::conflict(
            "key_already_rolled",
            format!("{id} was rolled already; roll the key that replaced it."),
        ),
        KeyError::Unexpected(e) => ApiError::internal(&e),
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    /// How long the old key keeps working: `none` (the default), `1h` or `24h`.
    grace: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RolledKey {
    /// The new key. Shown in this answer only (and to a retry with the same Idempotency-Key).
    key: String,
    key_id: String,
    prefix: String,
    customer_id: String,
    /// The key replaced, which works until `old_stops_at`.
    old_key_id: String,
    old_stops_at: i64,
}

/// Rolls a key: a new key with the same name and cap; the old one keeps working for the grace
/// period, then is refused with a message saying it was replaced.
#[utoipa::path(
    post,
    operation_id = "roll_key",
    path = "/admin/api/v1/keys/{id}/roll",
    tag = "keys",
    request_body = RollBody,
    params(
        ("id" = String, Path, description = "key_… (or the key's display prefix)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer, the new key included"),
    ),
    responses(
        (status = 201, body = RolledKey),
        (status = 400, body = ErrorBody, description = "`invalid_grace`"),
        (status = 404, body = ErrorBody, description = "`key_not_found`"),
        (status = 409, body = ErrorBody, description = "`ambiguous_key`, `key_already_rolled`, `idempotency_key_in_use`"),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused`"),
    )
)]
pub async fn roll(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Json<RollBody>,
) -> HttpResponse {
    let fingerprint = serde_json::to_vec(&*body).unwrap_or_default();
    once(state.store.as_ref(), &request, &fingerprint, || async {
        let grace = Grace::parse(body.grace.as_deref().unwrap_or("none"))
            .map_err(|e| ApiError::invalid("invalid_grace", format!("{e}.")))?;
        let rolled = state
            .ledger
            .roll_key(KeyRef::Any(&id), grace, None)
            .await
            .map_err(key_error)?;
        let answer = RolledKey {
            prefix: rolled.key.display_prefix(),
            key: rolled.key.as_ref().to_owned(),
            key_id: rolled.key_id,
            customer_id: rolled.customer_id,
            old_key_id: rolled.old_key_id,
            old_stops_at: rolled.old_stops_at,
        };
        Ok((StatusCode::CREATED, json!(answer)))
    })
    .await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    /// `100/day`, `5000/month` or `10000` (in all); `null` removes the key's cap.
    cap: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyCapView {
    id: String,
    /// The cap now in force for this key alone, or null.
    cap: Option<String>,
}

/// Sets or removes a key's own cap: every instance applies it within a second.
#[utoipa::path(
    put,
    operation_id = "set_key_cap",
    path = "/admin/api/v1/keys/{id}/cap",
    tag = "keys",
    request_body = CapBody,
    params(
        ("id" = String, Path, description = "key_… (or the key's display prefix)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer"),
    ),
    responses(
        (status = 200, body = KeyCapView),
        (status = 400, body = ErrorBody, description = "`invalid_cap`"),
        (status = 404, body = ErrorBody, description = "`key_not_found`"),
        (status = 409, body = ErrorBody, description = "`ambiguous_key`, `idempotency_key_in_use`"),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused`"),
    )
)]
pub async fn cap(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Json<CapBody>,
) -> HttpResponse {
    let fingerprint = serde_json::to_vec(&*body).unwrap_or_default();
    once(state.store.as_ref(), &request, &fingerprint, || async {
        let cap = body.cap.as_deref().map(parse_cap).transpose()?;
        let id = state
            .ledger
            .cap_key(KeyRef::Any(&id), cap)
            .await
            .map_err(key_error)?;
        let answer = KeyCapView {
            id,
            cap: cap.map(|c| c.to_string()),
        };
        Ok((StatusCode::OK, json!(answer)))
    })
    .await
}
