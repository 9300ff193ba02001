//! Customers: found by id or email a page at a time, and one customer whole — plans, grants,
//! keys and this month's use.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Admin;
use super::error::{ApiError, ErrorBody};
use super::grants::GrantView;
use super::keys::KeyView;
use super::{ok, page_limit, paged, parse_cursor};
use crate::clock::unix_now;
use crate::domain::calendar;
use crate::http::state::AppState;
use crate::ledger::{PlanStatus, Standing, Term, Use};
use crate::store::{CustomerListing, Directory, Keys, Reports};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A customer id, or part of an email (any case).
    search: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerSummary {
    id: String,
    email: Option<String>,
    name: Option<String>,
    created_at: i64,
    active_keys: i64,
    active_grants: i64,
    subscriptions: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    data: Vec<CustomerSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<CustomerListing> for CustomerSummary {
    fn from(c: CustomerListing) -> Self {
        Self {
            id: c.id,
            email: c.email,
            name: c.name,
            created_at: c.created_at,
            active_keys: c.active_keys,
            active_grants: c.grants,
            subscriptions: c.subscriptions,
        }
    }
}

/// Customers, oldest first.
#[utoipa::path(
    get,
    operation_id = "list_customers",
    path = "/admin/api/v1/customers",
    tag = "customers",
    params(ListQuery),
    responses(
        (status = 200, body = CustomerPage),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`"),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = parse_cursor(query.cursor.as_deref())?;
    let search = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let rows = state
        .store
        .search_customers(search, after.as_ref(), limit + 1)
        .await?;
    let (rows, next_cursor) = paged(rows, limit, |c| (c.created_at, &c.id));
    Ok(ok(&CustomerPage {
        data: rows.into_iter().map(CustomerSummary::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CustomerDetail {
    id: String,
    email: Option<String>,
    name: Option<String>,
    created_at: i64,
    /// The customer in the Stripe Dashboard, for Stripe customers.
    stripe_dashboard_url: Option<String>,
    /// Every plan (subscription item, purchase, grant) the gate knows for the customer now.
    plans: Vec<PlanView>,
    grants: Vec<GrantView>,
    /// Every key, revoked ones included, oldest first.
    keys: Vec<KeyView>,
    /// Predictions allowed since the 1st of this month (UTC), per predictor.
    usage_this_month: Vec<PredictorUse>,
    /// Authorizations of the customer's keys refused in the last 30 days, per day, key and
    /// reason, newest first (written with the per-hour activity, about once a minute).
    recent_refusals: Vec<RefusalView>,
}

#[derive(Serialize, ToSchema)]
pub struct RefusalView {
    day: String,
    key_id: String,
    /// `quota_used`, `credits_used`, `canceled`, `not_included`, …
    reason: String,
    refusals: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PlanView {
    name: String,
    /// The predictors it covers, as people read them ("all of acme's predictors").
    covers: String,
    /// `active`, `trial`, `past_due` (within the grace period) or `stopped`.
    standing: &'static str,
    /// Why a stopped plan does not allow predictions.
    stopped_because: Option<&'static str>,
    /// `renews`, `ends`, `ended`, `until` (the last moment of access) or `open`.
    term: &'static str,
    term_at: Option<i64>,
    /// `unlimited`, `quota` (per period) or `credits` (in all).
    limit_kind: &'static str,
    used: u64,
    limit: Option<u64>,
    /// Use is reported to a Stripe meter.
    metered: bool,
}

impl From<&PlanStatus> for PlanView {
    fn from(p: &PlanStatus) -> Self {
        let (standing, stopped_because) = match p.standing {
            Standing::Active => ("active", None),
            Standing::Trial => ("trial", None),
            Standing::PastDue => ("past_due", None),
            Standing::Stopped(why) => ("stopped", Some(why)),
        };
        let (term, term_at) = match p.term {
            Term::Renews(at) => ("renews", Some(at)),
            Term::Ends(at) => ("ends", Some(at)),
            Term::Ended(at) => ("ended", Some(at)),
            Term::Until(at) => ("until", Some(at)),
            Term::Open => ("open", None),
        };
        let (limit_kind, used, limit, metered) = match p.usage {
            Use::Unlimited { used, metered } => ("unlimited", used, None, metered),
            Use::Quota { used, per_period } => ("quota", used, Some(per_period), false),
            Use::Credits { used, total } => ("credits", used, Some(total), false),
        };
        Self {
            name: p.name.clone(),
            covers: p.covers.clone(),
            standing,
            stopped_because,
            term,
            term_at,
            limit_kind,
            used,
            limit,
            metered,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PredictorUse {
    predictor: String,
    predictions: i64,
}

/// One customer, whole.
#[utoipa::path(
    get,
    operation_id = "show_customer",
    path = "/admin/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "cus_… (Stripe) or loc_… (made here)")),
    responses(
        (status = 200, body = CustomerDetail),
        (status = 404, body = ErrorBody, description = "`customer_not_found`"),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn show(
    state: web::Data<AppState>,
    admin: web::Data<Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(customer) = state.store.customer(&id).await? else {
        return Err(ApiError::not_found(
            "customer_not_found",
            format!("No customer {id} is known here."),
        ));
    };
    let account = state.ledger.account(&customer.id).await?;
    let grants = state.store.grants_of(&customer.id).await?;
    let keys = state
        .store
        .page_keys(Some(&customer.id), None, i64::MAX)
        .await?;
    let now = unix_now();
    let month = calendar::month_start(now);
    let mut usage: Vec<PredictorUse> = Vec::new();
    for day in state
        .store
        .usage_by_day(Some(&customer.id), month, now + 1)
        .await?
    {
        match usage.iter_mut().find(|u| u.predictor == day.tag) {
            Some(u) => u.predictions += day.predictions,
            None => usage.push(PredictorUse {
                predictor: day.tag,
                predictions: day.predictions,
            }),
        }
    }
    usage.sort_by(|a, b| {
        b.predictions
            .cmp(&a.predictions)
            .then(a.predictor.cmp(&b.predictor))
    });
    let stripe_dashboard_url = admin.stripe_customer_url(&customer.id);
    let recent_refusals = state
        .store
        .refusals_of(
            &customer.id,
            calendar::day_start(now) - 29 * calendar::DAY,
            now + 1,
        )
        .await?
        .into_iter()
        .map(|r| RefusalView {
            day: calendar::date(r.day),
            key_id: r.key_id,
            reason: r.reason,
            refusals: r.refusals,
        })
        .collect();
    Ok(ok(&CustomerDetail {
        recent_refusals,
        plans: account.plans.iter().map(PlanView::from).collect(),
        grants: grants.into_iter().map(|g| GrantView::of(g, now)).collect(),
        keys: keys.into_iter().map(KeyView::from).collect(),
        usage_this_month: usage,
        stripe_dashboard_url,
        id: customer.id,
        email: customer.email,
        name: customer.name,
        created_at: customer.created_at,
    }))
}
