//! Use: predictions allowed per day, customer, key and predictor for a range of days, as JSON
//! or, with `Accept: text/csv`, as CSV; and refusals per day and reason. The same figures as
//! `tollbooth usage`, from the per-hour activity the usage flush writes about once a minute.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::ok;
use crate::clock::unix_now;
use crate::domain::calendar;
use crate::http::chart::csv_field;
use crate::http::state::AppState;
use crate::store::Reports;

/// Days covered when `since` is not given (today included).
const DEFAULT_DAYS: i64 = 30;
/// The longest range one request may cover.
const MAX_DAYS: i64 = 366;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The first day (`YYYY-MM-DD`, UTC); default 29 days before `until`.
    since: Option<String>,
    /// The last day (`YYYY-MM-DD`, UTC); default today.
    until: Option<String>,
    /// Only this customer's use.
    customer: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    since: String,
    until: String,
    /// Predictions allowed, per day, customer, key and predictor.
    allowed: Vec<UsageRow>,
    total_allowed: i64,
    /// Authorizations refused per day and reason (for the whole service: an unknown key has no
    /// customer); empty when `customer` is given.
    refused: Vec<RefusalRow>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageRow {
    day: String,
    customer_id: String,
    key_id: String,
    predictor: String,
    predictions: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RefusalRow {
    day: String,
    /// `unknown_key`, `quota_used`, `credits_used`, `canceled`, …
    reason: String,
    refusals: i64,
}

/// Use per day.
#[utoipa::path(
    get,
    operation_id = "usage_report",
    path = "/admin/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "JSON; with `Accept: text/csv`, the allowed rows as CSV (day,customer_id,key_id,predictor,predictions)",
            content((UsageReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody, description = "`invalid_date`, `invalid_range`"),
    )
)]
pub async fn report(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let day = |name: &str, text: &str| {
        calendar::parse_date(text).ok_or_else(|| {
            ApiError::invalid(
                "invalid_date",
                format!("{name} {text:?} is not a date (YYYY-MM-DD)"),
            )
        })
    };
    let until = match &query.until {
        Some(text) => day("until", text)?,
        None => calendar::day_start(unix_now()),
    } + calendar::DAY;
    let since = match &query.since {
        Some(text) => day("since", text)?,
        None => until - DEFAULT_DAYS * calendar::DAY,
    };
    if until <= since {
        return Err(ApiError::invalid(
            "invalid_range",
            "until must not be before since",
        ));
    }
    if until - since > MAX_DAYS * calendar::DAY {
        return Err(ApiError::invalid(
            "invalid_range",
            format!("a report covers at most {MAX_DAYS} days; ask for several"),
        ));
    }
    let customer = query.customer.as_deref();
    let rows = state.store.usage_by_day(customer, since, until).await?;
    let allowed: Vec<UsageRow> = rows
        .into_iter()
        .map(|r| UsageRow {
            day: calendar::date(r.day),
            customer_id: r.customer_id,
            key_id: r.key_id,
            predictor: r.tag,
            predictions: r.predictions,
        })
        .collect();
    if wants_csv(&request) {
        let mut csv = String::from("day,customer_id,key_id,predictor,predictions\r\n");
        for r in &allowed {
            for field in [&r.day, &r.customer_id, &r.key_id, &r.predictor] {
                csv.push_str(&csv_field(field));
                csv.push(',');
            }
            csv.push_str(&r.predictions.to_string());
            csv.push_str("\r\n");
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"usage-{}-{}.csv\"",
                    calendar::date(since),
                    calendar::date(until - calendar::DAY)
                ),
            ))
            .body(csv));
    }
    let refused = match customer {
        Some(_) => Vec::new(),
        None => state
            .store
            .refusals_by_day(since, until)
            .await?
            .into_iter()
            .map(|r| RefusalRow {
                day: calendar::date(r.day),
                reason: r.reason,
                refusals: r.refusals,
            })
            .collect(),
    };
    Ok(ok(&UsageReport {
        since: calendar::date(since),
        until: calendar::date(until - calendar::DAY),
        total_allowed: allowed.iter().map(|r| r.predictions).sum(),
        allowed,
        refused,
    }))
}

fn wants_csv(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
            })
        })
}
