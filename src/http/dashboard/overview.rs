//! The overview: the last 30 days of use and refusals per day (a chart, by predictor), what
//! customers are refused for, customers, revenue from the synced Stripe objects, the customers
//! who use the most, and the latest changes of the ledger.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{Gate, Owner, page_gate};
use crate::clock::unix_now;
use crate::domain::{calendar, thousands};
use crate::http::chart::{Series, stacked_days};
use crate::http::error::PageError;
use crate::http::pages::{html, money};
use crate::http::state::AppState;
use crate::store::{Audit, AuditRow, Keys, Reports};

/// Days the overview covers, today included.
const DAYS: i64 = 30;
/// Predictors drawn on their own; the rest are one series.
const PREDICTORS_DRAWN: usize = 5;

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    owner: Owner,
    period: String,
    chart: String,
    allowed: String,
    refused: String,
    customers_with_keys: String,
    customers_active: String,
    mrr: Vec<String>,
    one_time: Vec<String>,
    predictors: Vec<(String, String)>,
    reasons: Vec<ReasonLine>,
    top: Vec<TopLine>,
    changes: Vec<ChangeLine>,
}

pub struct ReasonLine {
    pub label: String,
    pub meaning: &'static str,
    pub count: String,
}

pub struct TopLine {
    pub id: String,
    pub who: String,
    pub predictions: String,
}

pub struct ChangeLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub customer: Option<String>,
    pub subject: String,
}

impl From<AuditRow> for ChangeLine {
    fn from(r: AuditRow) -> Self {
        Self {
            at: calendar::date_time(r.at),
            actor: r.actor,
            action: r.action,
            customer: r.customer_id,
            subject: r.subject.unwrap_or_default(),
        }
    }
}

/// What a refusal reason means, and what the owner might do about it.
pub fn meaning(label: &str) -> &'static str {
    match label {
        "no_key" => "no key sent",
        "unknown_key" => "a key that is not (or no longer) one of yours",
        "key_typo" | "not_our_key" | "key_too_long" => "a mistyped key",
        "quota_used" => "quota used up: a bigger plan may sell",
        "credits_used" => "credits used up: a top-up may sell",
        "canceled" => "subscription canceled",
        "past_due" | "unpaid" | "incomplete" => "payment failed",
        "no_plan" => "a key without a plan",
        "not_included" => "a predictor the plan does not include",
        "other_owner" => "another owner's predictor",
        "grant_expired" | "pass_expired" => "access expired",
        "refunded" | "disputed" => "payment refunded or disputed",
        "rate_limited" => "too many at once",
        "paused" => "subscription paused",
        "bad_tag" => "not a predictor tag",
        "key_rolled" => "a replaced key past its grace period",
        "key_cap" => "a key at its own limit",
        _ => "",
    }
}

pub async fn show(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let owner = match page_gate(&request, &state).await? {
        Gate::In(_, owner) => owner,
        Gate::Out(page) => return Ok(page),
    };
    let now = unix_now();
    let until = calendar::day_start(now) + calendar::DAY;
    let since = until - DAYS * calendar::DAY;
    let day_of = |day: i64| ((day - since) / calendar::DAY) as usize;
    let usage = state.store.usage_by_day(None, since, until).await?;
    let refusals = state.store.refusals_by_day(since, until).await?;

    let mut per_predictor: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut per_customer: HashMap<&str, i64> = HashMap::new();
    for row in &usage {
        per_predictor
            .entry(&row.tag)
            .or_insert_with(|| vec![0; DAYS as usize])[day_of(row.day)] += row.predictions;
        *per_customer.entry(&row.customer_id).or_default() += row.predictions;
    }
    let mut predictors: Vec<(&str, Vec<i64>)> = per_predictor.into_iter().collect();
    predictors.sort_by_key(|(tag, days)| (-days.iter().sum::<i64>(), *tag));
    let mut series: Vec<Series> = Vec::new();
    let mut other = vec![0; DAYS as usize];
    for (i, (tag, days)) in predictors.iter().enumerate() {
        if i < PREDICTORS_DRAWN {
            series.push(Series {
                name: (*tag).to_owned(),
                values: days.clone(),
                colour: None,
            });
        } else {
            other.iter_mut().zip(days).for_each(|(o, d)| *o += d);
        }
    }
    if predictors.len() > PREDICTORS_DRAWN {
        series.push(Series {
            name: "other predictors".into(),
            values: other,
            colour: Some("#999999"),
        });
    }
    let mut refused_days = vec![0; DAYS as usize];
    let mut reasons: HashMap<&str, i64> = HashMap::new();
    for row in &refusals {
        refused_days[day_of(row.day)] += row.refusals;
        *reasons.entry(&row.reason).or_default() += row.refusals;
    }
    series.push(Series {
        name: "refused".into(),
        values: refused_days.clone(),
        colour: Some("#b00020"),
    });
    let allowed: i64 = usage.iter().map(|r| r.predictions).sum();
    let chart = stacked_days(
        "Predictions allowed per predictor, and refused, per day",
        since,
        &series,
    );

    let mut reasons: Vec<(&str, i64)> = reasons.into_iter().collect();
    reasons.sort_by_key(|(label, n)| (-n, *label));
    let mut top: Vec<(&str, i64)> = per_customer.iter().map(|(c, n)| (*c, *n)).collect();
    top.sort_by_key(|(c, n)| (-n, *c));
    top.truncate(10);
    let mut top_lines = Vec::new();
    for (id, n) in top {
        let who = state
            .store
            .customer(id)
            .await?
            .and_then(|c| c.email.or(c.name))
            .unwrap_or_else(|| id.to_owned());
        top_lines.push(TopLine {
            id: id.to_owned(),
            who,
            predictions: thousands(n as u64),
        });
    }

    let mut mrr: HashMap<String, f64> = HashMap::new();
    for line in state.store.recurring_lines().await? {
        *mrr.entry(line.currency.clone()).or_default() += line.monthly();
    }
    let mut mrr: Vec<(String, f64)> = mrr.into_iter().collect();
    mrr.sort_by(|a, b| a.0.cmp(&b.0));
    let one_time = state.store.one_time_revenue(since, until).await?;

    let changes = state
        .store
        .audit_log(None, 10)
        .await?
        .into_iter()
        .map(ChangeLine::from)
        .collect();
    let page = OverviewPage {
        owner,
        period: format!(
            "{} to {} (UTC)",
            calendar::date(since),
            calendar::date(until - calendar::DAY)
        ),
        chart,
        allowed: thousands(allowed as u64),
        refused: thousands(refused_days.iter().sum::<i64>() as u64),
        customers_with_keys: thousands(state.gate.customer_count() as u64),
        customers_active: thousands(per_customer.len() as u64),
        mrr: mrr
            .iter()
            .map(|(currency, minor)| money(minor.round() as i64, currency))
            .collect(),
        one_time: one_time
            .iter()
            .map(|(currency, minor)| money(*minor, currency))
            .collect(),
        predictors: predictors
            .iter()
            .map(|(tag, days)| {
                (
                    (*tag).to_owned(),
                    thousands(days.iter().sum::<i64>() as u64),
                )
            })
            .collect(),
        reasons: reasons
            .into_iter()
            .map(|(label, n)| ReasonLine {
                label: label.replace('_', " "),
                meaning: meaning(label),
                count: thousands(n as u64),
            })
            .collect(),
        top: top_lines,
        changes,
    };
    html(&page, true)
}
