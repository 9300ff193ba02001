//! Customers: search, one customer's page (plans, keys, grants, use per predictor, their audit
//! trail, the Stripe Dashboard link) and the owner's actions for them: issue and revoke keys,
//! give and end grants. Every action is the signed-in token's in the audit log.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::overview::ChangeLine;
use super::{Gate, Owner, form_owner, number, page_gate, when};
use crate::clock::unix_now;
use crate::domain::{CalendarPeriod, Grace, KeyCap, Predictors, calendar, thousands};
use crate::http::admin::Admin;
use crate::http::chart::{per_predictor, stacked_days};
use crate::http::error::PageError;
use crate::http::pages::{html, see_other};
use crate::http::state::AppState;
use crate::ledger::{
    CustomerRef, GrantError, GrantSpec, IssueRequest, KeyError, KeyRef, Standing, Term, Use,
};
use crate::store::{Audit, Directory, EndGrant, Keys, Reports, RevokeOutcome};

const DAYS: i64 = 30;

#[derive(Template)]
#[template(path = "admin/customers.html")]
struct ListPage {
    owner: Owner,
    search: String,
    customers: Vec<ListLine>,
    more: bool,
}

struct ListLine {
    id: String,
    email: String,
    created: String,
    keys: i64,
    plans: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    search: Option<String>,
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let owner = match page_gate(&request, &state).await? {
        Gate::In(_, owner) => owner,
        Gate::Out(page) => return Ok(page),
    };
    let search = query.search.as_deref().unwrap_or("").trim().to_owned();
    let shown = 100;
    let mut rows = state
        .store
        .search_customers(
            Some(&search).filter(|s| !s.is_empty()).map(|s| s.as_str()),
            None,
            shown + 1,
        )
        .await?;
    let more = rows.len() as i64 > shown;
    rows.truncate(shown as usize);
    let customers = rows
        .into_iter()
        .map(|c| ListLine {
            email: c.email.or(c.name).unwrap_or_else(|| "-".into()),
            created: calendar::date(c.created_at),
            keys: c.active_keys,
            plans: format!("{} subscriptions, {} grants", c.subscriptions, c.grants),
            id: c.id,
        })
        .collect();
    html(
        &ListPage {
            owner,
            search,
            customers,
            more,
        },
        true,
    )
}

#[derive(Template)]
#[template(path = "admin/customer.html")]
struct CustomerPage {
    owner: Owner,
    id: String,
    title: String,
    email: String,
    created: String,
    stripe_url: Option<String>,
    message: Option<String>,
    new_key: Option<String>,
    plans: Vec<PlanLine>,
    keys: Vec<KeyLine>,
    grants: Vec<GrantLine>,
    chart: String,
    refusals: Vec<RefusalLine>,
    changes: Vec<ChangeLine>,
}

struct RefusalLine {
    day: String,
    key: String,
    reason: String,
    count: String,
}

struct PlanLine {
    name: String,
    covers: String,
    standing: String,
    term: String,
    usage: String,
}

struct KeyLine {
    id: String,
    prefix: String,
    name: String,
    created: String,
    last_used: String,
    /// How the key ended (revoked, or replaced and past its grace), once it has.
    ended: Option<String>,
    /// A rolled key in its grace period: when it stops.
    stops: Option<String>,
    /// The key's own cap ("100 a day"), or "none".
    cap: String,
    cap_value: String,
}

struct GrantLine {
    id: String,
    gives: String,
    until: String,
    note: String,
    active: bool,
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = match page_gate(&request, &state).await? {
        Gate::In(admin, owner) => (admin, owner),
        Gate::Out(page) => return Ok(page),
    };
    customer_page(&state, &admin, owner, &id, None, None).await
}

async fn customer_page(
    state: &AppState,
    admin: &Admin,
    owner: Owner,
    id: &str,
    message: Option<String>,
    new_key: Option<String>,
) -> Result<HttpResponse, PageError> {
    let Some(customer) = state.store.customer(id).await? else {
        return Err(PageError::NotFound);
    };
    let now = unix_now();
    let account = state.ledger.account(&customer.id).await?;
    let plans = account
        .plans
        .iter()
        .map(|p| PlanLine {
            name: p.name.clone(),
            covers: p.covers.clone(),
            standing: match p.standing {
                Standing::Active => "active".into(),
                Standing::Trial => "trial".into(),
                Standing::PastDue => "past due (in grace)".into(),
                Standing::Stopped(why) => format!("stopped: {why}"),
            },
            term: match p.term {
                Term::Renews(at) => format!("renews {}", calendar::date(at)),
                Term::Ends(at) => format!("ends {}", calendar::date(at)),
                Term::Ended(at) => format!("ended {}", calendar::date(at)),
                Term::Until(at) => format!("until {}", calendar::date(at)),
                Term::Open => "no end".into(),
            },
            usage: match p.usage {
                Use::Unlimited { used, metered } => format!(
                    "{} used{}",
                    thousands(used),
                    if metered { ", billed by use" } else { "" }
                ),
                Use::Quota { used, per_period } => {
                    format!(
                        "{} of {} this period",
                        thousands(used),
                        thousands(per_period)
                    )
                }
                Use::Credits { used, total } => {
                    format!("{} of {} credits", thousands(used), thousands(total))
                }
            },
        })
        .collect();
    let keys: Vec<KeyLine> = state
        .store
        .page_keys(Some(&customer.id), None, i64::MAX)
        .await?
        .into_iter()
        .map(|k| {
            let cap = k.cap();
            let replaced = k.replaced_by.as_deref().unwrap_or("a new key");
            let (ended, stops) = match (k.revoked_at, k.expires_at) {
                (Some(at), _) => (Some(format!("revoked {}", calendar::date(at))), None),
                (None, Some(at)) if at <= now => (
                    Some(format!(
                        "replaced by {replaced}, stopped {}",
                        calendar::date_time(at)
                    )),
                    None,
                ),
                (None, Some(at)) => (
                    None,
                    Some(format!(
                        "replaced by {replaced}; works until {} UTC",
                        calendar::date_time(at)
                    )),
                ),
                (None, None) => (None, None),
            };
            KeyLine {
                id: k.id,
                prefix: k.display_prefix,
                name: k.name.unwrap_or_default(),
                created: calendar::date(k.created_at),
                last_used: when(k.last_used_at),
                ended,
                stops,
                cap: cap.map_or_else(|| "none".into(), |c| c.describe()),
                cap_value: cap.map(|c| c.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let grants = state
        .store
        .grants_of(&customer.id)
        .await?
        .into_iter()
        .map(|g| {
            let covers = Predictors::parse(&g.predictors, None)
                .map_or_else(|_| g.predictors.clone(), |p| p.describe());
            let mut gives = vec![covers];
            match (g.quota, g.quota_period.as_deref(), g.credits) {
                (Some(n), Some(p), _) => gives.push(format!("{n} per {p}")),
                (_, _, Some(n)) => gives.push(format!("{n} credits")),
                _ => gives.push("unlimited".into()),
            }
            GrantLine {
                active: g.revoked_at.is_none() && g.expires_at.is_none_or(|at| at > now),
                until: match (g.revoked_at, g.expires_at) {
                    (Some(at), _) => format!("ended {}", calendar::date(at)),
                    (None, Some(at)) => format!("until {}", calendar::date(at - 1)),
                    (None, None) => "no end".into(),
                },
                gives: gives.join(", "),
                note: g.note.unwrap_or_default(),
                id: g.id,
            }
        })
        .collect();
    let until = calendar::day_start(now) + calendar::DAY;
    let since = until - DAYS * calendar::DAY;
    let rows = state
        .store
        .usage_by_day(Some(&customer.id), since, until)
        .await?;
    let series = per_predictor(&rows, since, DAYS as usize);
    let chart = if series.is_empty() {
        String::new()
    } else {
        stacked_days("Predictions allowed per predictor, per day", since, &series)
    };
    let prefixes: Vec<(String, String)> = keys
        .iter()
        .map(|k: &KeyLine| (k.id.clone(), k.prefix.clone()))
        .collect();
    let refusals = state
        .store
        .refusals_of(&customer.id, since, until)
        .await?
        .into_iter()
        .map(|r| RefusalLine {
            day: calendar::date(r.day),
            key: prefixes
                .iter()
                .find(|(id, _)| *id == r.key_id)
                .map_or(r.key_id.clone(), |(_, prefix)| prefix.clone()),
            reason: format!(
                "{} ({})",
                r.reason.replace('_', " "),
                super::overview::meaning(&r.reason)
            ),
            count: thousands(r.refusals as u64),
        })
        .collect();
    let changes = state
        .store
        .audit_log(Some(&customer.id), 20)
        .await?
        .into_iter()
        .map(ChangeLine::from)
        .collect();
    let stripe_url = admin.stripe_customer_url(&customer.id);
    let page = CustomerPage {
        owner,
        title: customer
            .email
            .clone()
            .or(customer.name.clone())
            .unwrap_or_else(|| customer.id.clone()),
        email: customer.email.unwrap_or_else(|| "-".into()),
        created: calendar::date(customer.created_at),
        id: customer.id,
        stripe_url,
        message,
        new_key,
        plans,
        keys,
        grants,
        chart,
        refusals,
        changes,
    };
    html(&page, true)
}

/// The grant fields of the issue and grant forms.
#[derive(Deserialize)]
pub struct GrantForm {
    csrf: String,
    name: Option<String>,
    predictors: Option<String>,
    quota: Option<String>,
    period: Option<String>,
    credits: Option<String>,
    expires: Option<String>,
    note: Option<String>,
    /// The key's own cap (the issue form only).
    cap: Option<String>,
}

/// A form field with something in it.
fn filled(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

impl GrantForm {
    /// The grant the form asks for; `None` when it asks for none (an issue form left blank).
    fn spec(&self, admin: &Admin) -> Result<Option<GrantSpec>, PageError> {
        let quota = number("The quota", self.quota.as_deref())?;
        let credits = number("Credits", self.credits.as_deref())?;
        let patterns = filled(&self.predictors);
        let expires = filled(&self.expires);
        if quota.is_none() && credits.is_none() && patterns.is_none() && expires.is_none() {
            return Ok(None);
        }
        let predictors = match patterns {
            Some(p) => Predictors::parse(p, admin.owner.as_ref())
                .map_err(|e| PageError::BadRequest(e.to_string()))?,
            None => Predictors::all(),
        };
        let last_day = expires
            .map(|d| {
                calendar::parse_date(d).ok_or_else(|| {
                    PageError::BadRequest(format!("{d:?} is not a date (YYYY-MM-DD)."))
                })
            })
            .transpose()?;
        let period = match filled(&self.period) {
            Some("day") => CalendarPeriod::Day,
            _ => CalendarPeriod::Month,
        };
        let spec = GrantSpec {
            predictors,
            quota: quota.map(|n| (n, period)),
            credits,
            last_day,
            note: filled(&self.note).map(str::to_owned),
        };
        spec.check(unix_now()).map_err(grant_error)?;
        Ok(Some(spec))
    }
}

fn grant_error(e: GrantError) -> PageError {
    match e {
        GrantError::Unexpected(e) => PageError::Unexpected(e),
        GrantError::UnknownCustomer(_) => PageError::NotFound,
        other => PageError::BadRequest(format!("No grant was given: {other}.")),
    }
}

pub async fn issue_key(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<GrantForm>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = form_owner(&request, &state, &form.csrf).await?;
    let grant = form.spec(&admin)?;
    let issued = owner
        .actor()
        .acting(state.ledger.issue_key(IssueRequest {
            customer: CustomerRef::Id(id.to_string()),
            name: form.name.clone(),
            grant,
            cap: filled(&form.cap).map(parse_cap).transpose()?,
        }))
        .await
        .map_err(|e| match e {
            crate::ledger::IssueError::Unexpected(e) => PageError::Unexpected(e),
            other => PageError::BadRequest(format!("No key was issued: {other}.")),
        })?;
    let message = format!(
        "Key {} issued. Copy it now: it is shown only this once.",
        issued.key.display_prefix()
    );
    customer_page(
        &state,
        &admin,
        owner,
        &issued.customer_id,
        Some(message),
        Some(issued.key.as_ref().to_owned()),
    )
    .await
}

pub async fn grant(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<GrantForm>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = form_owner(&request, &state, &form.csrf).await?;
    let Some(spec) = form.spec(&admin)? else {
        return Err(PageError::BadRequest(
            "No grant was given: say what it gives (predictors, a quota, credits or a last day)."
                .into(),
        ));
    };
    owner
        .actor()
        .acting(state.ledger.grant(&id, &spec))
        .await
        .map_err(grant_error)?;
    Ok(see_other(&format!("/admin/customers/{id}")))
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    customer: String,
}

pub async fn revoke_key(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let (_, owner) = form_owner(&request, &state, &form.csrf).await?;
    match owner.actor().acting(state.ledger.revoke_key(&id)).await? {
        RevokeOutcome::Revoked { .. } | RevokeOutcome::AlreadyRevoked { .. } => {}
        RevokeOutcome::NotFound | RevokeOutcome::Ambiguous(_) => return Err(PageError::NotFound),
    }
    Ok(see_other(&format!("/admin/customers/{}", form.customer)))
}

fn parse_cap(text: &str) -> Result<KeyCap, PageError> {
    KeyCap::parse(text).map_err(|e| PageError::BadRequest(format!("No limit was set: {e}.")))
}

fn key_error(e: KeyError) -> PageError {
    match e {
        KeyError::Unexpected(e) => PageError::Unexpected(e),
        KeyError::NotFound(_) => PageError::NotFound,
        other => PageError::BadRequest(format!("{other}.")),
    }
}

#[derive(Deserialize)]
pub struct RollForm {
    csrf: String,
    customer: String,
    grace: String,
}

/// Rolls a key: the new key is shown once on the customer's page.
pub async fn roll_key(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RollForm>,
) -> Result<HttpResponse, PageError> {
    let (admin, owner) = form_owner(&request, &state, &form.csrf).await?;
    let grace = Grace::parse(&form.grace).map_err(|e| PageError::BadRequest(format!("{e}.")))?;
    let rolled = owner
        .actor()
        .acting(state.ledger.roll_key(KeyRef::Any(&id), grace, None))
        .await
        .map_err(key_error)?;
    let message = format!(
        "Key {} rolled: the new key is {}; copy it now, it is shown only this once. The old key \
         works until {} UTC.",
        rolled.old_key_id,
        rolled.key.display_prefix(),
        calendar::date_time(rolled.old_stops_at)
    );
    customer_page(
        &state,
        &admin,
        owner,
        &form.customer,
        Some(message),
        Some(rolled.key.as_ref().to_owned()),
    )
    .await
}

#[derive(Deserialize)]
pub struct CapForm {
    csrf: String,
    customer: String,
    cap: String,
}

/// Sets or (empty) removes a key's own cap.
pub async fn cap_key(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CapForm>,
) -> Result<HttpResponse, PageError> {
    let (_, owner) = form_owner(&request, &state, &form.csrf).await?;
    let cap = match form.cap.trim() {
        "" => None,
        text => Some(parse_cap(text)?),
    };
    owner
        .actor()
        .acting(state.ledger.cap_key(KeyRef::Any(&id), cap))
        .await
        .map_err(key_error)?;
    Ok(see_other(&format!("/admin/customers/{}", form.customer)))
}

pub async fn end_grant(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let (_, owner) = form_owner(&request, &state, &form.csrf).await?;
    if owner.actor().acting(state.ledger.end_grant(&id)).await? == EndGrant::NotFound {
        return Err(PageError::NotFound);
    }
    Ok(see_other(&format!("/admin/customers/{}", form.customer)))
}
