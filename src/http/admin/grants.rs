//! Grants: access given by hand (predictors, a quota or credits, a last day), alone or with a
//! new key, and ended early.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::Admin;
use super::error::{ApiError, ErrorBody};
use super::idempotency::{Answer, once};
use crate::domain::{CalendarPeriod, Predictors, calendar};
use crate::http::state::AppState;
use crate::ledger::{GrantError, GrantSpec};
use crate::store::{EndGrant, GrantListing};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

/// What a grant gives. Without `quota` or `credits` it is unlimited; without `predictors`, it
/// covers every predictor of the owner.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantFields {
    /// Predictor patterns: `@owner/name`, `*` as a wildcard, or `*` for all.
    #[serde(default)]
    pub predictors: Vec<String>,
    /// Predictions allowed per `period`.
    pub quota: Option<u64>,
    /// The quota's period (default `month`).
    pub period: Option<Period>,
    /// Predictions allowed in all.
    pub credits: Option<u64>,
    /// The last day of access (`YYYY-MM-DD`, UTC): access ends at the following midnight.
    pub expires: Option<String>,
    /// A note kept with the grant.
    pub note: Option<String>,
}

impl GrantFields {
    pub fn spec(&self, admin: &Admin) -> Result<GrantSpec, ApiError> {
        if self.period.is_some() && self.quota.is_none() {
            return Err(ApiError::invalid(
                "invalid_grant",
                "period is given without quota",
            ));
        }
        let predictors = if self.predictors.is_empty() {
            Predictors::all()
        } else {
            Predictors::parse(&self.predictors.join(","), admin.owner.as_ref())
                .map_err(|e| ApiError::invalid("invalid_predictors", e.to_string()))?
        };
        let last_day = self
            .expires
            .as_deref()
            .map(|d| {
                calendar::parse_date(d).ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_grant",
                        format!("expires {d:?} is not a date (YYYY-MM-DD)"),
                    )
                })
            })
            .transpose()?;
        let period = match self.period.unwrap_or(Period::Month) {
            Period::Day => CalendarPeriod::Day,
            Period::Month => CalendarPeriod::Month,
        };
        Ok(GrantSpec {
            predictors,
            quota: self.quota.map(|q| (q, period)),
            credits: self.credits,
            last_day,
            note: self.note.clone().filter(|n| !n.trim().is_empty()),
        })
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::UnknownCustomer(id) => Self::not_found(
                "customer_not_found",
                format!("No customer {id} is known here."),
            ),
            GrantError::Unexpected(e) => Self::internal(&e),
            other => Self::invalid("invalid_grant", other.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GrantView {
    id: String,
    customer_id: String,
    /// The patterns, comma-separated, as stored.
    predictors: String,
    quota: Option<i64>,
    period: Option<String>,
    credits: Option<i64>,
    /// When access ends (midnight UTC after the last day).
    expires_at: Option<i64>,
    note: Option<String>,
    created_at: i64,
    ended_at: Option<i64>,
    /// Neither ended nor expired.
    active: bool,
}

impl GrantView {
    pub fn of(g: GrantListing, now: i64) -> Self {
        Self {
            active: g.revoked_at.is_none() && g.expires_at.is_none_or(|at| at > now),
            id: g.id,
            customer_id: g.customer_id,
            predictors: g.predictors,
            quota: g.quota,
            period: g.quota_period,
            credits: g.credits,
            expires_at: g.expires_at,
            note: g.note,
            created_at: g.created_at,
            ended_at: g.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrantBody {
    /// The customer (cus_… or loc_…), who must exist.
    customer: String,
    #[serde(default)]
    predictors: Vec<String>,
    quota: Option<u64>,
    period: Option<Period>,
    credits: Option<u64>,
    expires: Option<String>,
    note: Option<String>,
}

/// Gives a customer access by hand.
#[utoipa::path(
    post,
    operation_id = "create_grant",
    path = "/admin/api/v1/grants",
    tag = "grants",
    request_body = CreateGrantBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer")),
    responses(
        (status = 201, body = GrantView),
        (status = 400, body = ErrorBody, description = "`invalid_grant`, `invalid_predictors`, `invalid_request`"),
        (status = 404, body = ErrorBody, description = "`customer_not_found`"),
        (status = 409, body = ErrorBody, description = "`idempotency_key_in_use`"),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused`"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    admin: web::Data<Admin>,
    request: HttpRequest,
    body: web::Json<CreateGrantBody>,
) -> HttpResponse {
    let fingerprint = serde_json::to_vec(&*body).unwrap_or_default();
    once(state.store.as_ref(), &request, &fingerprint, || async {
        let body = body.into_inner();
        let fields = GrantFields {
            predictors: body.predictors,
            quota: body.quota,
            period: body.period,
            credits: body.credits,
            expires: body.expires,
            note: body.note,
        };
        let spec = fields.spec(&admin)?;
        let grant = state.ledger.grant(&body.customer, &spec).await?;
        let now = grant.created_at;
        let view = GrantView::of(
            GrantListing {
                id: grant.id,
                customer_id: grant.customer_id,
                predictors: grant.predictors,
                quota: grant.quota,
                quota_period: grant.quota_period,
                credits: grant.credits,
                expires_at: grant.expires_at,
                note: grant.note,
                created_at: grant.created_at,
                revoked_at: None,
            },
            now,
        );
        Ok((StatusCode::CREATED, json!(view))) as Answer
    })
    .await
}

#[derive(Serialize, ToSchema)]
pub struct Ended {
    id: String,
    /// `ended`.
    status: &'static str,
    /// False when the grant had ended already.
    changed: bool,
}

/// Ends a grant now.
#[utoipa::path(
    post,
    operation_id = "end_grant",
    path = "/admin/api/v1/grants/{id}/end",
    tag = "grants",
    params(
        ("id" = String, Path, description = "gr_…"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer"),
    ),
    responses(
        (status = 200, body = Ended),
        (status = 404, body = ErrorBody, description = "`grant_not_found`"),
    )
)]
pub async fn end(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    once(state.store.as_ref(), &request, b"", || async {
        let changed = match state.ledger.end_grant(&id).await? {
            EndGrant::Ended { .. } => true,
            EndGrant::AlreadyEnded => false,
            EndGrant::NotFound => {
                return Err(ApiError::not_found(
                    "grant_not_found",
                    format!("No grant {id} is known here."),
                ));
            }
        };
        let ended = Ended {
            id: id.into_inner(),
            status: "ended",
            changed,
        };
        Ok((StatusCode::OK, json!(ended)))
    })
    .await
}
