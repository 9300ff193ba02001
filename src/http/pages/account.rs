//! `/account`: a customer signs in with one of their keys and looks after their access.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{html, see_other};
use crate::domain::{Thresholds, calendar, thousands};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::ledger::{BillingError, PlanStatus, Session, Standing, Term, Use};

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    message: Option<&'a str>,
    /// Whether sign-in links can be emailed.
    emails: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub(super) struct AccountPage {
    /// Whether alerts can be emailed, and the customer's own thresholds ("80,100").
    alerts: bool,
    alert_at: String,
    csrf: String,
    email: Option<String>,
    message: Option<String>,
    new_key: Option<String>,
    plans: Vec<PlanLine>,
    keys: Vec<KeyLine>,
    billing: bool,
    usage: UsageView,
}

struct PlanLine {
    name: String,
    covers: String,
    status: String,
    dates: String,
    usage: String,
    ok: bool,
}

struct KeyLine {
    id: String,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    /// The key's own cap and its use ("37 of 100 today"), or "None".
    cap: String,
    /// The cap as the form takes it back ("100/day"), empty without one.
    cap_value: String,
    /// When a rolled key stops, once it was rolled.
    stops: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

#[derive(Deserialize)]
pub struct UsageQuery {
    /// Only this key's use (one of the customer's key ids).
    key: Option<String>,
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, PageError> {
    match signed_in(&request, &state).await? {
        Some(session) => {
            let mut page = account_page(&state, &session, None, None).await?;
            page.usage = usage_view(&state, &session, query.key.as_deref(), &page.keys).await?;
            html(&page, true)
        }
        None => html(
            &SignInPage {
                message: None,
                emails: state.ledger.emails(),
            },
            true,
        ),
    }
}

pub async fn sign_in(
    request: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    state.sessions.require_same_origin(&request)?;
    let Some(session) = state.ledger.sign_in(&form.key).await? else {
        let page = SignInPage {
            message: Some("That key is not valid: it may be mistyped or revoked."),
            emails: state.ledger.emails(),
        };
        let mut response = html(&page, true)?;
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    to_account(&state, &session)
}

/// To the account page, signed in as `session` (its cookie set).
pub(super) fn to_account(state: &AppState, session: &Session) -> Result<HttpResponse, PageError> {
    let cookie = state.sessions.cookie(session);
    let mut response = see_other("/account");
    response
        .add_cookie(&cookie)
        .map_err(|e| anyhow::anyhow!("Failed to set the session cookie: {e}"))?;
    Ok(response)
}

pub async fn sign_out(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    state.ledger.sign_out(&session).await?;
    let mut response = see_other("/account");
    response
        .add_cookie(&state.sessions.end())
        .map_err(|e| anyhow::anyhow!("Failed to clear the session cookie: {e}"))?;
    Ok(response)
}

#[derive(Deserialize)]
pub struct AlertsForm {
    csrf: String,
    /// Percentages, "80,100"; empty for none.
    alert_at: String,
}

/// `POST /account/alerts`: the customer's own thresholds for emails about their quotas and
/// credits.
pub async fn set_alerts(
    request: HttpRequest,
    form: web::Form<AlertsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    let thresholds = Thresholds::parse(&form.alert_at).map_err(|e| {
        PageError::BadRequest(format!(
            "Those alerts could not be set: {e}. Give percentages such as 80,100."
        ))
    })?;
    state
        .ledger
        .set_alert_thresholds(&session.customer_id, thresholds)
        .await?;
    Ok(see_other("/account"))
}

pub async fn billing(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    match state.ledger.billing_portal(&session.customer_id).await {
        Ok(url) => Ok(see_other(&url)),
        Err(BillingError::NotSelling) => Err(PageError::NotFound),
        Err(BillingError::NoBilling) => Err(PageError::BadRequest(
            "Your access was given by the owner; there is no billing to manage.".into(),
        )),
        Err(BillingError::Unexpected(e)) => Err(e.into()),
    }
}

/// `POST /account/sign-out-everywhere`: ends every session of the customer, on every device.
pub async fn sign_out_everywhere(
    request: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = require(&request, &state, &form.csrf).await?;
    state
        .ledger
        .sign_out_everywhere(&session.customer_id)
        .await?;
    let mut response = see_other("/account");
    response
        .add_cookie(&state.sessions.end())
        .map_err(|e| anyhow::anyhow!("Failed to clear the session cookie: {e}"))?;
    Ok(response)
}

/// The request's session while it is live: not signed out, not expired, its key not revoked.
pub(super) async fn signed_in(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Option<Session>, PageError> {
    match state.sessions.session_id(request) {
        Some(id) => Ok(state.ledger.session(&id).await?),
        None => Ok(None),
    }
}

/// A signed-in session whose form carries its CSRF token and comes from this site.
pub(super) async fn require(
    request: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<Session, PageError> {
    state.sessions.require_same_origin(request)?;
    let session = signed_in(request, state).await?.ok_or_else(|| {
        PageError::Forbidden("Your session has ended. Please sign in again.".into())
    })?;
    if !state.sessions.csrf_ok(&session, csrf) {
        return Err(PageError::Forbidden(
            "This form has expired. Please go back, reload the page and try again.".into(),
        ));
    }
    Ok(session)
}

/// The whole account page with its use for all keys, with a message or a new key to show once.
pub(super) async fn page_with(
    state: &AppState,
    session: &Session,
    message: Option<String>,
    new_key: Option<String>,
) -> Result<AccountPage, PageError> {
    let mut page = account_page(state, session, message, new_key).await?;
    page.usage = usage_view(state, session, None, &page.keys).await?;
    Ok(page)
}

/// The account page's parts but its use (see [`usage_view`]).
async fn account_page(
    state: &AppState,
    session: &Session,
    message: Option<String>,
    new_key: Option<String>,
) -> Result<AccountPage, PageError> {
    let account = state.ledger.account(&session.customer_id).await?;
    let keys = account
        .keys
        .into_iter()
        .map(|(k, used)| {
            let cap = k.cap();
            KeyLine {
                cap: match (cap, used) {
                    (Some(cap), Some(used)) => format!(
                        "{} of {} {}",
                        thousands(used),
                        thousands(cap.limit),
                        cap.span()
                    ),
                    _ => "None".into(),
                },
                cap_value: cap.map(|c| c.to_string()).unwrap_or_default(),
                stops: k
                    .expires_at
                    .map(|at| format!("Replaced; works until {} UTC", calendar::date_time(at))),
                id: k.id,
                name: k.name.unwrap_or_else(|| "Unnamed".into()),
                prefix: k.display_prefix,
                created: calendar::date(k.created_at),
                last_used: k
                    .last_used_at
                    .map_or_else(|| "Never".into(), calendar::date_time),
            }
        })
        .collect();
    let alerts = state.ledger.emails();
    let alert_at = match alerts {
        true => state
            .ledger
            .alert_thresholds(&session.customer_id)
            .await?
            .to_string(),
        false => String::new(),
    };
    let page = AccountPage {
        alerts,
        alert_at,
        csrf: state.sessions.csrf_token(session),
        email: account.email,
        message,
        new_key,
        plans: account.plans.iter().map(plan_line).collect(),
        keys,
        billing: account.billing,
        usage: UsageView::default(),
    };
    Ok(page)
}

/// Days of use shown on the account page and in its CSV.
const USAGE_DAYS: i64 = 30;

/// The account page's use: predictions per day and predictor for the last 30 days, as a chart,
/// of all the customer's keys or of one.
#[derive(Default)]
struct UsageView {
    chart: String,
    total: String,
    /// Each key to filter by: its id, its label, and whether it is the one shown.
    choices: Vec<(String, String, bool)>,
    csv: String,
}

/// The customer's use per day, key and predictor over the last 30 days, of one key when
/// `key` is one of theirs.
async fn customer_usage(
    state: &AppState,
    session: &Session,
    key: Option<&str>,
) -> Result<(i64, Vec<crate::store::UsageDay>), PageError> {
    use crate::store::Reports as _;
    let until = calendar::day_start(crate::clock::unix_now()) + calendar::DAY;
    let since = until - USAGE_DAYS * calendar::DAY;
    let rows = state
        .store
        .usage_by_day(Some(&session.customer_id), since, until)
        .await?
        .into_iter()
        .filter(|r| key.is_none_or(|k| r.key_id == k))
        .collect();
    Ok((since, rows))
}

async fn usage_view(
    state: &AppState,
    session: &Session,
    key: Option<&str>,
    keys: &[KeyLine],
) -> Result<UsageView, PageError> {
    use crate::http::chart::{per_predictor, stacked_days};
    let key = key.filter(|k| keys.iter().any(|line| line.id == *k));
    let (since, rows) = customer_usage(state, session, key).await?;
    let series = per_predictor(&rows, since, USAGE_DAYS as usize);
    let total: i64 = rows.iter().map(|r| r.predictions).sum();
    Ok(UsageView {
        chart: if series.is_empty() {
            String::new()
        } else {
            stacked_days("Your predictions per day, by predictor", since, &series)
        },
        total: thousands(total as u64),
        choices: keys
            .iter()
            .map(|k| {
                let label = format!("{} ({}…)", k.name, k.prefix);
                (k.id.clone(), label, key == Some(k.id.as_str()))
            })
            .collect(),
        csv: match key {
            Some(k) => format!("/account/usage.csv?key={k}"),
            None => "/account/usage.csv".into(),
        },
    })
}

/// `GET /account/usage.csv`: the figures of the account page's chart, one row per day, key
/// and predictor.
pub async fn usage_csv(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, PageError> {
    use crate::http::chart::csv_field;
    let Some(session) = signed_in(&request, &state).await? else {
        return Ok(see_other("/account"));
    };
    let (_, rows) = customer_usage(&state, &session, query.key.as_deref()).await?;
    let mut csv = String::from("day,key_id,predictor,predictions\r\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{}\r\n",
            calendar::date(r.day),
            csv_field(&r.key_id),
            csv_field(&r.tag),
            r.predictions
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"predictions.csv\"",
        ))
        .body(csv))
}

fn plan_line(plan: &PlanStatus) -> PlanLine {
    let status = match plan.standing {
        Standing::Active => "Active",
        Standing::Trial => "Trial",
        Standing::PastDue => "Payment past due",
        Standing::Stopped(why) => why,
    };
    let dates = match plan.term {
        Term::Renews(at) if plan.standing == Standing::Trial => {
            format!("Trial ends {}, then renews", calendar::date(at))
        }
        Term::Ended(at) => format!("Ended {}", calendar::date(at)),
        Term::Ends(at) => format!("Ends {}", calendar::date(at)),
        Term::Renews(at) => format!("Renews {}", calendar::date(at)),
        Term::Until(at) => format!("Until {}", calendar::date(at)),
        Term::Open => "No end date".to_owned(),
    };
    let unit = &plan.unit;
    let usage = match plan.usage {
        Use::Unlimited {
            used,
            metered: true,
        } => format!("{} {unit} this period, billed per use", thousands(used)),
        Use::Unlimited { used, .. } => format!("{} {unit} this period", thousands(used)),
        Use::Quota { used, per_period } => format!(
            "{} of {} {unit} this period",
            thousands(used),
            thousands(per_period)
        ),
        Use::Credits { used, total } => format!(
            "{} of {} credits left",
            thousands(total.saturating_sub(used)),
            thousands(total)
        ),
    };
    PlanLine {
        name: plan.name.clone(),
        covers: plan.covers.clone(),
        status: status.to_owned(),
        dates,
        usage,
        ok: plan.usable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_says_when_it_ends_and_a_plan_what_it_covers() {
        let trial = PlanStatus {
            name: "Pro".into(),
            covers: "all of acme's predictors".into(),
            standing: Standing::Trial,
            term: Term::Renews(1_767_225_600),
            usage: Use::Quota {
                used: 3,
                per_period: 1_000,
            },
            unit: "predictions".into(),
        };
        let line = plan_line(&trial);
        assert_eq!(line.dates, "Trial ends 2026-01-01, then renews");
        assert_eq!(line.covers, "all of acme's predictors");
        let paying = PlanStatus {
            standing: Standing::Active,
            ..trial
        };
        assert_eq!(plan_line(&paying).dates, "Renews 2026-01-01");
        let sessions = PlanStatus {
            unit: "sessions".into(),
            ..paying
        };
        assert_eq!(
            plan_line(&sessions).usage,
            "3 of 1,000 sessions this period"
        );
    }
}
